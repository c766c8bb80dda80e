"""``fota server``: run the update server and administer its database.

Every subcommand takes the same ``--config FILE`` and ``--data-dir DIR`` options, so that
``run``, ``db``, ``user`` and ``token`` act on the same database.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import click

from secure_fota.cli.options import FotaGroup
from secure_fota.cli.output import echo_json
from secure_fota.errors import InputError

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


@click.group(cls=FotaGroup)
def server() -> None:
    """Run the update server and manage its users, tokens and database.

    Every subcommand takes --config FILE and --data-dir DIR; see docs/api.md for the HTTP API.
    """


# run ---------------------------------------------------------------------------------------


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
    "--freshness-key",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="freshness_key.pem from `fota keys generate`: sign a freshness statement for every "
    "device poll (devices require them by default). Setting freshness_key_file.",
)
@click.option(
    "--http-server",
    type=click.Choice(["granian", "uvicorn"]),
    default=None,
    help="HTTP and TLS server: granian (default; Rust HTTP/1.1 and TLS, about twice uvicorn's "
    "device polls) or uvicorn (Python). Setting http_server.",
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
    freshness_key: Path | None,
    http_server: str | None,
    insecure: bool,
) -> None:
    """Serve the update server with granian (Rust HTTP/1.1 and TLS), or with uvicorn
    (--http-server uvicorn; uvloop and httptools when available)."""
    from secure_fota.server.hosting import serve

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
        freshness_key_file=freshness_key,
        http_server=http_server,
        allow_insecure_http=True if insecure else None,
    )
    serve(settings)


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
    """Viewers, uploaders and admins (HTTP Basic and the dashboard; Argon2id password hashes)."""


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
@click.option(
    "--role",
    type=click.Choice(["viewer", "uploader", "admin"]),
    required=True,
    help="viewer: looks (API listings, dashboard); uploader: also uploads; admin: also yanks, "
    "unyanks and deletes.",
)
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
    """Create a user who looks (viewer), uploads (uploader) or also yanks and deletes (admin);
    users sign in with HTTP Basic and to the dashboard at /ui/."""
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
    """Bearer tokens for viewers, uploaders, admins and devices (stored as SHA-256, shown
    once)."""


@token_group.command("create")
@common_options
@click.argument("name")
@click.option(
    "--role",
    type=click.Choice(["viewer", "uploader", "admin", "device"]),
    required=True,
    help="viewer (read-only listings), uploader / admin (as for users) or device (polls and "
    "downloads for --device-type).",
)
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
