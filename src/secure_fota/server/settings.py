"""Server configuration: defaults, then a TOML file, then ``FOTA_*`` environment variables,
then command-line options (highest).

Every limit is a named, validated setting. Secrets are :class:`SecretStr` and are masked by
:meth:`ServerSettings.masked` (``fota server config show``).
"""

from __future__ import annotations

import contextvars
import ipaddress
import json
import tomllib
from pathlib import Path
from typing import Annotated, Any, Final, Literal

from pydantic import Field, SecretStr, ValidationError, field_validator
from pydantic_settings import (
    BaseSettings,
    InitSettingsSource,
    NoDecode,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
)

from secure_fota.bounded_read import read_bounded
from secure_fota.errors import ConfigError
from secure_fota.limits import MAX_MANIFEST_SIZE

__all__ = [
    "DEFAULT_DATA_DIR",
    "MASK",
    "SETTINGS_ENV",
    "ServerSettings",
    "load_settings",
    "settings_from_environment",
]

DEFAULT_DATA_DIR: Final = Path("fota-data")
MASK: Final = "**********"
#: environment variable through which ``fota server run`` hands its effective settings to workers
SETTINGS_ENV: Final = "SECURE_FOTA_SERVER_SETTINGS"
_MAX_CONFIG_FILE: Final = 1024 * 1024
_FILE_VALUES: contextvars.ContextVar[dict[str, Any] | None] = contextvars.ContextVar(
    "fota_server_file_values", default=None
)


class ServerSettings(BaseSettings):
    """Effective configuration of one server (every worker builds its app from one of these)."""

    model_config = SettingsConfigDict(
        env_prefix="FOTA_", extra="forbid", validate_default=True, frozen=True
    )

    # where things live
    data_dir: Path = Field(DEFAULT_DATA_DIR, description="SQLite database, blobs, staging files")
    database_url: str | None = Field(
        None,
        description="SQLAlchemy URL; default sqlite+aiosqlite:///<data_dir>/fota.db. "
        "postgresql://, mysql:// and mariadb:// are mapped to asyncpg / aiomysql.",
    )
    db_pool_size: int = Field(10, ge=1, le=200)
    db_connect_timeout: float = Field(5.0, gt=0, le=120)
    migrate_on_start: bool = True

    # blobs
    storage: Literal["local", "s3"] = "local"
    s3_endpoint_url: str | None = None
    s3_bucket: str | None = None
    s3_region: str = "us-east-1"
    s3_prefix: str = Field("blobs/", max_length=200)
    s3_access_key_id: str | None = None
    s3_secret_access_key: SecretStr | None = None
    s3_presign_downloads: bool = False
    s3_presign_expiry: int = Field(300, ge=10, le=7 * 86400)

    # limits
    max_upload_size: int = Field(16 * 1024 * 1024, ge=1024, le=2**31)
    max_manifest_size: int = Field(MAX_MANIFEST_SIZE, ge=512, le=1024 * 1024)
    upload_timeout: float = Field(
        900, gt=0, description="seconds a client may take to send one upload's body (else 408)"
    )
    request_head_timeout: float = Field(
        10,
        gt=0,
        le=3600,
        description="seconds a client may take to send a request line and headers (else the "
        "connection is closed: slowloris)",
    )
    gc_grace_seconds: int = Field(3600, ge=0)
    gc_on_start: bool = Field(
        True, description="remove unreferenced blobs older than gc_grace_seconds at start"
    )
    staging_max_age: int = Field(86400, ge=60)

    # devices
    device_auth: Literal["open", "device-type-token", "device-token"] = "open"
    freshness_key_file: Path | None = None
    cache_ttl: float = Field(
        0.5, ge=0, le=1.0, description="seconds between checks of the shared generation counter"
    )
    binary_cache_size: int = Field(
        64 * 1024 * 1024,
        ge=0,
        description="bytes of release images each worker keeps in memory for downloads "
        "(each image at most half of it; 0: read every download from storage)",
    )

    # fleet operations
    hold_new_releases: bool = Field(
        False,
        description="new uploads are held: they reach devices only through a rollout",
    )
    rollout_tick: float = Field(
        2.0, gt=0, le=3600, description="seconds between the rollout engine's steps (per worker)"
    )

    # authentication
    auth_max_failures: int = Field(10, ge=1, le=10_000)
    auth_failure_window: float = Field(60.0, gt=0, le=86400)
    auth_lockout_seconds: int = Field(60, ge=1, le=86400)

    # serving
    host: str = "127.0.0.1"
    port: int = Field(8443, ge=0, le=65535)
    workers: int = Field(1, ge=1, le=64)
    http_server: Literal["granian", "uvicorn"] = Field(
        "granian",
        description="HTTP and TLS server of `fota server run`: granian (default; Rust HTTP/1.1 "
        "and TLS, about twice uvicorn's device polls) or uvicorn (Python, uvloop and httptools)",
    )
    tls_cert_file: Path | None = None
    tls_key_file: Path | None = None
    tls_key_password: SecretStr | None = None
    tls_p12_file: Path | None = None
    tls_p12_password: SecretStr | None = None
    tls_dev_certificate: bool = Field(
        True,
        description="without tls_cert_file/tls_p12_file, create a development CA and certificate "
        "under <data_dir>/tls (never use them in production)",
    )
    allow_insecure_http: bool = False
    forwarded_allow_ips: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description="addresses or networks of the proxies whose X-Forwarded-For and "
        "X-Forwarded-Proto are believed (a list, or comma-separated in FOTA_FORWARDED_ALLOW_IPS); "
        "default none: the client is the TCP peer and the scheme is the server's own",
    )
    log_level: Literal["critical", "error", "warning", "info", "debug"] = "info"

    @field_validator("forwarded_allow_ips", mode="before")
    @classmethod
    def _proxies(cls, value: Any) -> Any:
        if isinstance(value, str):
            value = [part.strip() for part in value.split(",") if part.strip()]
        if isinstance(value, list):
            for entry in value:
                try:
                    ipaddress.ip_network(str(entry), strict=False)
                except ValueError:
                    raise ValueError(
                        f"{entry!r} is not an IP address or network (e.g. 10.0.0.5, 10.0.0.0/24)"
                    ) from None
        return value

    @field_validator("s3_prefix")
    @classmethod
    def _prefix(cls, value: str) -> str:
        if value and (value.startswith("/") or ".." in value or "\\" in value):
            raise ValueError("must be a relative key prefix without '..' or '\\'")
        return value

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,  # noqa: ARG003 -- pydantic-settings API
        file_secret_settings: PydanticBaseSettingsSource,  # noqa: ARG003
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        file_values = _FILE_VALUES.get() or {}
        return init_settings, env_settings, InitSettingsSource(settings_cls, file_values)

    # derived values -------------------------------------------------------------------------

    def effective_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite+aiosqlite:///{(self.data_dir / 'fota.db').resolve()}"

    def masked(self) -> dict[str, Any]:
        """Every setting, JSON-friendly, with secrets and URL passwords masked."""
        from sqlalchemy.engine import make_url

        values = self.model_dump(mode="json")
        url = self.effective_database_url()
        try:
            values["database_url"] = make_url(url).render_as_string(hide_password=True)
        except Exception:  # noqa: BLE001 -- an unparsable URL is shown masked entirely
            values["database_url"] = MASK
        for name, field_value in self:
            if isinstance(field_value, SecretStr):
                values[name] = MASK
        return values

    def to_environment(self) -> str:
        """JSON of every explicitly effective value, secrets revealed (for worker processes)."""
        values = self.model_dump(mode="json")
        for name, field_value in self:
            if isinstance(field_value, SecretStr):
                values[name] = field_value.get_secret_value()
        return json.dumps(values)


def _read_config_file(path: Path) -> dict[str, Any]:
    raw = read_bounded(
        path, _MAX_CONFIG_FILE, what="configuration file", error=ConfigError, missing=ConfigError
    )
    try:
        data = tomllib.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"{path}: not valid TOML ({exc})") from None
    table = data.get("server", data)
    if not isinstance(table, dict):
        raise ConfigError(f"{path}: [server] must be a table")
    return table


def _describe(exc: ValidationError) -> str:
    parts = []
    for error in exc.errors():
        where = ".".join(str(item) for item in error["loc"]) or "settings"
        parts.append(f"{where}: {error['msg']}")
    return "; ".join(parts)


def load_settings(config_file: Path | None = None, **overrides: Any) -> ServerSettings:
    """Build the effective settings. ``overrides`` (command-line options) win over everything;
    ``None`` overrides are ignored so that unset options keep file and environment values."""
    file_values = _read_config_file(config_file) if config_file else {}
    given = {key: value for key, value in overrides.items() if value is not None}
    token = _FILE_VALUES.set(file_values)
    try:
        return ServerSettings(**given)
    except ValidationError as exc:
        source = f"{config_file}, " if config_file else ""
        raise ConfigError(
            f"invalid server configuration ({source}FOTA_* variables, options): {_describe(exc)}"
        ) from None
    finally:
        _FILE_VALUES.reset(token)


def settings_from_environment(environ: dict[str, str]) -> ServerSettings:
    """The settings a parent process handed over in :data:`SETTINGS_ENV` (or the defaults)."""
    text = environ.get(SETTINGS_ENV)
    if not text:
        return load_settings()
    try:
        values = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ConfigError(f"{SETTINGS_ENV} is not JSON ({exc})") from None
    if not isinstance(values, dict):
        raise ConfigError(f"{SETTINGS_ENV} must hold a JSON object")
    return load_settings(None, **values)
