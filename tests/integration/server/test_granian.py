"""`fota server run --http-server granian`: the real command, real TLS sockets, 1 and 2
workers; the request-head deadline (slowloris); a clear error without granian."""

from __future__ import annotations

import contextlib
import hashlib
import socket
import ssl
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from click.testing import CliRunner
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.serialization import pkcs12

from secure_fota.cli.main import cli
from secure_fota.devtools.harness import LocalServer
from secure_fota.errors import ConfigError
from secure_fota.server.hosting import granian_version
from tests.integration.server.conftest import RealRelease
from tests.slow_clients import closed_by_server, tls_socket

pytest.importorskip("granian", reason="granian is not installed (pip install '.[granian]')")

UPLOADER, PASSWORD = "granian-uploader", "granian-password-123"
NONCE = "0123456789abcdef0123456789abcdef"


@contextlib.contextmanager
def granian_server(
    root: Path, tls: Path, key_dir: Path, *, workers: int, env: dict[str, str] | None = None
) -> Iterator[LocalServer]:
    server = LocalServer(
        root / "data",
        tls_cert=tls / "server.pem",
        tls_key=tls / "server.key",
        ca_file=tls / "ca.pem",
        workers=workers,
        extra_args=["--http-server", "granian"],
        env={
            "FOTA_FRESHNESS_KEY_FILE": str(key_dir / "freshness_key.pem"),
            "FOTA_LOG_LEVEL": "warning",
            **(env or {}),
        },
    )
    server.add_user(UPLOADER, PASSWORD)
    server.start(timeout=60)
    try:
        yield server
    finally:
        server.stop()


def _client(server: LocalServer) -> httpx.Client:
    verify = ssl.create_default_context(cafile=str(server.ca_file))
    return httpx.Client(base_url=server.url, verify=verify, timeout=30)


@pytest.mark.slow
@pytest.mark.parametrize("workers", [1, 2])
def test_granian_serves_the_update_api(
    workers: int, tmp_path: Path, tls_dir: Path, key_dir: Path, real_release: RealRelease
) -> None:
    device_type = real_release.device_type
    with granian_server(tmp_path, tls_dir, key_dir, workers=workers) as server:
        assert "granian" in server.log_file.read_text()  # the start line names the server
        with _client(server) as http:
            assert http.get("/healthz").json() == {"status": "ok"}
            assert http.get("/readyz").status_code == 200
            manifest, binary = real_release.manifest.read_bytes(), real_release.binary.read_bytes()
            upload = http.post(
                "/uploadFile",
                auth=(UPLOADER, PASSWORD),
                data={"id": "7", "deviceType": device_type, "fwName": real_release.fw_name},
                files={
                    "manifestFile": ("app.manifest", manifest, "application/octet-stream"),
                    "firmwareFile": ("app.bin", binary, "application/octet-stream"),
                },
            )
            assert upload.status_code in (200, 201), upload.text
            poll = http.get("/update/newest/manifest", params={"deviceType": device_type})
            assert poll.status_code == 200 and poll.content == manifest
            assert poll.headers["etag"] == f'"{hashlib.sha256(manifest).hexdigest()}"'
            again = http.get(
                "/update/newest/manifest",
                params={"deviceType": device_type},
                headers={"If-None-Match": poll.headers["etag"]},
            )
            assert again.status_code == 304 and again.content == b""
            fresh = http.get(
                "/update/newest/manifest", params={"deviceType": device_type, "nonce": NONCE}
            )
            assert fresh.status_code == 200 and fresh.headers["x-fota-freshness"].count(".") == 2
            download = http.get("/update/newest/binary", params={"deviceType": device_type})
            assert download.status_code == 200 and download.content == binary
            part = http.get(
                f"/api/v1/device-types/{device_type}/releases/7/binary",
                headers={"Range": "bytes=4096-8191"},
            )
            assert part.status_code == 206
            assert part.headers["content-range"] == f"bytes 4096-8191/{len(binary)}"
            assert part.content == binary[4096:8192]
        # /metrics on any worker counts every worker's requests (fresh connections)
        for _ in range(4):
            with _client(server) as http:
                text = http.get("/metrics").text
            assert 'fota_uploads_total{result="created"} 1.0' in text
            assert 'fota_not_modified_total{artifact="manifest"} 1.0' in text
            assert text.count("fota_worker_info{") == workers
        # TLS 1.2 (ESP-IDF's mbedTLS) is accepted; HTTP/2 is not offered
        context = ssl.create_default_context(cafile=str(server.ca_file))
        context.maximum_version = ssl.TLSVersion.TLSv1_2
        context.set_alpn_protocols(["h2", "http/1.1"])
        with (
            socket.create_connection(("127.0.0.1", server.port), timeout=10) as raw,
            context.wrap_socket(raw, server_hostname="127.0.0.1") as tls,
        ):
            assert tls.version() == "TLSv1.2"
            assert tls.selected_alpn_protocol() in (None, "http/1.1")
            tls.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
            assert tls.recv(4096).startswith(b"HTTP/1.1 200")


@pytest.mark.slow
def test_granian_cuts_off_slow_request_heads(tmp_path: Path, tls_dir: Path, key_dir: Path) -> None:
    """Slowloris: a TLS client idle after the handshake, one trickling a request head that
    never ends, and one idle on a kept-alive connection are all closed after
    request_head_timeout (2 s), while other clients are answered at once."""
    env = {"FOTA_REQUEST_HEAD_TIMEOUT": "2"}
    with granian_server(tmp_path, tls_dir, key_dir, workers=1, env=env) as server:
        idle = tls_socket(server.port, server.ca_file)
        trickling = tls_socket(server.port, server.ca_file)
        kept = tls_socket(server.port, server.ca_file)
        kept.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        assert kept.recv(4096).startswith(b"HTTP/1.1 200")
        started = time.monotonic()
        sockets = {"idle": idle, "trickling": trickling, "kept-alive": kept}
        head = b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: " + b"a" * 500
        closed: dict[str, float] = {}
        position = 0
        with _client(server) as http:
            while time.monotonic() - started < 8 and len(closed) < len(sockets):
                with contextlib.suppress(OSError):
                    trickling.send(head[position : position + 1])
                position += 1
                for name, sock in sockets.items():
                    if name not in closed and closed_by_server(sock):
                        closed[name] = time.monotonic() - started
                began = time.monotonic()
                assert http.get("/healthz").status_code == 200
                assert time.monotonic() - began < 1
                time.sleep(0.1)
        for sock in sockets.values():
            sock.close()
    assert set(closed) == set(sockets), closed
    assert all(1.5 < seconds < 4 for seconds in closed.values()), closed


@pytest.mark.slow
def test_granian_with_an_encrypted_key_and_with_pkcs12(tmp_path: Path, tls_dir: Path) -> None:
    """granian's Rust TLS gets the key decrypted (a private temporary file), as from PKCS#12."""
    key = serialization.load_pem_private_key((tls_dir / "server.key").read_bytes(), None)
    encrypted = tmp_path / "encrypted.key"
    encrypted.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.BestAvailableEncryption(b"key-password-123"),
        )
    )
    cert = x509.load_pem_x509_certificate((tls_dir / "server.pem").read_bytes())
    p12 = tmp_path / "server.p12"
    p12.write_bytes(
        pkcs12.serialize_key_and_certificates(
            b"fota", key, cert, None, serialization.BestAvailableEncryption(b"p12-password")
        )
    )
    for tls_args, env in (
        (
            ["--tls-cert", str(tls_dir / "server.pem"), "--tls-key", str(encrypted)],
            {"FOTA_TLS_KEY_PASSWORD": "key-password-123"},
        ),
        (["--tls-p12", str(p12)], {"FOTA_TLS_P12_PASSWORD": "p12-password"}),
    ):
        server = LocalServer(
            tmp_path / "data",
            ca_file=tls_dir / "ca.pem",  # ready once /healthz answers over TLS
            extra_args=["--http-server", "granian", *tls_args],
            env={"FOTA_LOG_LEVEL": "warning", **env},
        )
        server.start(timeout=60)
        assert server.stop(timeout=20) == 0  # a clean shutdown on SIGTERM


def test_without_granian_a_clear_error(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setitem(sys.modules, "granian", None)  # `import granian` raises ImportError
    with pytest.raises(ConfigError, match=r"pip install 'secure-fota\[granian\]'"):
        granian_version()
    result = CliRunner().invoke(
        cli, ["server", "run", "--data-dir", str(tmp_path), "--http-server", "granian"]
    )
    assert isinstance(result.exception, ConfigError)
    assert "granian is not installed" in str(result.exception)
    assert not (tmp_path / "tls").exists()  # refused before anything was created


def test_an_unsupported_granian_version_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    fake = type(sys)("granian")
    fake.__version__ = "1.7.6"  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "granian", fake)
    with pytest.raises(ConfigError, match=r"granian 1\.7\.6 is installed"):
        granian_version()
    fake.__version__ = "2.8.7"  # type: ignore[attr-defined]
    assert granian_version() == "2.8.7"
