"""Faults on the server side: killed mid-download, storage full, simultaneous uploads. (A
kill during an upload, a database outage and trickling clients:
tests/integration/server/test_resilience.py.)"""

from __future__ import annotations

import asyncio
import contextlib
import resource
import ssl
import threading
import time
from pathlib import Path

import pytest

from secure_fota.errors import TransportError
from tests.attacks.conftest import Lab, Pki, server_for
from tests.attacks.infra import UPLOADER, UPLOADER_PASSWORD, Forward, Mitm, Request, Response
from tests.slow_clients import closed_by_server, tls_socket


@pytest.mark.slow
def test_server_killed_during_a_download_resumes_with_range(
    lab: Lab, pki: Pki, tmp_path: Path
) -> None:
    """kill -9 while the device downloads; after the restart the device resumes from where it
    was (Range + If-Range) and installs a verified image."""
    own = server_for(tmp_path / "srv", pki).setup().start()
    try:
        lab.server = own
        files = lab.release(lab.image("1.1.0", size=256 * 1024), 2)
        lab.upload(files)
        device = lab.device()
        killed = threading.Event()

        async def slow_then_kill(request: Request, forward: Forward) -> Response:
            response = await forward(request)
            if "/binary" not in request.target or killed.is_set():
                return response

            async def trickle():
                sent = 0
                async for chunk in response.body:  # type: ignore[union-attr]
                    for start in range(0, len(chunk), 4096):
                        piece = chunk[start : start + 4096]
                        sent += len(piece)
                        yield piece
                        await asyncio.sleep(0.01)
                        if sent >= 40_000:
                            own.kill9()
                            killed.set()
                            return  # the connection dies with the server (no more bytes)

            return Response(response.status, response.headers, trickle())

        with Mitm(own.url, pki.ca_file, pki.server_cert, pki.server_key, slow_then_kill) as mitm:
            with pytest.raises(TransportError):
                device.perform_update(client=lab.client_via(mitm.url, device))
            assert killed.is_set()
            partial = device.state.download_file.stat().st_size
            assert 0 < partial < files.claims.enc_size
            assert device.status()["seq"] == 1
            own.start()  # same data directory and port
            result = device.perform_update(client=lab.client_via(mitm.url, device))
        assert result.result == "updated", result
        assert device.last_resume_offset == partial
        ranges = [r.header("range") for r in mitm.requests if "/binary" in r.target]
        assert ranges[-1] == f"bytes={partial}-"
    finally:
        own.stop()


def _full_disk() -> None:
    """The server's files may not grow past 1 MiB (a full disk, without root or tmpfs)."""
    resource.setrlimit(resource.RLIMIT_FSIZE, (1024 * 1024, 1024 * 1024))


@pytest.mark.slow
def test_storage_full_is_a_clean_error(lab: Lab, pki: Pki, tmp_path: Path) -> None:
    own = server_for(tmp_path / "srv", pki, preexec=_full_disk).setup().start()
    try:
        lab.server = own
        big = lab.release(lab.image("1.1.0", size=1536 * 1024), 2)
        answer = lab.upload_bytes(big.manifest.read_bytes(), big.binary.read_bytes(), 2)
        assert answer.status_code in (503, 507), answer.text
        assert answer.json()["error"]
        with own.http() as http:
            assert (
                http.get(
                    "/update/newest/manifest", params={"deviceType": lab.device_type}
                ).status_code
                == 404
            )
        assert not list((own.data / "blobs" / "staging").glob("*.part"))
        assert own.process is not None and own.process.poll() is None  # still serving
        small = lab.publish("1.2.0", 3)
        assert lab.device().perform_update().result == "updated"
        assert small.claims.seq == 3
    finally:
        own.stop()


def test_two_identical_uploads_at_the_same_moment(lab: Lab) -> None:
    files = lab.release(lab.image("1.1.0"), 2)
    manifest, binary = files.manifest.read_bytes(), files.binary.read_bytes()
    barrier = threading.Barrier(4)
    answers: list[tuple[int, object]] = []

    def upload(content: bytes) -> None:
        with lab.server.http() as http:
            barrier.wait()
            response = http.post(
                f"/api/v1/device-types/{lab.device_type}/releases",
                auth=(UPLOADER, UPLOADER_PASSWORD),
                data={"id": "2", "fwName": "app"},
                files={"manifestFile": ("m", content), "firmwareFile": ("b", binary)},
            )
            answers.append((response.status_code, response.json().get("created")))

    threads = [threading.Thread(target=upload, args=(manifest,)) for _ in range(3)]
    different = manifest[:-1] + (b"A" if manifest[-1:] != b"A" else b"B")
    threads.append(threading.Thread(target=upload, args=(different,)))
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    created = [a for a in answers if a == (201, True)]
    retries = [a for a in answers if a == (200, False)]
    conflicts = [a for a in answers if a[0] == 409]
    # exactly one release: one creation; identical twins are retries; the different one
    # conflicts (or, if it won the race, the identical ones conflict)
    assert len(created) == 1, answers
    assert len(created) + len(retries) + len(conflicts) == 4, answers
    assert len(conflicts) in (1, 3), answers
    with lab.server.http() as http:
        listing = http.get(
            f"/api/v1/device-types/{lab.device_type}/releases", auth=(UPLOADER, UPLOADER_PASSWORD)
        ).json()
    assert [r["id"] for r in listing] == [2]


@pytest.mark.slow
def test_slow_clients_are_cut_off(lab: Lab, pki: Pki, tmp_path: Path) -> None:
    """Slowloris: connections that never finish their request head (idle after the TLS
    handshake, or trickling header bytes) are closed after request_head_timeout, while
    devices keep being served at once."""
    own = server_for(tmp_path / "srv", pki, env={"FOTA_REQUEST_HEAD_TIMEOUT": "2"})
    own.setup().start()
    try:
        lab.server = own
        lab.publish("1.1.0", 2)
        opened: list[float] = []
        sockets: list[ssl.SSLSocket] = []
        for _ in range(40):  # 20 idle after the handshake, 20 trickling their request head
            sockets.append(tls_socket(own.port, pki.ca_file))
            opened.append(time.monotonic())
        head = f"GET /update/newest/manifest?deviceType={lab.device_type} HTTP/1.1\r\n".encode()
        started = time.monotonic()
        closed: dict[int, float] = {}
        position = 0
        while time.monotonic() - started < 10 and len(closed) < 40:
            for index, sock in enumerate(sockets):
                if index in closed:
                    continue
                if index >= 20:
                    with contextlib.suppress(OSError):
                        sock.send(head[position % len(head) : position % len(head) + 1])
                if closed_by_server(sock):
                    closed[index] = time.monotonic() - opened[index]
            position += 1
            with own.http() as http:  # a device meanwhile: answered at once
                began = time.monotonic()
                answer = http.get("/update/newest/manifest", params={"deviceType": lab.device_type})
                assert answer.status_code == 200 and time.monotonic() - began < 2
            time.sleep(0.2)
        assert len(closed) == 40, closed
        assert min(closed.values()) > 1.5, closed  # not before the deadline (2 s)
        for sock in sockets:
            sock.close()
        assert lab.device().perform_update().result == "updated"
    finally:
        own.stop()
