"""Faults on the server side: killed mid-download, storage full, simultaneous uploads. (A
kill during an upload, a database outage and trickling clients:
tests/integration/server/test_resilience.py.)"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import resource
import signal
import socket
import ssl
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

from secure_fota.errors import TransportError
from secure_fota.wire import FIRMWARE_FILE, MANIFEST_FILE, UPLOAD, upload_fields
from tests.attacks.conftest import Lab, Pki, server_for
from tests.attacks.infra import (
    UPLOADER,
    UPLOADER_PASSWORD,
    Forward,
    Mitm,
    Request,
    Response,
    ServerProcess,
)
from tests.http_servers import HTTP_SERVERS, server_env
from tests.slow_clients import closed_by_server, tls_socket


@pytest.mark.slow
@pytest.mark.parametrize("http_server", HTTP_SERVERS)
def test_server_killed_during_a_download_resumes_with_range(
    lab: Lab, pki: Pki, tmp_path: Path, http_server: str
) -> None:
    """kill -9 while the device downloads; after the restart the device resumes from where it
    was (Range + If-Range) and installs a verified image."""
    own = server_for(tmp_path / "srv", pki, env=server_env(http_server)).setup().start()
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
@pytest.mark.parametrize("http_server", HTTP_SERVERS)
def test_storage_full_is_a_clean_error(
    lab: Lab, pki: Pki, tmp_path: Path, http_server: str
) -> None:
    own = server_for(tmp_path / "srv", pki, preexec=_full_disk, env=server_env(http_server))
    own.setup().start()
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
@pytest.mark.parametrize("http_server", HTTP_SERVERS)
def test_slow_clients_are_cut_off(lab: Lab, pki: Pki, tmp_path: Path, http_server: str) -> None:
    """Slowloris: connections that never finish their request head (idle after the TLS
    handshake, or trickling header bytes) are closed after request_head_timeout, while
    devices keep being served at once."""
    env = {"FOTA_REQUEST_HEAD_TIMEOUT": "2", **server_env(http_server)}
    own = server_for(tmp_path / "srv", pki, env=env)
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


def _slow_download(port: int, ca: Path, path: str, started: threading.Event) -> tuple[int, bytes]:
    """GET ``path`` over a raw TLS socket with a small receive buffer, read slowly (so the
    answer is still being sent long after ``started`` is set); (status, body)."""
    raw = socket.socket()
    raw.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 32 * 1024)
    raw.settimeout(20)
    raw.connect(("127.0.0.1", port))
    context = ssl.create_default_context(cafile=str(ca))
    with context.wrap_socket(raw, server_hostname="127.0.0.1") as tls:
        tls.sendall(f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n".encode())
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = tls.recv(16 * 1024)
            if not chunk:
                raise ConnectionError(f"closed before the head: {data!r}")
            data += chunk
        head, _, body = data.partition(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        status = int(lines[0].split()[1])
        length = next(
            int(line.split(":", 1)[1])
            for line in lines
            if line.lower().startswith("content-length:")
        )
        received = bytearray(body)
        started.set()
        while len(received) < length:
            chunk = tls.recv(16 * 1024)
            if not chunk:
                break  # cut short: the caller sees the missing bytes
            received += chunk
            time.sleep(0.01)
    return status, bytes(received)


def _slow_upload(port: int, ca: Path, body: httpx.Request, started: threading.Event) -> bytes:
    """POST ``body`` (a multipart upload) over a raw TLS socket in 40 pieces over ~2 s; the
    answer's status line (``started`` is set after the first piece)."""
    raw = socket.create_connection(("127.0.0.1", port), timeout=20)
    context = ssl.create_default_context(cafile=str(ca))
    content = body.read()
    credentials = base64.b64encode(f"{UPLOADER}:{UPLOADER_PASSWORD}".encode()).decode()
    with context.wrap_socket(raw, server_hostname="127.0.0.1") as tls:
        tls.sendall(
            (
                f"POST {UPLOAD} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n"
                f"Authorization: Basic {credentials}\r\n"
                f"Content-Type: {body.headers['content-type']}\r\n"
                f"Content-Length: {len(content)}\r\n\r\n"
            ).encode()
        )
        piece = len(content) // 40 + 1
        for offset in range(0, len(content), piece):
            tls.sendall(content[offset : offset + piece])
            started.set()
            time.sleep(0.05)
        answer = b""
        while b"\r\n" not in answer:
            chunk = tls.recv(4096)
            if not chunk:
                break
            answer += chunk
    return answer.split(b"\r\n", 1)[0]


@dataclass
class _Traffic:
    """Devices polling and fetching 16 KiB chunks on keep-alive connections until stopped;
    each request's outcome: ok, refused (no answer, once the shutdown began), refused-early
    (no answer before it), cut (an answer started and did not finish) or wrong-STATUS."""

    server: ServerProcess
    binary: bytes
    manifest: bytes
    by_id: str
    device_type: str
    stop: threading.Event = field(default_factory=threading.Event)
    terminated: threading.Event = field(default_factory=threading.Event)
    outcomes: list[str] = field(default_factory=list)

    def _request(self, http: httpx.Client, index: int) -> tuple[httpx.Request, bytes]:
        count = len(self.outcomes)
        if count % 2:
            poll = {"deviceType": self.device_type}
            return http.build_request("GET", "/update/newest/manifest", params=poll), self.manifest
        offset = (index * 7 + count) % (len(self.binary) // 16384) * 16384
        request = http.build_request(
            "GET", self.by_id, headers={"range": f"bytes={offset}-{offset + 16383}"}
        )
        return request, self.binary[offset : offset + 16384]

    def run(self, index: int) -> None:
        with self.server.http() as http:
            while not self.stop.is_set():
                request, expected = self._request(http, index)
                try:
                    response = http.send(request, stream=True)
                except httpx.HTTPError:
                    # judged when the refusal arrives: a request sent a moment before SIGTERM that
                    # the server had not read yet is refused by the shutdown, not before it
                    shutting_down = self.terminated.is_set()
                    self.outcomes.append("refused" if shutting_down else "refused-early")
                    time.sleep(0.05)
                    continue
                try:
                    body = response.read()
                except httpx.HTTPError:
                    self.outcomes.append("cut")
                    continue
                finally:
                    response.close()
                ok = response.status_code in (200, 206) and body == expected
                self.outcomes.append("ok" if ok else f"wrong-{response.status_code}")


@pytest.mark.slow
@pytest.mark.parametrize("http_server", HTTP_SERVERS)
def test_graceful_shutdown_under_load(lab: Lab, pki: Pki, tmp_path: Path, http_server: str) -> None:
    """SIGTERM while devices poll and download: a download and an upload in flight are
    finished (every byte; the upload stored and answered), every answer that started is
    complete, requests are refused only once the shutdown has begun, and the server exits
    within its grace period."""
    own = server_for(tmp_path / "srv", pki, env=server_env(http_server)).setup().start()
    try:
        lab.server = own
        files = lab.release(lab.image("1.1.0", size=3 * 1024 * 1024), 2)
        lab.upload(files)
        binary = files.binary.read_bytes()
        by_id = f"/api/v1/device-types/{lab.device_type}/releases/2/binary"
        with own.http() as http:  # the image into the worker's memory
            assert http.get(by_id).content == binary
        traffic = _Traffic(own, binary, files.manifest.read_bytes(), by_id, lab.device_type)
        devices = [threading.Thread(target=traffic.run, args=(i,)) for i in range(4)]
        for device in devices:
            device.start()
        started, sending = threading.Event(), threading.Event()
        download: list[tuple[int, bytes]] = []
        downloader = threading.Thread(
            target=lambda: download.append(_slow_download(own.port, pki.ca_file, by_id, started))
        )
        downloader.start()
        next_release = lab.release(lab.image("1.2.0"), 3)
        upload_body = httpx.Request(
            "POST",
            own.url + UPLOAD,
            data=upload_fields(3, lab.device_type, "app"),
            files={
                MANIFEST_FILE: ("m", next_release.manifest.read_bytes()),
                FIRMWARE_FILE: ("b", next_release.binary.read_bytes()),
            },
        )
        upload: list[bytes] = []
        uploader = threading.Thread(
            target=lambda: upload.append(_slow_upload(own.port, pki.ca_file, upload_body, sending))
        )
        uploader.start()
        assert started.wait(20) and sending.wait(20), "the slow transfers did not start"
        time.sleep(0.5)
        assert own.process is not None
        traffic.terminated.set()
        own.process.send_signal(signal.SIGTERM)
        began = time.monotonic()
        exit_status = own.process.wait(timeout=30)
        shutdown_seconds = time.monotonic() - began
        downloader.join(30)
        uploader.join(30)
        traffic.stop.set()
        for device in devices:
            device.join(30)
        own.process = None
        status, body = download[0]
        assert status == 200 and len(body) == len(binary) and body == binary  # finished
        assert upload == [b"HTTP/1.1 200 OK"], upload  # received whole, stored, answered
        # uvicorn re-raises the signal once it has shut down (exit by SIGTERM); granian exits 0
        assert exit_status in (0, -signal.SIGTERM), (exit_status, own.log_tail())
        assert shutdown_seconds < 15, shutdown_seconds
        assert traffic.outcomes.count("ok") > 20, traffic.outcomes
        assert set(traffic.outcomes) <= {"ok", "refused"}, sorted(set(traffic.outcomes))
        with pytest.raises(OSError):  # nothing listens any more
            socket.create_connection(("127.0.0.1", own.port), timeout=2).close()
    finally:
        own.stop()
