"""20 parallel uploads while 200 polls run, against `fota server run --workers 2` on
PostgreSQL (and MariaDB and SQLite): nothing is lost, every poll sees one consistent release,
and a poll that starts after an upload was acknowledged never sees an older newest release
(on either worker)."""

from __future__ import annotations

import hashlib
import ssl
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from secure_fota.devtools.harness import LocalServer
from secure_fota.server.settings import load_settings
from secure_fota.wire import READY
from tests.http_servers import HTTP_SERVERS, server_env
from tests.integration.server.conftest import (
    fake_release,
    fresh_database,
    provision,
    seed_upload,
)

UPLOADS = 20
POLLERS = 10
POLLS_PER_CLIENT = 20  # 200 polls in all
DEVICE_TYPE = "fleet"


@dataclass
class Poll:
    started: float
    status: int
    release: int | None
    etag: str | None
    digest: str | None


#: every database under the default HTTP server, and SQLite under each other one
_SETUPS = [(database, HTTP_SERVERS[0]) for database in ("postgresql", "mariadb", "sqlite")] + [
    ("sqlite", other) for other in HTTP_SERVERS[1:]
]


@pytest.fixture(params=_SETUPS, ids=["-".join(setup) for setup in _SETUPS])
def two_workers(
    request: pytest.FixtureRequest, tmp_path: Path, tls_dir: Path
) -> Iterator[tuple[str, ssl.SSLContext, str]]:
    database, http_server = request.param
    with fresh_database(database, tmp_path) as url:
        data_dir = tmp_path / "data"
        settings = load_settings(None, data_dir=data_dir, database_url=url)
        credentials = provision(settings, {})
        server = LocalServer(
            data_dir,
            tls_cert=tls_dir / "server.pem",
            tls_key=tls_dir / "server.key",
            ca_file=tls_dir / "ca.pem",
            workers=2,
            env={"FOTA_DATABASE_URL": url, "FOTA_LOG_LEVEL": "warning", **server_env(http_server)},
            ready_path=READY,
        )
        verify = ssl.create_default_context(cafile=str(tls_dir / "ca.pem"))
        server.start(timeout=60)
        try:
            yield server.url, verify, credentials.uploader_token
        finally:
            server.stop(timeout=20)


def check_polls(
    polls: list[list[Poll]], acked: dict[int, float], by_manifest: dict[str, int]
) -> None:
    # every poll consistent; never older than what was acknowledged before it started
    all_polls = [p for client in polls for p in client]
    assert len(all_polls) == POLLERS * POLLS_PER_CLIENT
    served = after_all = 0
    for client in polls:
        highest_seen = 0
        for p in client:
            assert p.status in (200, 404), p
            acknowledged = [seq for seq, at in acked.items() if at <= p.started]
            if p.status == 404:
                assert not acknowledged, p
                continue
            served += 1
            assert p.release is not None
            assert p.etag == f'"{p.digest}"'
            assert by_manifest[p.digest] == p.release  # the manifest of the release it names
            assert p.release >= max(acknowledged, default=0), (p, max(acknowledged))
            if len(acknowledged) == UPLOADS:
                after_all += 1
                assert p.release == UPLOADS
                assert p.release >= highest_seen  # no going back once all are acknowledged
            highest_seen = max(highest_seen, p.release)
    assert served > 0
    assert after_all > 0  # the run covered the "all acknowledged" phase too


@pytest.mark.slow
def test_parallel_uploads_while_polling(two_workers: tuple[str, ssl.SSLContext, str]):
    base, verify, token = two_workers
    releases = {seq: fake_release(seq, size=8192) for seq in range(1, UPLOADS + 1)}
    by_manifest = {hashlib.sha256(m).hexdigest(): seq for seq, (m, _) in releases.items()}
    acked: dict[int, float] = {}
    upload_errors: list[str] = []
    polls: list[list[Poll]] = [[] for _ in range(POLLERS)]
    start = threading.Barrier(UPLOADS + POLLERS)

    def upload(seq: int) -> None:
        manifest, binary = releases[seq]
        with httpx.Client(base_url=base, verify=verify, timeout=60) as http:
            start.wait()
            time.sleep(seq * 0.02)  # spread the uploads over the polling period
            response = seed_upload(
                http,
                {"authorization": f"Bearer {token}"},
                seq=seq,
                device_type=DEVICE_TYPE,
                manifest=manifest,
                binary=binary,
            )
            if response.status_code != 200 or response.text != "OK":
                upload_errors.append(f"{seq}: {response.status_code} {response.text}")
            acked[seq] = time.monotonic()

    def poll(index: int) -> None:
        start.wait()
        for i in range(POLLS_PER_CLIENT):
            # a fresh connection for every poll, so that both workers answer
            began = time.monotonic()
            response = httpx.get(
                f"{base}/update/newest/manifest",
                params={"deviceType": DEVICE_TYPE},
                verify=verify,
                timeout=30,
            )
            digest = hashlib.sha256(response.content).hexdigest() if response.content else None
            release = response.headers.get("x-fota-release")
            polls[index].append(
                Poll(
                    started=began,
                    status=response.status_code,
                    release=int(release) if release else None,
                    etag=response.headers.get("etag"),
                    digest=digest,
                )
            )
            time.sleep(0.05 + 0.03 * (i % 3))  # 200 polls over about 2 s

    threads = [threading.Thread(target=upload, args=(seq,)) for seq in releases]
    threads += [threading.Thread(target=poll, args=(i,)) for i in range(POLLERS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    assert not any(thread.is_alive() for thread in threads)

    # nothing lost
    assert upload_errors == []
    assert sorted(acked) == list(range(1, UPLOADS + 1))
    with httpx.Client(base_url=base, verify=verify) as http:
        for seq, (manifest, binary) in releases.items():
            path = f"/api/v1/device-types/{DEVICE_TYPE}/releases/{seq}"
            assert http.get(path + "/manifest").content == manifest
            assert http.get(path + "/binary").content == binary
        final = http.get("/update/newest/manifest", params={"deviceType": DEVICE_TYPE})
        assert final.headers["x-fota-release"] == str(UPLOADS)
        # /metrics on either worker sums both workers' counters
        for _ in range(4):
            text = httpx.get(f"{base}/metrics", verify=verify).text
            assert f'fota_uploads_total{{result="created"}} {float(UPLOADS)}' in text
            assert text.count("fota_worker_info{") == 2

    check_polls(polls, acked, by_manifest)
