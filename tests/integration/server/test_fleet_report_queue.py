"""The fleet simulator keeps a report it could not deliver and sends it again, as a real device
does (the reference device's NVS queue, the C component's): the real server (``create_app``,
uvicorn, TLS, SQLite) behind an ASGI layer that plays a network fault on the report endpoint.

* ``down``: reports never reach the server (503): every device keeps its ``installed`` and
  ``confirmed`` reports queued and retries them before each poll;
* ``lost``: the server stores a report but its answer is lost (503): the device resends it, the
  server answers 409 (it has that counter), and the device takes that as delivered.

A rollout that counts only ``confirmed`` would otherwise wait for such devices until its
silent deadline (tests/e2e/test_rollout.py kills a worker in the middle of reports)."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from secure_fota.device.fleet import FleetConfig, FleetReport, simulate
from secure_fota.devtools.harness import ThreadedServer
from secure_fota.keys.tls import CA_FILE, CERT_FILE, KEY_FILE
from secure_fota.server.app import create_app
from secure_fota.server.settings import load_settings
from secure_fota.wire import API_V1, reports_url
from tests.integration.server.conftest import (
    Credentials,
    fake_release,
    fresh_database,
    provision,
    seed_upload,
    unique_type,
    wait_until,
)

DEVICES = 8
REPORTS_PATH = reports_url("")


class ReportFault:
    """ASGI layer in front of the server: ``up`` passes everything; ``down`` answers 503 to
    each report without passing it on; ``lost`` passes each distinct report on once, drops the
    server's answer and answers 503 instead (later copies of it reach the server unchanged)."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self.mode = "up"
        self.refused = 0  # answers replaced by 503
        self.seen: set[bytes] = set()  # distinct reports that met the fault
        self.resent = 0  # copies of a lost report passed on (the server answers them 409)

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if (
            self.mode == "up"
            or scope["type"] != "http"
            or scope["method"] != "POST"
            or scope["path"] != REPORTS_PATH
        ):
            await self.app(scope, receive, send)
            return
        body, messages = b"", []
        while True:
            message = await receive()
            messages.append(message)
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        replay = iter(messages)
        first = body not in self.seen
        self.seen.add(body)

        async def again() -> Any:
            return next(replay)

        if self.mode == "lost" and not first:
            await self.app(scope, again, send)
            self.resent += 1
            return
        if self.mode == "lost":

            async def dropped(_message: Any) -> None:
                return None

            await self.app(scope, again, dropped)  # stored by the server; its answer is lost
        self.refused += 1
        await send({"type": "http.response.start", "status": 503, "headers": []})
        await send({"type": "http.response.body", "body": b"unavailable"})


@pytest.fixture
def faulty_server(
    tmp_path: Path, tls_dir: Path
) -> Iterator[tuple[ThreadedServer, ReportFault, Credentials]]:
    with fresh_database("sqlite", tmp_path) as url:
        settings = load_settings(None, data_dir=tmp_path / "data", database_url=url, cache_ttl=0.05)
        credentials = provision(settings, {})
        fault = ReportFault(create_app(settings))
        server = ThreadedServer(
            fault,
            certfile=tls_dir / CERT_FILE,
            keyfile=tls_dir / KEY_FILE,
            log_level="critical",
            ws="none",
            lifespan="on",
        )
        with server:
            yield server, fault, credentials


def _client(server: ThreadedServer, tls_dir: Path) -> httpx.Client:
    import ssl

    verify = ssl.create_default_context(cafile=str(tls_dir / CA_FILE))
    return httpx.Client(base_url=server.url, verify=verify, timeout=30)


def _inventory(http: httpx.Client, credentials: Credentials, device_type: str) -> list[Any]:
    response = http.get(
        API_V1 + "/devices",
        params={"deviceType": device_type, "limit": 100},
        headers=credentials.admin,
    )
    assert response.status_code == 200, response.text
    devices: list[Any] = response.json()["devices"]
    return devices


@pytest.mark.parametrize("fault_mode", ["down", "lost"])
def test_undelivered_reports_are_queued_and_sent_again(
    faulty_server: tuple[ThreadedServer, ReportFault, Credentials],
    tls_dir: Path,
    fault_mode: str,
) -> None:
    server, fault, credentials = faulty_server
    device_type = unique_type("queue")
    with _client(server, tls_dir) as http:
        manifest, binary = fake_release(2)
        response = seed_upload(
            http, credentials.uploader, seq=2, device_type=device_type,
            manifest=manifest, binary=binary,
        )  # fmt: skip
        assert response.status_code == 200, response.text

        fault.mode = fault_mode
        stop = threading.Event()
        result: list[FleetReport] = []
        config = FleetConfig(
            server=server.url,
            device_type=device_type,
            devices=DEVICES,
            duration=60,
            poll_interval=0.2,
            ca_file=tls_dir / CA_FILE,
            installed_seq=1,
            device_id_prefix="queue",
            reports=True,
        )
        runner = threading.Thread(
            target=lambda: result.append(asyncio.run(simulate(config, stop=stop)))
        )
        runner.start()
        try:
            if fault_mode == "down":
                # every device has installed; its first report (installed) goes first, again
                # and again, and its confirmed report waits behind it
                assert wait_until(lambda: len(fault.seen) == DEVICES, 30), len(fault.seen)
                assert wait_until(lambda: fault.refused >= 3 * DEVICES, 30)
                assert _inventory(http, credentials, device_type) == []  # nothing got through
                fault.mode = "up"
            else:
                # each report is stored once with its answer lost, then resent and answered 409
                assert wait_until(lambda: fault.resent == 2 * DEVICES, 30), fault.resent
                assert len(fault.seen) == 2 * DEVICES

            def all_confirmed() -> bool:
                devices = _inventory(http, credentials, device_type)
                events = {(d["running_seq"], d["last_event"]) for d in devices}
                return len(devices) == DEVICES and events == {(2, "confirmed")}

            assert wait_until(all_confirmed, 30), _inventory(http, credentials, device_type)
        finally:
            stop.set()
            runner.join()
    report = result[0]
    summary = report.summary()
    assert set(report.final_seqs.values()) == {2}
    assert report.updates == DEVICES
    assert report.reports == 2 * DEVICES, summary  # installed + confirmed, each counted once
    assert report.reports_undelivered == 0, summary
    assert report.report_errors == fault.refused, summary  # each refusal seen, none hidden
    assert all("HTTP 503" in sample for sample in report.error_samples), summary
