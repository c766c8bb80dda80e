"""The attack suite's machinery: a real `fota server run` process (that can be killed -9 and
restarted on the same data directory and port), certificate authorities whose keys we keep
(so that we can mint a certificate for a wrong host), a TLS man in the middle on 127.0.0.1
that forwards to the real server and rewrites answers, and the host C tool."""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import json
import os
import sqlite3
import ssl
import subprocess
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Self

import httpx
from cryptography.hazmat.primitives import serialization

from secure_fota.crypto.keys import private_pem
from secure_fota.devtools.harness import LocalServer, free_port
from secure_fota.keys.directory import write_key_file
from secure_fota.keys.tls import CertificateAuthority
from secure_fota.tls_client import client_context

REPO = Path(__file__).resolve().parents[2]
HOST_TOOL = Path(os.environ.get("SECURE_OTA_HOST", REPO / "build/esp32-host/secure_ota_host"))

# -- certificates ------------------------------------------------------------------------------


@dataclass
class Authority:
    """A CA whose private key we keep (unlike `fota keys tls`, which discards it)."""

    name: str
    ca: CertificateAuthority

    @classmethod
    def create(cls, name: str) -> Authority:
        return cls(name, CertificateAuthority.create(name, days=30))

    def write_ca(self, path: Path) -> Path:
        path.write_bytes(self.ca.certificate_pem())
        return path

    def issue(
        self, directory: Path, hosts: list[str], stem: str = "server", *, expired: bool = False
    ) -> tuple[Path, Path]:
        """A server certificate for ``hosts`` (valid now, or ``expired`` yesterday); returns
        (cert.pem, key.pem)."""
        directory.mkdir(parents=True, exist_ok=True)
        now = datetime.datetime.now(datetime.UTC)
        if expired:
            now -= datetime.timedelta(days=31)
        cert, key = self.ca.issue(hosts, days=30, now=now)
        cert_path, key_path = directory / f"{stem}.pem", directory / f"{stem}.key"
        cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        write_key_file(key_path, private_pem(key), private=True, force=True)
        return cert_path, key_path


# -- the real server ---------------------------------------------------------------------------

UPLOADER, UPLOADER_PASSWORD = "uploader", "uploader-password-123"
ADMIN, ADMIN_PASSWORD = "admin", "admin-password-123"


class ServerProcess(LocalServer):
    """`fota server run` over TLS in its own process (SQLite and local blobs in ``data``), with
    what an insider on its host can reach: its database and its blob files."""

    def __init__(
        self,
        root: Path,
        *,
        cert: Path,
        key: Path,
        ca: Path,
        env: dict[str, str] | None = None,
        preexec: Callable[[], None] | None = None,
        port: int | None = None,
    ) -> None:
        super().__init__(
            root / "server-data",
            tls_cert=cert,
            tls_key=key,
            ca_file=ca,
            env={"FOTA_CACHE_TTL": "0.05", "FOTA_LOG_LEVEL": "warning", **(env or {})},
            port=port,
            log_file=root / "server.log",
            preexec=preexec,
        )
        self.root = root
        self.data = self.data_dir

    def setup(self) -> ServerProcess:
        for user, password, role in (
            (UPLOADER, UPLOADER_PASSWORD, "uploader"),
            (ADMIN, ADMIN_PASSWORD, "admin"),
        ):
            self.add_user(user, password, role)
        return self

    def start(self, timeout: float = 60) -> Self:
        return super().start(timeout)

    def kill9(self) -> None:
        self.kill()

    def rss_kib(self) -> int:
        """Resident memory of the server and its worker processes (VmRSS summed, KiB):
        granian, and uvicorn with several workers, serve from child processes."""
        total = 0
        for pid in _process_tree(self.pid):
            with contextlib.suppress(OSError):  # a worker may be exiting
                for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                    if line.startswith("VmRSS:"):
                        total += int(line.split()[1])
        if not total:
            raise AssertionError("no VmRSS")
        return total

    def http(self, **options: Any) -> httpx.Client:
        return httpx.Client(
            base_url=self.url, verify=client_context(self.ca_file), timeout=30, **options
        )

    # -- what an insider with access to the database and the storage can do -----------------
    @contextlib.contextmanager
    def database(self) -> Iterator[sqlite3.Connection]:
        """The server's SQLite database, as an attacker on the server's host opens it."""
        connection = sqlite3.connect(self.data / "fota.db", timeout=10)
        try:
            yield connection
            connection.execute("UPDATE server_state SET generation = generation + 1")
            connection.commit()
        finally:
            connection.close()
        time.sleep(0.2)  # past cache_ttl: every worker re-reads the database

    def blob(self, sha256: str) -> Path:
        return self.data / "blobs" / "sha256" / sha256[:2] / sha256


def _process_tree(pid: int) -> list[int]:
    """``pid`` and its descendants (from /proc/PID/task/*/children)."""
    found, queue = [], [pid]
    while queue:
        current = queue.pop()
        found.append(current)
        for task in Path(f"/proc/{current}/task").glob("*/children"):
            with contextlib.suppress(OSError):
                queue += [int(child) for child in task.read_text().split()]
    return found


# -- a man in the middle -------------------------------------------------------------------------


@dataclass
class Request:
    method: str
    target: str
    headers: list[tuple[str, str]]
    body: bytes = b""

    def header(self, name: str) -> str | None:
        for key, value in self.headers:
            if key.lower() == name.lower():
                return value
        return None


@dataclass
class Response:
    status: int
    headers: list[tuple[str, str]]
    body: bytes | AsyncIterator[bytes] = b""

    def header(self, name: str) -> str | None:
        for key, value in self.headers:
            if key.lower() == name.lower():
                return value
        return None

    def without(self, *names: str) -> list[tuple[str, str]]:
        drop = {n.lower() for n in names}
        return [(k, v) for k, v in self.headers if k.lower() not in drop]

    async def read(self) -> bytes:
        if isinstance(self.body, bytes):
            return self.body
        data = bytearray()
        async for chunk in self.body:
            data += chunk
        self.body = bytes(data)
        return self.body


Forward = Callable[[Request], Awaitable[Response]]
Handler = Callable[[Request, Forward], Awaitable[Response]]

_HOP = {"connection", "keep-alive", "transfer-encoding", "content-length", "host"}
_REASONS = {200: "OK", 206: "Partial Content", 304: "Not Modified", 404: "Not Found"}


async def _passthrough(request: Request, forward: Forward) -> Response:
    return await forward(request)


@dataclass
class Mitm:
    """An HTTPS reverse proxy on 127.0.0.1 presenting ``cert``/``key`` to the device and
    forwarding to ``upstream`` (verified with ``upstream_ca``); ``handler`` sees every request
    and may rewrite, replay or invent the answer. One request per connection."""

    upstream: str
    upstream_ca: Path
    cert: Path
    key: Path
    handler: Handler = _passthrough
    port: int = field(default_factory=free_port)
    requests: list[Request] = field(default_factory=list)
    sent_bytes: int = 0
    tls_failures: int = 0

    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self.port}"

    def __enter__(self) -> Mitm:
        self._ready = threading.Event()
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        assert self._ready.wait(10), "MITM did not start"
        return self

    def __exit__(self, *_: object) -> None:
        self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(10)

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        self._loop.run_until_complete(self._main())
        self._loop.close()

    async def _main(self) -> None:
        self._stop = asyncio.Event()
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(self.cert, self.key)
        upstream_tls = ssl.create_default_context(cafile=str(self.upstream_ca))
        self._client = httpx.AsyncClient(verify=upstream_tls, timeout=30)
        server = await asyncio.start_server(self._serve, "127.0.0.1", self.port, ssl=context)
        self._ready.set()
        async with server:
            await self._stop.wait()
            server.close()
        await self._client.aclose()

    async def forward(self, request: Request) -> Response:
        headers = [(k, v) for k, v in request.headers if k.lower() not in _HOP]
        upstream = self._client.build_request(
            request.method, self.upstream + request.target, headers=headers, content=request.body
        )
        response = await self._client.send(upstream, stream=True)

        async def body() -> AsyncIterator[bytes]:
            try:
                async for chunk in response.aiter_raw():
                    yield chunk
            finally:
                await response.aclose()

        return Response(response.status_code, list(response.headers.items()), body())

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            request = await self._read_request(reader)
            if request is None:
                return
            self.requests.append(request)
            response = await self.handler(request, self.forward)
            await self._write(writer, response)
        except (ssl.SSLError, ConnectionError, asyncio.IncompleteReadError):
            self.tls_failures += 1
        except httpx.HTTPError:
            pass  # the upstream went away mid-answer: the device sees a cut connection
        finally:
            with contextlib.suppress(Exception):
                writer.close()
                await writer.wait_closed()

    @staticmethod
    async def _read_request(reader: asyncio.StreamReader) -> Request | None:
        head = await reader.readuntil(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        method, target, _ = lines[0].split(" ", 2)
        headers = []
        for line in lines[1:]:
            if line:
                name, _, value = line.partition(":")
                headers.append((name.strip(), value.strip()))
        request = Request(method, target, headers)
        length = request.header("content-length")
        if length:
            request.body = await reader.readexactly(int(length))
        return request

    @staticmethod
    def _peer_gone(writer: asyncio.StreamWriter) -> bool:
        sock = writer.get_extra_info("socket")
        return sock is None or sock.fileno() < 0

    async def _write(self, writer: asyncio.StreamWriter, response: Response) -> None:
        reason = _REASONS.get(response.status, "Status")
        head = [f"HTTP/1.1 {response.status} {reason}"]
        head += [f"{k}: {v}" for k, v in response.headers if k.lower() not in _HOP]
        if isinstance(response.body, bytes):
            head.append(f"Content-Length: {len(response.body)}")
        else:
            length = response.header("content-length")
            if length is not None:
                head.append(f"Content-Length: {length}")
        head.append("Connection: close")
        writer.write(("\r\n".join(head) + "\r\n\r\n").encode("latin-1"))
        if isinstance(response.body, bytes):
            writer.write(response.body)
            self.sent_bytes += len(response.body)
            await writer.drain()
            return
        async for chunk in response.body:
            if writer.is_closing() or self._peer_gone(writer):
                break  # the device hung up: count only what it could still receive
            writer.write(chunk)
            self.sent_bytes += len(chunk)
            await writer.drain()
            await asyncio.sleep(0)  # let a hang-up (connection_lost) be noticed


# -- a server that answers whatever a test scripts ------------------------------------------------

#: writes the whole answer to the device's connection (the request head has been read)
Script = Callable[[bytes, ssl.SSLSocket], None]


class ScriptedServer:
    """An HTTPS server on 127.0.0.1 (certificate ``cert``/``key``) whose every answer is written
    by ``script``: any status line, headers, body, pace; one request per connection. A hostile
    mirror, proxy or captured DNS name, as the device meets it (real sockets, real TLS)."""

    def __init__(self, cert: Path, key: Path, script: Script | None = None) -> None:
        self.context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.context.load_cert_chain(cert, key)
        self.script: Script = script or (lambda _head, _conn: None)
        self.port = free_port()
        self.requests: list[bytes] = []
        self._stop = threading.Event()

    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self.port}"

    def __enter__(self) -> ScriptedServer:
        import socket

        self._listener = socket.create_server(("127.0.0.1", self.port))
        self._listener.settimeout(0.2)
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join(10)
        self._listener.close()

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                raw, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            threading.Thread(target=self._serve, args=(raw,), daemon=True).start()

    def _serve(self, raw: Any) -> None:
        with contextlib.suppress(OSError, ssl.SSLError), raw:
            raw.settimeout(30)
            conn = self.context.wrap_socket(raw, server_side=True)
            with conn:
                head = b""
                while b"\r\n\r\n" not in head and len(head) < 65536:
                    data = conn.recv(4096)
                    if not data:
                        return
                    head += data
                self.requests.append(head)
                self.script(head, conn)

    def request_header(self, index: int, name: str) -> str | None:
        """The value of header ``name`` in the ``index``-th request received."""
        for line in self.requests[index].decode("latin-1").split("\r\n")[1:]:
            key, _, value = line.partition(":")
            if key.strip().lower() == name.lower():
                return value.strip()
        return None


def answer(status: int, headers: list[tuple[str, str]], body: bytes = b"") -> Script:
    """A script sending one fixed answer (headers as given: no Content-Length is added)."""
    head = f"HTTP/1.1 {status} X\r\n".encode() + b"".join(
        f"{k}: {v}\r\n".encode("latin-1", "replace") for k, v in headers
    )

    def script(_head: bytes, conn: ssl.SSLSocket) -> None:
        conn.sendall(head + b"Connection: close\r\n\r\n" + body)

    return script


# -- the ESP32 C core on the host ----------------------------------------------------------------


def run_c_tool(
    keys: Path,
    manifest: Path,
    binary: Path | None,
    *,
    device_type: str,
    installed_seq: int,
    secure_version: int,
    chip_id: int | None = None,
    now: int | None = None,
    freshness: Path | None = None,
    nonce: str | None = None,
    extra: tuple[str, ...] = (),
) -> dict[str, Any]:
    args = [
        str(HOST_TOOL), "verify", "--device-keys", str(keys),
        "--installed-seq", str(installed_seq), "--secure-version", str(secure_version),
        "--device-type", device_type, *extra,
    ]  # fmt: skip
    if chip_id is not None:
        args += ["--chip-id", str(chip_id)]
    if now is not None:
        args += ["--now", str(now)]
    if freshness is not None:
        assert nonce is not None
        args += ["--freshness", str(freshness), "--nonce", nonce]
    args.append(str(manifest))
    if binary is not None:
        args.append(str(binary))
    done = subprocess.run(args, capture_output=True, timeout=60, check=False)
    assert done.returncode in (0, 3), done.stderr.decode()
    verdict: dict[str, Any] = json.loads(done.stdout.decode().strip())
    return verdict
