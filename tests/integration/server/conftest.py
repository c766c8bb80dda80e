"""Fixtures for the update server: real databases (SQLite, PostgreSQL, MariaDB; a fresh
database per module, dropped afterwards), real storage (local files, moto's standalone S3
server), a real uvicorn on a free 127.0.0.1 port with TLS, and release files."""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import ssl
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from secure_fota.author.release import ReleaseRequest, build_release
from secure_fota.devtools.harness import ThreadedServer, free_port
from secure_fota.formats.app_image_builder import ImageSpec, build_app_image
from secure_fota.formats.encrypted_image import EncryptedImageHeader
from secure_fota.keys.directory import load_author_keys
from secure_fota.keys.tls import CA_FILE, CERT_FILE, KEY_FILE, generate_tls
from secure_fota.server.auth import hash_password, new_token, token_digest
from secure_fota.server.settings import ServerSettings, load_settings
from secure_fota.wire import DEVICE_TYPE, FIRMWARE_FILE, FW_NAME, ID, MANIFEST_FILE, UPLOAD

PG_ADMIN = {"host": "127.0.0.1", "port": 5432, "user": "postgres", "database": "test"}
MARIADB_ADMIN = {"host": "127.0.0.1", "port": 3306, "user": "root", "password": ""}
ADMIN_PASSWORD = "admin-password-123"
UPLOADER_PASSWORD = "uploader-password-123"
DATABASES = ("sqlite", "postgresql", "mariadb")


# databases -------------------------------------------------------------------------------


def _pg_admin(statement: str) -> None:
    import asyncpg

    async def run() -> None:
        connection = await asyncpg.connect(**PG_ADMIN, timeout=3)
        try:
            await connection.execute(statement)
        finally:
            await connection.close()

    asyncio.run(run())


def _mariadb_admin(statement: str) -> None:
    import pymysql

    connection = pymysql.connect(**MARIADB_ADMIN, connect_timeout=3)
    try:
        with connection.cursor() as cursor:
            cursor.execute(statement)
        connection.commit()
    finally:
        connection.close()


@contextlib.contextmanager
def fresh_database(kind: str, directory: Path) -> Iterator[str]:
    """A new, empty database of ``kind`` and its URL; dropped afterwards."""
    if kind == "sqlite":
        yield f"sqlite+aiosqlite:///{directory / 'fota.db'}"
        return
    name = f"fota_test_{secrets.token_hex(6)}"
    if kind == "postgresql":
        try:
            _pg_admin(f'CREATE DATABASE "{name}"')
        except (TimeoutError, OSError) as exc:
            pytest.skip(f"PostgreSQL is not reachable on 127.0.0.1:5432 ({exc})")
        try:
            yield f"postgresql+asyncpg://postgres@127.0.0.1:5432/{name}"
        finally:
            _pg_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        return
    import pymysql

    try:
        _mariadb_admin(f"CREATE DATABASE `{name}` CHARACTER SET utf8mb4")
    except pymysql.err.OperationalError as exc:
        pytest.skip(f"MariaDB is not reachable on 127.0.0.1:3306 ({exc})")
    try:
        yield f"mysql+aiomysql://root@127.0.0.1:3306/{name}"
    finally:
        _mariadb_admin(f"DROP DATABASE IF EXISTS `{name}`")


# S3 (moto's standalone server) -------------------------------------------------------------


@dataclass
class MotoServer:
    endpoint: str
    process: subprocess.Popen[bytes]

    def new_bucket(self) -> str:
        import boto3

        name = f"fota-{secrets.token_hex(6)}"
        client = boto3.client("s3", **self.client_options())
        client.create_bucket(Bucket=name)
        client.close()
        return name

    def client_options(self) -> dict[str, Any]:
        return {
            "endpoint_url": self.endpoint,
            "region_name": "us-east-1",
            "aws_access_key_id": "testing",
            "aws_secret_access_key": "testing",
        }


@pytest.fixture(scope="session")
def moto_server() -> Iterator[MotoServer]:
    try:
        import moto.server  # noqa: F401
    except ImportError:
        pytest.skip("moto[server] is not installed: S3 storage is not tested")
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    endpoint = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while True:
        try:
            httpx.get(endpoint + "/moto-api/", timeout=1)
            break
        except httpx.TransportError:
            if time.monotonic() > deadline or process.poll() is not None:
                process.kill()
                pytest.fail("moto server did not start")
            time.sleep(0.1)
    try:
        yield MotoServer(endpoint, process)
    finally:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def storage_settings(kind: str, request: pytest.FixtureRequest) -> dict[str, Any]:
    if kind == "local":
        return {"storage": "local"}
    moto = request.getfixturevalue("moto_server")
    return {
        "storage": "s3",
        "s3_endpoint_url": moto.endpoint,
        "s3_bucket": moto.new_bucket(),
        "s3_access_key_id": "testing",
        "s3_secret_access_key": "testing",
    }


# TLS and a real server ---------------------------------------------------------------------


@pytest.fixture(scope="session")
def tls_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("tls")
    generate_tls(directory, ["127.0.0.1", "localhost"])
    return directory


@dataclass
class Credentials:
    admin_token: str
    uploader_token: str
    device_tokens: dict[str, str] = field(default_factory=dict)

    @property
    def admin(self) -> dict[str, str]:
        return {"authorization": f"Bearer {self.admin_token}"}

    @property
    def uploader(self) -> dict[str, str]:
        return {"authorization": f"Bearer {self.uploader_token}"}


def provision(settings: ServerSettings, device_tokens: dict[str, tuple[str, bool]]) -> Credentials:
    """Create the users ``admin`` and ``uploader``, and tokens, straight in the database."""
    from secure_fota.server.context import open_database
    from secure_fota.server.db.repository import Repository

    credentials = Credentials(admin_token=new_token(), uploader_token=new_token())

    async def run() -> None:
        engine = await open_database(settings, migrate=True)
        try:
            repository = Repository(engine)
            await repository.add_user("admin", hash_password(ADMIN_PASSWORD), "admin", replace=True)
            await repository.add_user(
                "uploader", hash_password(UPLOADER_PASSWORD), "uploader", replace=True
            )
            await repository.add_token(
                f"admin-{secrets.token_hex(4)}",
                token_digest(credentials.admin_token),
                "admin",
                device_type=None,
                per_device=False,
            )
            await repository.add_token(
                f"uploader-{secrets.token_hex(4)}",
                token_digest(credentials.uploader_token),
                "uploader",
                device_type=None,
                per_device=False,
            )
            for name, (device_type, per_device) in device_tokens.items():
                token = new_token()
                credentials.device_tokens[name] = token
                await repository.add_token(
                    name,
                    token_digest(token),
                    "device",
                    device_type=device_type,
                    per_device=per_device,
                )
        finally:
            await engine.dispose()

    asyncio.run(run())
    return credentials


class RunningServer(ThreadedServer):
    """``create_app(settings)`` under uvicorn in a thread (TLS with the files in ``tls``)."""

    def __init__(self, settings: ServerSettings, tls: Path | None) -> None:
        from secure_fota.server.app import create_app

        self.settings = settings
        self.tls = tls
        super().__init__(
            create_app(settings),
            certfile=None if tls is None else tls / CERT_FILE,
            keyfile=None if tls is None else tls / KEY_FILE,
            log_level="critical",
            ws="none",
            lifespan="on",
        )

    @property
    def base_url(self) -> str:
        return self.url

    @property
    def ca(self) -> Path | None:
        return None if self.tls is None else self.tls / CA_FILE

    def client(self, **options: Any) -> httpx.Client:
        verify: Any = ssl.create_default_context(cafile=str(self.ca)) if self.ca else False
        return httpx.Client(base_url=self.base_url, verify=verify, timeout=30, **options)

    @property
    def context(self) -> Any:
        return self.app.state.context


@contextlib.contextmanager
def running_server(settings: ServerSettings, tls: Path | None) -> Iterator[RunningServer]:
    server = RunningServer(settings, tls).start()
    try:
        yield server
    finally:
        server.stop()


@dataclass
class Harness:
    server: RunningServer
    credentials: Credentials
    http: httpx.Client
    label: str

    @property
    def settings(self) -> ServerSettings:
        return self.server.settings


@contextlib.contextmanager
def harness(
    request: pytest.FixtureRequest,
    directory: Path,
    *,
    database: str = "sqlite",
    storage: str = "local",
    tls: Path | None,
    device_tokens: dict[str, tuple[str, bool]] | None = None,
    **overrides: Any,
) -> Iterator[Harness]:
    with fresh_database(database, directory) as url:
        values: dict[str, Any] = {
            "data_dir": directory / "data",
            "database_url": url,
            "cache_ttl": 0.05,
            "max_upload_size": 1024 * 1024,
            **storage_settings(storage, request),
        }
        values.update(overrides)
        settings = load_settings(None, **values)
        credentials = provision(settings, device_tokens or {})
        with running_server(settings, tls) as server, server.client() as http:
            yield Harness(server, credentials, http, f"{database}+{storage}")


# release files -------------------------------------------------------------------------------


def fake_release(seq: int, size: int = 4096) -> tuple[bytes, bytes]:
    """A manifest (opaque bytes) and an image with a valid esp_encrypted_img header."""
    rng = secrets.token_bytes
    header = EncryptedImageHeader(wrapped_key=rng(384), iv=rng(16), bin_size=size, tag=rng(16))
    manifest = f"manifest-{seq}-".encode() + rng(16).hex().encode()
    return manifest, header.to_bytes() + rng(size)


@dataclass(frozen=True)
class RealRelease:
    manifest: Path
    binary: Path
    seq: int
    device_type: str
    fw_name: str


@pytest.fixture(scope="session")
def real_release(key_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> RealRelease:
    """A release built by the author tool (signed, encrypted), id 7 of type ``sensor``."""
    directory = tmp_path_factory.mktemp("release")
    firmware = directory / "app.bin"
    firmware.write_bytes(build_app_image(ImageSpec(chip="esp32", size=40 * 1024, seed=5)))
    keys = load_author_keys(key_dir, secure_boot_version="v1")
    files = build_release(
        ReleaseRequest(
            firmware=firmware, seq=7, device_type="sensor", fw_name="app", out_dir=directory
        ),
        keys,
        now=int(time.time()),
    )
    return RealRelease(files.manifest, files.binary, 7, "sensor", "app")


def upload_files(manifest: bytes, binary: bytes) -> dict[str, Any]:
    return {
        MANIFEST_FILE: ("app.manifest", manifest, "application/octet-stream"),
        FIRMWARE_FILE: ("app.bin", binary, "application/octet-stream"),
    }


def seed_upload(
    http: httpx.Client,
    headers: dict[str, str],
    *,
    seq: int | str,
    device_type: str,
    manifest: bytes,
    binary: bytes,
    fw_name: str = "app",
) -> httpx.Response:
    return http.post(
        UPLOAD,
        headers=headers,
        data={ID: str(seq), DEVICE_TYPE: device_type, FW_NAME: fw_name},
        files=upload_files(manifest, binary),
    )


def unique_type(prefix: str = "t") -> str:
    return f"{prefix}-{secrets.token_hex(4)}"


def wait_until(predicate: Callable[[], bool], timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.02)
    return predicate()


def spy_answers(monkeypatch: pytest.MonkeyPatch, answerer: type) -> list[bool]:
    """What a fast-path answerer class returned for each request it saw (True: it answered)."""
    results: list[bool] = []
    original = answerer.__call__

    async def spy(self: Any, *args: Any) -> bool:
        result: bool = await original(self, *args)
        results.append(result)
        return result

    monkeypatch.setattr(answerer, "__call__", spy)
    return results
