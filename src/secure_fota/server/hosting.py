"""Hosting the update server: TLS files, the HTTP server (uvicorn or granian), worker processes.

:func:`serve` is ``fota server run`` once its options are settings. It finds the certificate
and key (PEM files, a PKCS#12 file, or a development certificate kept under
``<data_dir>/tls``), applies the database migrations once before any worker starts, and runs
uvicorn (the app in this process, or worker processes) or granian (always worker processes).
Worker processes build their app from the settings handed over in ``SETTINGS_ENV``; the
request-head deadline (uvicorn) and Prometheus' multi-process directory travel in environment
variables too. Temporary files (a PKCS#12 file's PEM, a decrypted key, metrics) live in
private directories removed when the server stops.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import datetime
import os
import shutil
import ssl
import sys
import tempfile
from pathlib import Path
from typing import Any, Final

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.serialization import pkcs12

from secure_fota.atomic_file import PRIVATE_FILE_MODE, private_directory
from secure_fota.errors import ConfigError
from secure_fota.keys.directory import write_key_file
from secure_fota.keys.tls import CA_FILE, CERT_FILE, KEY_FILE, generate_tls
from secure_fota.limits import MAX_REQUEST_HEAD
from secure_fota.loopback import is_loopback
from secure_fota.server.metrics import MULTIPROC_ENV
from secure_fota.server.preflight import check_tls_pair, freshness_warnings
from secure_fota.server.settings import SETTINGS_ENV, ServerSettings

__all__ = ["granian_version", "serve"]

#: pyproject.toml's extra: granian>=2.8,<3
_GRANIAN_VERSIONS: Final = ((2, 8), (3, 0))
_GRANIAN_HINT: Final = "pip install 'secure-fota[granian]'"

TlsFiles = tuple[Path, Path]
#: the server process's umask: files 0600, directories 0700
PRIVATE_UMASK: Final = 0o077


def _say(message: str) -> None:
    """A line for the operator on standard error (before any logging is configured)."""
    print(message, file=sys.stderr, flush=True)


def _private_dir(cleanup: contextlib.ExitStack, prefix: str) -> Path:
    """A new private temporary directory, removed when ``cleanup`` closes."""
    path = Path(tempfile.mkdtemp(prefix=prefix))
    cleanup.callback(shutil.rmtree, path, ignore_errors=True)
    return path


def serve(settings: ServerSettings) -> None:
    """Run the update server with ``settings`` until it is stopped."""
    if settings.http_server == "granian":
        granian_version()  # a clear error before anything is created
    for line in freshness_warnings(settings.freshness_key_file):
        _say(line)
    # whatever the server and its libraries create (database, blobs, keys, metrics files) is
    # its user's alone; the data directory's files are also created with explicit modes
    os.umask(PRIVATE_UMASK)
    with contextlib.ExitStack() as cleanup:
        tls = _tls_files(settings, cleanup)
        if tls is not None:
            password = settings.tls_key_password if settings.tls_p12_file is None else None
            secret = password.get_secret_value() if password is not None else None
            now = datetime.datetime.now(datetime.UTC)
            for line in check_tls_pair(tls[0], tls[1], secret, now=now):
                _say(line)
        if settings.http_server == "granian":
            _serve_granian(settings, tls, cleanup)
        else:
            _serve_uvicorn(settings, tls, cleanup)


# -- TLS files ------------------------------------------------------------------------------


def _tls_files(settings: ServerSettings, cleanup: contextlib.ExitStack) -> TlsFiles | None:
    """The certificate chain and key to serve with (``None``: plain HTTP, loopback only)."""
    if settings.tls_p12_file is not None:
        password = settings.tls_p12_password
        return _p12_to_pem(
            settings.tls_p12_file,
            password.get_secret_value() if password else None,
            _private_dir(cleanup, "fota-tls-"),
        )
    if settings.tls_cert_file is not None:
        if settings.tls_key_file is None:
            raise ConfigError("tls_cert_file needs tls_key_file")
        return settings.tls_cert_file, settings.tls_key_file
    if settings.allow_insecure_http:
        if not is_loopback(settings.host):
            raise ConfigError(
                f"refusing plain HTTP on {settings.host}: "
                "--insecure-http-for-localhost-only needs a loopback --host"
            )
        _say("warning: plain HTTP; credentials travel unencrypted")
        return None
    if settings.tls_dev_certificate:
        return _dev_certificate(settings)
    raise ConfigError(
        "no TLS certificate configured; give --tls-cert/--tls-key or --tls-p12 "
        "(plain HTTP only with --insecure-http-for-localhost-only)"
    )


def _write_plain_key(key: Any, path: Path) -> None:
    """The TLS key, unencrypted, in a new private (0600) file of a private temporary
    directory: what uvicorn and granian load."""
    data = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    write_key_file(path, data, private=True, force=False)


def _p12_to_pem(path: Path, password: str | None, directory: Path) -> TlsFiles:
    try:
        key, cert, extra = pkcs12.load_key_and_certificates(
            path.read_bytes(), password.encode() if password else None
        )
    except (OSError, ValueError) as exc:
        raise ConfigError(f"{path}: cannot read the PKCS#12 file ({exc})") from None
    if key is None or cert is None:
        raise ConfigError(f"{path}: the PKCS#12 file needs a private key and a certificate")
    key_path, cert_path = directory / KEY_FILE, directory / CERT_FILE
    _write_plain_key(key, key_path)
    chain = [cert, *extra]
    cert_path.write_bytes(b"".join(c.public_bytes(serialization.Encoding.PEM) for c in chain))
    return cert_path, key_path


def _decrypt_key(path: Path, password: str, directory: Path) -> Path:
    try:
        key = serialization.load_pem_private_key(path.read_bytes(), password.encode())
    except (OSError, ValueError, TypeError) as exc:
        raise ConfigError(
            f"{path}: cannot read the private key with tls_key_password ({exc})"
        ) from None
    key_path = directory / KEY_FILE
    _write_plain_key(key, key_path)
    return key_path


def _dev_certificate(settings: ServerSettings) -> TlsFiles:
    """The development certificate under ``<data_dir>/tls`` (made on first use)."""
    directory = settings.data_dir / "tls"
    cert, key, ca = directory / CERT_FILE, directory / KEY_FILE, directory / CA_FILE
    if not (cert.exists() and key.exists()):
        hosts = ["localhost", "127.0.0.1", "::1"]
        if settings.host not in ("0.0.0.0", "::", *hosts):  # noqa: S104 -- compared, not bound
            hosts.insert(0, settings.host)
        private_directory(directory)
        for made in generate_tls(directory, hosts, force=True):
            made.path.chmod(PRIVATE_FILE_MODE)  # the certificates too: the server's files
    _say(
        f"warning: no TLS certificate configured; serving a DEVELOPMENT certificate. "
        f"Clients must trust {ca.resolve()}. Configure tls_cert_file/tls_key_file "
        "(or --tls-cert/--tls-key, --tls-p12) in production."
    )
    return cert, key


# -- shared by both HTTP servers ------------------------------------------------------------


def _with_our_logger(server_config: dict[str, Any], handler: str) -> dict[str, Any]:
    """An HTTP server's logging configuration, plus our ``secure_fota`` logger on its
    ``handler``."""
    config: dict[str, Any] = copy.deepcopy(server_config)
    config["loggers"]["secure_fota"] = {"handlers": [handler], "level": "INFO", "propagate": False}
    return config


def _migrate(settings: ServerSettings) -> None:
    """Apply the database migrations once, and check that the blob store is usable, before
    any worker starts (so that a mistake is one line, not a worker's traceback)."""
    from secure_fota.server.context import build_store, open_database

    async def migrate() -> None:
        engine = await open_database(settings, migrate=True)
        await engine.dispose()
        store = build_store(settings)
        await store.start()
        try:
            await store.check()
        finally:
            await store.close()

    asyncio.run(migrate())


def _announce(settings: ServerSettings, *, secure: bool, server_name: str) -> None:
    workers = f"{settings.workers} worker{'s' if settings.workers > 1 else ''}"
    _say(
        f"fota update server on {'https' if secure else 'http'}://{settings.host}:{settings.port} "
        f"({server_name}, {workers}, {settings.storage} storage, "
        f"data in {settings.data_dir.resolve()})"
    )


# -- uvicorn --------------------------------------------------------------------------------


def _serve_uvicorn(
    settings: ServerSettings, tls: TlsFiles | None, cleanup: contextlib.ExitStack
) -> None:
    """uvicorn (uvloop and httptools when available) with our protocol: a deadline for each
    request head, and each answer's writes coalesced."""
    import uvicorn
    from uvicorn.config import LOGGING_CONFIG

    from secure_fota.server.uvicorn_protocol import HEAD_TIMEOUT_ENV, HeadTimeoutProtocol

    _migrate(settings)
    key_password = settings.tls_key_password
    options: dict[str, Any] = {
        "host": settings.host,
        "port": settings.port,
        "log_level": settings.log_level,
        "log_config": _with_our_logger(LOGGING_CONFIG, "default"),
        "server_header": False,
        # X-Forwarded-For/-Proto only from the configured proxies (none by default): from
        # anyone else they would let a client pick its address (and dodge the per-address
        # sign-in lock-out) or claim https
        "proxy_headers": bool(settings.forwarded_allow_ips),
        "forwarded_allow_ips": ",".join(settings.forwarded_allow_ips) or None,
        "ws": "none",
        "timeout_graceful_shutdown": 10,
        "http": HeadTimeoutProtocol,
    }
    os.environ[HEAD_TIMEOUT_ENV] = repr(settings.request_head_timeout)  # for every worker
    if tls is not None:
        options["ssl_certfile"] = str(tls[0])
        options["ssl_keyfile"] = str(tls[1])
        if key_password is not None:
            options["ssl_keyfile_password"] = key_password.get_secret_value()
    _announce(settings, secure=tls is not None, server_name="uvicorn")
    if settings.workers == 1:
        from secure_fota.server.app import create_app

        uvicorn.run(create_app(settings), **options)
        return
    os.environ[SETTINGS_ENV] = settings.to_environment()
    os.environ.setdefault(MULTIPROC_ENV, str(_private_dir(cleanup, "fota-metrics-")))
    uvicorn.run(
        "secure_fota.server.app:app_from_environment",
        factory=True,
        workers=settings.workers,
        **options,
    )


# -- granian --------------------------------------------------------------------------------


def granian_version() -> str:
    """The installed granian's version, or a ConfigError saying how to install it."""
    try:
        import granian
    except ImportError:
        raise ConfigError(
            f"--http-server granian: granian is not installed ({_GRANIAN_HINT})"
        ) from None
    version = str(getattr(granian, "__version__", "0"))
    try:
        major_minor = tuple(int(part) for part in version.split(".")[:2])
    except ValueError:
        major_minor = (0, 0)
    low, high = _GRANIAN_VERSIONS
    if not low <= major_minor < high:
        raise ConfigError(
            f"--http-server granian: granian {version} is installed; "
            f"secure-fota needs granian>=2.8,<3 ({_GRANIAN_HINT})"
        )
    return version


def _granian_server(settings: ServerSettings, tls: TlsFiles | None) -> Any:
    """granian's server object for these settings (it loads the certificate and key)."""
    from granian.constants import HTTPModes, Interfaces, SSLProtocols
    from granian.http import HTTP1Settings
    from granian.log import LOGGING_CONFIG, LogLevels
    from granian.server import Server

    key_password = settings.tls_key_password
    return Server(
        "secure_fota.server.app:proxied_app_from_environment",
        factory=True,
        address=settings.host,
        port=settings.port,
        interface=Interfaces.ASGI,  # with lifespan, as uvicorn
        workers=settings.workers,
        http=HTTPModes.http1,
        websockets=False,
        backlog=2048,  # uvicorn's
        http1_settings=HTTP1Settings(
            header_read_timeout=max(1, round(settings.request_head_timeout * 1000)),
            keep_alive=True,
            # hyper answers 431 when a request head outgrows its read buffer (and to more than
            # 100 headers); the per-line bounds are HeadLimitsMiddleware's
            max_buffer_size=MAX_REQUEST_HEAD,
        ),
        log_level=LogLevels(settings.log_level),
        log_dictconfig=_with_our_logger(LOGGING_CONFIG, "console"),
        log_access=settings.log_level in ("info", "debug"),  # as uvicorn's access log
        ssl_cert=tls[0] if tls else None,
        ssl_key=tls[1] if tls else None,
        ssl_key_password=key_password.get_secret_value() if key_password else None,
        ssl_protocol_min=SSLProtocols.tls12,  # as uvicorn (ESP-IDF's mbedTLS speaks TLS 1.2)
        respawn_failed_workers=True,  # as uvicorn's supervisor
        workers_kill_timeout=10,  # seconds for in-flight requests at shutdown, as uvicorn
    )


def _serve_granian(
    settings: ServerSettings, tls: TlsFiles | None, cleanup: contextlib.ExitStack
) -> None:
    """The same app under granian: Rust HTTP/1.1 and TLS in every worker process.

    granian always runs the app in worker processes (also with one worker), so the settings
    travel in SETTINGS_ENV; the request-head deadline is granian's HTTP/1 header read timeout.
    """
    import multiprocessing

    # fresh worker interpreters, as uvicorn's: a forked worker would inherit this process's
    # imports (prometheus_client picks in-memory or shared-file values when first imported)
    multiprocessing.set_start_method("spawn", force=True)
    if settings.workers > 1:
        os.environ.setdefault(MULTIPROC_ENV, str(_private_dir(cleanup, "fota-metrics-")))
    if tls is not None and settings.tls_key_password is not None:
        # granian's Rust TLS cannot read every encrypted PEM key: hand it the key decrypted,
        # in a private temporary file (as a PKCS#12 file is)
        password = settings.tls_key_password.get_secret_value()
        tls = (tls[0], _decrypt_key(tls[1], password, _private_dir(cleanup, "fota-tls-")))
        settings = settings.model_copy(update={"tls_key_password": None})
    version = granian_version()
    _migrate(settings)
    try:
        server = _granian_server(settings, tls)
    except (OSError, ssl.SSLError) as exc:
        raise ConfigError(f"cannot load the TLS certificate and key ({exc})") from None
    os.environ[SETTINGS_ENV] = settings.to_environment()
    _announce(settings, secure=tls is not None, server_name=f"granian {version}")
    server.serve()
