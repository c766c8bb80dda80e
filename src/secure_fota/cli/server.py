"""``fota server``: run the update server and administer its database.

Every subcommand takes the same ``--config FILE`` and ``--data-dir DIR`` options, so that
``run``, ``db``, ``user`` and ``token`` act on the same database.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import sys
import tempfile
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import click

from secure_fota.cli.output import echo_json
from secure_fota.errors import ConfigError, InputError
from secure_fota.loopback import is_loopback

if TYPE_CHECKING:
    from secure_fota.server.db.repository import Repository
    from secure_fota.server.settings import ServerSettings

__all__ = ["server"]

_T = TypeVar("_T")
_F = TypeVar("_F", bound=Callable[..., Any])


def common_options(function: _F) -> _F:
    function = click.option(
        "--data-dir",
        type=click.Path(file_okay=False, path_type=Path),
        default=None,
        help="Data directory (SQLite database, blobs); default ./fota-data.",
    )(function)
    return click.option(
        "--config",
        "config",
        type=click.Path(dir_okay=False, path_type=Path),
        default=None,
        envvar="FOTA_CONFIG",
        help="TOML configuration file (FOTA_* environment variables override it).",
    )(function)


def _settings(config: Path | None, data_dir: Path | None, **overrides: Any) -> ServerSettings:
    from secure_fota.server.settings import load_settings

    return load_settings(config, data_dir=data_dir, **overrides)


def _with_repository(settings: ServerSettings, action: Callable[[Repository], Awaitable[_T]]) -> _T:
    from secure_fota.server.context import open_database
    from secure_fota.server.db.repository import Repository

    async def main() -> _T:
        engine = await open_database(settings, migrate=True)
        try:
            return await action(Repository(engine))
        finally:
            await engine.dispose()

    return asyncio.run(main())


@click.group()
def server() -> None:
    """Run the update server and manage its users, tokens and database.

    Every subcommand takes --config FILE and --data-dir DIR; see docs/api.md for the HTTP API.
    """


# run ---------------------------------------------------------------------------------------


def _write_plain_key(key: Any, path: Path) -> None:
    """The TLS key, unencrypted, in a new private (0600) file of a private temporary
    directory: what uvicorn and granian load."""
    from cryptography.hazmat.primitives import serialization

    from secure_fota.keys.directory import write_key_file

    data = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    write_key_file(path, data, private=True, force=False)


def _p12_to_pem(path: Path, password: str | None, directory: Path) -> tuple[Path, Path]:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.serialization import pkcs12

    try:
        key, cert, extra = pkcs12.load_key_and_certificates(
            path.read_bytes(), password.encode() if password else None
        )
    except (OSError, ValueError) as exc:
        raise ConfigError(f"{path}: cannot read the PKCS#12 file ({exc})") from None
    if key is None or cert is None:
        raise ConfigError(f"{path}: the PKCS#12 file needs a private key and a certificate")
    key_path, cert_path = directory / "server.key", directory / "server.pem"
    _write_plain_key(key, key_path)
    chain = [cert, *extra]
    cert_path.write_bytes(b"".join(c.public_bytes(serialization.Encoding.PEM) for c in chain))
    return cert_path, key_path


def _dev_certificate(settings: ServerSettings) -> tuple[Path, Path]:
    from secure_fota.keys.tls import generate_tls

    directory = settings.data_dir / "tls"
    cert, key, ca = directory / "server.pem", directory / "server.key", directory / "ca.pem"
    if not (cert.exists() and key.exists()):
        hosts = ["localhost", "127.0.0.1", "::1"]
        if settings.host not in ("0.0.0.0", "::", *hosts):  # noqa: S104 -- compared, not bound
            hosts.insert(0, settings.host)
        generate_tls(directory, hosts, force=True)
    click.echo(
        f"warning: no TLS certificate configured; serving a DEVELOPMENT certificate. "
        f"Clients must trust {ca.resolve()}. Configure tls_cert_file/tls_key_file "
        "(or --tls-cert/--tls-key, --tls-p12) in production.",
        err=True,
    )
    return cert, key


@server.command("run")
@common_options
@click.option("--host", default=None, help="Address to bind (default 127.0.0.1).")
@click.option("--port", type=click.IntRange(0, 65535), default=None, help="Port (default 8443).")
@click.option("--workers", type=click.IntRange(1, 64), default=None, help="Worker processes.")
@click.option(
    "--tls-cert",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="PEM certificate chain of the server (with --tls-key).",
)
@click.option(
    "--tls-key",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="PEM private key (password: FOTA_TLS_KEY_PASSWORD).",
)
@click.option(
    "--tls-p12",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="PKCS#12 file with key and certificate (password: FOTA_TLS_P12_PASSWORD).",
)
@click.option(
    "--http-server",
    type=click.Choice(["uvicorn", "granian"]),
    default=None,
    help="HTTP and TLS server: uvicorn (default) or granian (Rust HTTP/1.1 and TLS, faster "
    "device polls; pip install 'secure-fota[granian]'). Setting http_server.",
)
@click.option(
    "--insecure-http-for-localhost-only",
    "insecure",
    is_flag=True,
    help="Serve plain HTTP (credentials in clear!); only with a loopback --host, e.g. behind "
    "a TLS-terminating proxy on the same machine.",
)
def run(
    config: Path | None,
    data_dir: Path | None,
    host: str | None,
    port: int | None,
    workers: int | None,
    tls_cert: Path | None,
    tls_key: Path | None,
    tls_p12: Path | None,
    http_server: str | None,
    insecure: bool,
) -> None:
    """Serve the update server with uvicorn (uvloop and httptools when available), or with
    granian (--http-server granian)."""
    if (tls_cert is None) != (tls_key is None):
        raise InputError("--tls-cert", "--tls-cert and --tls-key go together")
    if tls_p12 is not None and tls_cert is not None:
        raise InputError("--tls-p12", "give either --tls-p12 or --tls-cert/--tls-key")
    settings = _settings(
        config,
        data_dir,
        host=host,
        port=port,
        workers=workers,
        tls_cert_file=tls_cert,
        tls_key_file=tls_key,
        tls_p12_file=tls_p12,
        http_server=http_server,
        allow_insecure_http=True if insecure else None,
    )
    if settings.http_server == "granian":
        _granian_version()  # a clear error before anything is created
    temp_dir: Path | None = None
    try:
        ssl_files: tuple[Path, Path] | None = None
        if settings.tls_p12_file is not None:
            temp_dir = Path(tempfile.mkdtemp(prefix="fota-tls-"))
            password = settings.tls_p12_password
            ssl_files = _p12_to_pem(
                settings.tls_p12_file,
                password.get_secret_value() if password else None,
                temp_dir,
            )
        elif settings.tls_cert_file is not None:
            if settings.tls_key_file is None:
                raise ConfigError("tls_cert_file needs tls_key_file")
            ssl_files = (settings.tls_cert_file, settings.tls_key_file)
        elif settings.allow_insecure_http:
            if not is_loopback(settings.host):
                raise ConfigError(
                    f"refusing plain HTTP on {settings.host}: "
                    "--insecure-http-for-localhost-only needs a loopback --host"
                )
            click.echo("warning: plain HTTP; credentials travel unencrypted", err=True)
        elif settings.tls_dev_certificate:
            ssl_files = _dev_certificate(settings)
        else:
            raise ConfigError(
                "no TLS certificate configured; give --tls-cert/--tls-key or --tls-p12 "
                "(plain HTTP only with --insecure-http-for-localhost-only)"
            )
        if settings.http_server == "granian":
            _serve_granian(settings, ssl_files)
        else:
            _serve(settings, ssl_files)
    finally:
        if temp_dir is not None:
            shutil.rmtree(temp_dir, ignore_errors=True)


def _with_our_logger(server_config: dict[str, Any], handler: str) -> dict[str, Any]:
    """An HTTP server's logging configuration, plus our ``secure_fota`` logger on its
    ``handler``."""
    import copy

    config: dict[str, Any] = copy.deepcopy(server_config)
    config["loggers"]["secure_fota"] = {"handlers": [handler], "level": "INFO", "propagate": False}
    return config


def _log_config() -> dict[str, Any]:
    """uvicorn's logging configuration, plus our ``secure_fota`` logger."""
    from uvicorn.config import LOGGING_CONFIG

    return _with_our_logger(LOGGING_CONFIG, "default")


def _migrate(settings: ServerSettings) -> None:
    """Apply the database migrations once, before any worker starts."""
    from secure_fota.server.context import open_database

    async def migrate() -> None:
        engine = await open_database(settings, migrate=True)
        await engine.dispose()

    asyncio.run(migrate())


def _announce(settings: ServerSettings, *, secure: bool, server_name: str) -> None:
    workers = f"{settings.workers} worker{'s' if settings.workers > 1 else ''}"
    click.echo(
        f"fota update server on {'https' if secure else 'http'}://{settings.host}:{settings.port} "
        f"({server_name}, {workers}, {settings.storage} storage, "
        f"data in {settings.data_dir.resolve()})",
        err=True,
    )


def _serve(settings: ServerSettings, ssl_files: tuple[Path, Path] | None) -> None:
    import uvicorn

    from secure_fota.server.settings import SETTINGS_ENV

    _migrate(settings)
    key_password = settings.tls_key_password
    options: dict[str, Any] = {
        "host": settings.host,
        "port": settings.port,
        "log_level": settings.log_level,
        "log_config": _log_config(),
        "server_header": False,
        "proxy_headers": True,
        "ws": "none",
        "timeout_graceful_shutdown": 10,
    }
    from secure_fota.server.protocol import HEAD_TIMEOUT_ENV, HeadTimeoutProtocol

    options["http"] = HeadTimeoutProtocol
    os.environ[HEAD_TIMEOUT_ENV] = repr(settings.request_head_timeout)  # for every worker
    if ssl_files is not None:
        options["ssl_certfile"] = str(ssl_files[0])
        options["ssl_keyfile"] = str(ssl_files[1])
        if key_password is not None:
            options["ssl_keyfile_password"] = key_password.get_secret_value()
    _announce(settings, secure=ssl_files is not None, server_name="uvicorn")
    if settings.workers == 1:
        from secure_fota.server.app import create_app

        uvicorn.run(create_app(settings), **options)
    else:
        from secure_fota.server.metrics import MULTIPROC_ENV

        os.environ[SETTINGS_ENV] = settings.to_environment()
        metrics_dir = tempfile.mkdtemp(prefix="fota-metrics-")
        os.environ.setdefault(MULTIPROC_ENV, metrics_dir)
        try:
            uvicorn.run(
                "secure_fota.server.app:app_from_environment",
                factory=True,
                workers=settings.workers,
                **options,
            )
        finally:
            shutil.rmtree(metrics_dir, ignore_errors=True)


_GRANIAN_VERSIONS = ((2, 8), (3, 0))  # pyproject.toml's extra: granian>=2.8,<3


def _granian_version() -> str:
    """The installed granian's version, or a ConfigError saying how to install it."""
    hint = "pip install 'secure-fota[granian]'"
    try:
        import granian
    except ImportError:
        raise ConfigError(f"--http-server granian: granian is not installed ({hint})") from None
    version = str(getattr(granian, "__version__", "0"))
    try:
        major_minor = tuple(int(part) for part in version.split(".")[:2])
    except ValueError:
        major_minor = (0, 0)
    low, high = _GRANIAN_VERSIONS
    if not low <= major_minor < high:
        raise ConfigError(
            f"--http-server granian: granian {version} is installed; "
            f"secure-fota needs granian>=2.8,<3 ({hint})"
        )
    return version


def _granian_log_config() -> dict[str, Any]:
    """granian's logging configuration, plus our ``secure_fota`` logger."""
    from granian.log import LOGGING_CONFIG

    return _with_our_logger(LOGGING_CONFIG, "console")


def _granian_server(settings: ServerSettings, ssl_files: tuple[Path, Path] | None) -> Any:
    """granian's server object for these settings (it loads the certificate and key)."""
    from granian.constants import HTTPModes, Interfaces, SSLProtocols
    from granian.http import HTTP1Settings
    from granian.log import LogLevels
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
        ),
        log_level=LogLevels(settings.log_level),
        log_dictconfig=_granian_log_config(),
        log_access=settings.log_level in ("info", "debug"),  # as uvicorn's access log
        ssl_cert=ssl_files[0] if ssl_files else None,
        ssl_key=ssl_files[1] if ssl_files else None,
        ssl_key_password=key_password.get_secret_value() if key_password else None,
        ssl_protocol_min=SSLProtocols.tls12,  # as uvicorn (ESP-IDF's mbedTLS speaks TLS 1.2)
        respawn_failed_workers=True,  # as uvicorn's supervisor
        workers_kill_timeout=10,  # seconds for in-flight requests at shutdown, as uvicorn
    )


def _serve_granian(settings: ServerSettings, ssl_files: tuple[Path, Path] | None) -> None:
    """The same app under granian: Rust HTTP/1.1 and TLS in every worker process.

    granian always runs the app in worker processes (also with one worker), so the settings
    travel in SETTINGS_ENV; the request-head deadline is granian's HTTP/1 header read timeout.
    """
    import multiprocessing

    from secure_fota.server.metrics import MULTIPROC_ENV

    # fresh worker interpreters, as uvicorn's: a forked worker would inherit this process's
    # imports (prometheus_client picks in-memory or shared-file values when first imported)
    multiprocessing.set_start_method("spawn", force=True)
    metrics_dir: str | None = None
    if settings.workers > 1:
        metrics_dir = tempfile.mkdtemp(prefix="fota-metrics-")
        os.environ.setdefault(MULTIPROC_ENV, metrics_dir)
    key_dir: Path | None = None
    try:
        if ssl_files is not None and settings.tls_key_password is not None:
            # granian's Rust TLS cannot read every encrypted PEM key: hand it the key
            # decrypted, in a private temporary file (as a PKCS#12 file is)
            key_dir = Path(tempfile.mkdtemp(prefix="fota-tls-"))
            ssl_files = (
                ssl_files[0],
                _decrypt_key(ssl_files[1], settings.tls_key_password.get_secret_value(), key_dir),
            )
            settings = settings.model_copy(update={"tls_key_password": None})
        _run_granian(settings, ssl_files)
    finally:
        if metrics_dir is not None:
            shutil.rmtree(metrics_dir, ignore_errors=True)
        if key_dir is not None:
            shutil.rmtree(key_dir, ignore_errors=True)


def _decrypt_key(path: Path, password: str, directory: Path) -> Path:
    from cryptography.hazmat.primitives import serialization

    try:
        key = serialization.load_pem_private_key(path.read_bytes(), password.encode())
    except (OSError, ValueError, TypeError) as exc:
        raise ConfigError(
            f"{path}: cannot read the private key with tls_key_password ({exc})"
        ) from None
    key_path = directory / "server.key"
    _write_plain_key(key, key_path)
    return key_path


def _run_granian(settings: ServerSettings, ssl_files: tuple[Path, Path] | None) -> None:
    import ssl

    from secure_fota.server.settings import SETTINGS_ENV

    version = _granian_version()
    _migrate(settings)
    try:
        server = _granian_server(settings, ssl_files)
    except (OSError, ssl.SSLError) as exc:
        raise ConfigError(f"cannot load the TLS certificate and key ({exc})") from None
    os.environ[SETTINGS_ENV] = settings.to_environment()
    _announce(settings, secure=ssl_files is not None, server_name=f"granian {version}")
    server.serve()


# config, db --------------------------------------------------------------------------------


@server.group("config")
def config_group() -> None:
    """Inspect the effective configuration."""


@config_group.command("show")
@common_options
@click.option("--json", "as_json", is_flag=True, help="One JSON object.")
def config_show(config: Path | None, data_dir: Path | None, as_json: bool) -> None:
    """Print the effective configuration (defaults, file, FOTA_* variables), secrets masked."""
    values = _settings(config, data_dir).masked()
    if as_json:
        echo_json(values)
        return
    width = max(len(name) for name in values)
    for name, value in values.items():
        click.echo(f"{name.ljust(width)} = {'' if value is None else value}")


@server.group("db")
def db_group() -> None:
    """Database schema migrations."""


@db_group.command("upgrade")
@common_options
def db_upgrade(config: Path | None, data_dir: Path | None) -> None:
    """Apply every pending migration (safe to run while servers run or start)."""
    from secure_fota.server.db.migrate import current_revision, head_revision

    settings = _settings(config, data_dir)

    async def action(repository: Repository) -> str | None:
        return await current_revision(repository.engine)

    revision = _with_repository(settings, action)
    click.echo(f"database is at revision {revision} (head {head_revision()})")


@server.command("gc")
@common_options
@click.option(
    "--grace",
    type=click.IntRange(0),
    default=None,
    help="Keep unreferenced blobs younger than this many seconds (default gc_grace_seconds).",
)
def gc(config: Path | None, data_dir: Path | None, grace: int | None) -> None:
    """Delete stored files that no release references (left by deletes or failed uploads)."""
    from secure_fota.server.context import build_store
    from secure_fota.server.releases import collect_garbage

    settings = _settings(config, data_dir)

    async def action(repository: Repository) -> int:
        store = build_store(settings)
        await store.start()
        try:
            return await collect_garbage(
                repository, store, grace=settings.gc_grace_seconds if grace is None else grace
            )
        finally:
            await store.close()

    click.echo(f"removed {_with_repository(settings, action)} unreferenced blobs")


# users and tokens --------------------------------------------------------------------------


@server.group("user")
def user_group() -> None:
    """Uploaders and admins (HTTP Basic, Argon2id password hashes)."""


def _read_password(from_stdin: bool) -> str:
    if from_stdin:
        line = sys.stdin.readline()
        password = line[:-1] if line.endswith("\n") else line
    else:
        password = click.prompt("password", hide_input=True, confirmation_prompt=True)
    if len(password) < 12:
        raise InputError("password", "must be at least 12 characters long")
    return password


@user_group.command("add")
@common_options
@click.argument("name")
@click.option("--role", type=click.Choice(["uploader", "admin"]), required=True)
@click.option("--password-stdin", is_flag=True, help="Read the password from standard input.")
@click.option("--replace", is_flag=True, help="Replace an existing user's password and role.")
def user_add(
    config: Path | None,
    data_dir: Path | None,
    name: str,
    role: str,
    password_stdin: bool,
    replace: bool,
) -> None:
    """Create a user who uploads (uploader) or also yanks and deletes (admin)."""
    from secure_fota.formats.names import check_name
    from secure_fota.server.auth import hash_password

    check_name("NAME", name)
    settings = _settings(config, data_dir)
    password_hash = hash_password(_read_password(password_stdin))

    async def action(repository: Repository) -> None:
        await repository.add_user(name, password_hash, role, replace=replace)

    _with_repository(settings, action)
    click.echo(f"user {name} ({role}) saved")


@user_group.command("list")
@common_options
def user_list(config: Path | None, data_dir: Path | None) -> None:
    """List users (never their password hashes)."""
    settings = _settings(config, data_dir)

    async def action(repository: Repository) -> list[tuple[str, str, bool]]:
        return [(u.name, u.role, u.disabled) for u in await repository.users()]

    for name, role, disabled in _with_repository(settings, action):
        click.echo("\t".join([name, role, *(["disabled"] if disabled else [])]))


@user_group.command("remove")
@common_options
@click.argument("name")
def user_remove(config: Path | None, data_dir: Path | None, name: str) -> None:
    """Delete a user."""
    settings = _settings(config, data_dir)

    async def action(repository: Repository) -> None:
        await repository.remove_user(name)

    _with_repository(settings, action)
    click.echo(f"user {name} removed")


@server.group("token")
def token_group() -> None:
    """Bearer tokens for uploaders, admins and devices (stored as SHA-256, shown once)."""


@token_group.command("create")
@common_options
@click.argument("name")
@click.option("--role", type=click.Choice(["uploader", "admin", "device"]), required=True)
@click.option("--device-type", default=None, help="Device type a device token is valid for.")
@click.option(
    "--shared",
    is_flag=True,
    help="A device-type token shared by a fleet (device_auth = device-type-token); "
    "without it a device token belongs to one device (NAME).",
)
def token_create(
    config: Path | None,
    data_dir: Path | None,
    name: str,
    role: str,
    device_type: str | None,
    shared: bool,
) -> None:
    """Create a token and print it once."""
    from secure_fota.formats.names import check_name
    from secure_fota.server.auth import new_token, token_digest

    check_name("NAME", name)
    if role == "device":
        if device_type is None:
            raise InputError("--device-type", "a device token needs --device-type")
        check_name("--device-type", device_type)
    elif device_type is not None or shared:
        raise InputError("--device-type", "only device tokens have a device type")
    settings = _settings(config, data_dir)
    token = new_token()

    async def action(repository: Repository) -> None:
        await repository.add_token(
            name,
            token_digest(token),
            role,
            device_type=device_type,
            per_device=role == "device" and not shared,
        )

    _with_repository(settings, action)
    click.echo(token)
    click.echo(f"token {name} ({role}) created; it is shown only this once", err=True)


@token_group.command("list")
@common_options
def token_list(config: Path | None, data_dir: Path | None) -> None:
    """List tokens (names and roles; the secrets are not stored)."""
    settings = _settings(config, data_dir)

    async def action(repository: Repository) -> list[str]:
        lines = []
        for t in await repository.tokens():
            scope = f"{t.device_type} ({'device' if t.per_device else 'shared'})"
            fields = [t.name, t.role, scope if t.device_type else "-"]
            lines.append("\t".join(fields + (["revoked"] if t.revoked else [])))
        return lines

    for line in _with_repository(settings, action):
        click.echo(line)


@token_group.command("revoke")
@common_options
@click.argument("name")
def token_revoke(config: Path | None, data_dir: Path | None, name: str) -> None:
    """Revoke a token (every worker refuses it within cache_ttl)."""
    settings = _settings(config, data_dir)

    async def action(repository: Repository) -> None:
        await repository.revoke_token(name)

    _with_repository(settings, action)
    click.echo(f"token {name} revoked")
