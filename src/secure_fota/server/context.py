"""Everything one worker's app holds, built in the lifespan (never at import time)."""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass

from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine

from secure_fota.atomic_file import create_private_file, private_directory
from secure_fota.crypto.freshness import FreshnessSigner
from secure_fota.crypto.keys import Role
from secure_fota.errors import ConfigError
from secure_fota.keys.directory import load_private_key_file
from secure_fota.server.auth import (
    Authenticator,
    DeviceAuthMode,
    FailureThrottle,
    SharedFailureThrottle,
)
from secure_fota.server.cache import BlobCache, NewestCache, ReleaseCache
from secure_fota.server.db.auth_failures import AuthFailureStore
from secure_fota.server.db.engine import create_engine, sqlite_path
from secure_fota.server.db.fleet import FleetRepository
from secure_fota.server.db.migrate import upgrade
from secure_fota.server.fleet import FleetService, RolloutCache
from secure_fota.server.generation import GenerationWatcher
from secure_fota.server.metrics import Metrics
from secure_fota.server.releases import ReleaseService
from secure_fota.server.settings import ServerSettings
from secure_fota.server.storage.base import BlobStore

__all__ = ["ServerContext", "build_context", "build_store", "open_database"]

_log = logging.getLogger("secure_fota.server")


@dataclass(slots=True)
class ServerContext:
    settings: ServerSettings
    engine: AsyncEngine
    repository: FleetRepository
    store: BlobStore
    watcher: GenerationWatcher
    cache: NewestCache
    release_cache: ReleaseCache
    blobs: BlobCache
    auth: Authenticator
    releases: ReleaseService
    metrics: Metrics
    freshness: FreshnessSigner | None
    rollouts: RolloutCache
    fleet: FleetService

    async def close(self) -> None:
        await self.watcher.close()
        try:
            await self.store.close()
        finally:
            await self.engine.dispose()


def build_store(settings: ServerSettings) -> BlobStore:
    if settings.storage == "local":
        from secure_fota.server.storage.local import LocalBlobStore

        return LocalBlobStore(settings.data_dir / "blobs", staging_max_age=settings.staging_max_age)
    from secure_fota.server.storage.s3 import S3BlobStore

    if not settings.s3_bucket:
        raise ConfigError("storage = 's3' needs s3_bucket (FOTA_S3_BUCKET)")
    secret = settings.s3_secret_access_key
    return S3BlobStore(
        bucket=settings.s3_bucket,
        prefix=settings.s3_prefix,
        spool_dir=settings.data_dir / "staging",
        endpoint_url=settings.s3_endpoint_url,
        region=settings.s3_region,
        access_key_id=settings.s3_access_key_id,
        secret_access_key=secret.get_secret_value() if secret else None,
        staging_max_age=settings.staging_max_age,
    )


def _prepare_data_dir(settings: ServerSettings) -> None:
    """The data directory (0700 when created here) and a SQLite database file created 0600
    before SQLite creates it under the umask (its WAL and shared-memory files take the
    database file's mode)."""
    try:
        private_directory(settings.data_dir)
        database = sqlite_path(settings.effective_database_url())
        if database is not None:
            private_directory(database.parent)
            create_private_file(database)
    except OSError as exc:
        raise ConfigError(
            f"cannot create data directory {settings.data_dir} ({exc.strerror})"
        ) from None


def _database_problem(exc: BaseException) -> str:
    """The driver's own words for why a database cannot be used, on one line."""
    cause: BaseException = getattr(exc, "orig", None) or exc
    args: tuple[object, ...] = tuple(getattr(cause, "args", ()))
    if len(args) >= 2 and isinstance(args[0], int) and isinstance(args[1], str):
        text = args[1]  # PyMySQL: (code, message)
    elif isinstance(cause, OSError) and cause.strerror:
        text = cause.strerror.lower()
    elif isinstance(cause, TimeoutError):
        text = "no answer (timed out)"
    else:
        text = str(cause) or type(cause).__name__
    text = re.sub(r"^<class '[^']+'>: ", "", text)
    return (text.strip().splitlines() or [type(cause).__name__])[0]


async def open_database(settings: ServerSettings, *, migrate: bool) -> AsyncEngine:
    """An engine for the configured database, checked by connecting (and migrated); a
    database that cannot be reached or used is one :class:`ConfigError` line."""
    _prepare_data_dir(settings)
    engine = create_engine(
        settings.effective_database_url(),
        pool_size=settings.db_pool_size,
        connect_timeout=settings.db_connect_timeout,
    )
    try:
        async with engine.connect():
            pass
        if migrate:
            await upgrade(engine)
    except (DBAPIError, OSError, TimeoutError) as exc:
        await engine.dispose()
        shown = engine.url.render_as_string(hide_password=True)
        raise ConfigError(
            f"database {shown}: {_database_problem(exc)}; check database_url "
            "(FOTA_DATABASE_URL or --config) and that the database server runs and "
            "accepts this user"
        ) from None
    except BaseException:
        await engine.dispose()
        raise
    return engine


async def build_context(settings: ServerSettings, metrics: Metrics) -> ServerContext:
    freshness = (
        FreshnessSigner(load_private_key_file(Role.FRESHNESS, settings.freshness_key_file))
        if settings.freshness_key_file
        else None
    )
    engine = await open_database(settings, migrate=settings.migrate_on_start)
    try:
        store = build_store(settings)
        await store.start()
    except BaseException:
        await engine.dispose()
        raise
    repository = FleetRepository(engine)
    # the background check starts when a fifth of cache_ttl is left (100 ms by default)
    watcher = GenerationWatcher(
        repository, settings.cache_ttl, refresh_ahead=settings.cache_ttl / 5
    )
    max_failures, window = settings.auth_max_failures, settings.auth_failure_window
    lockout = settings.auth_lockout_seconds
    throttle = FailureThrottle(max_failures=max_failures, window=window, lockout=lockout)
    passwords = SharedFailureThrottle(
        AuthFailureStore(engine), max_failures=max_failures, window=window, lockout=lockout
    )
    context = ServerContext(
        settings=settings,
        engine=engine,
        repository=repository,
        store=store,
        watcher=watcher,
        cache=NewestCache(
            watcher,
            repository,
            store,
            max_manifest_size=settings.max_manifest_size,
            on_load=metrics.cache_loads.inc,
        ),
        release_cache=ReleaseCache(watcher, repository),
        blobs=BlobCache(store, settings.binary_cache_size),
        auth=Authenticator(
            repository,
            watcher,
            throttle,
            passwords,
            device_mode=DeviceAuthMode(settings.device_auth),
        ),
        releases=ReleaseService(
            repository, watcher, metrics, hold_new_releases=settings.hold_new_releases
        ),
        metrics=metrics,
        freshness=freshness,
        rollouts=RolloutCache(
            watcher, repository, store, max_manifest_size=settings.max_manifest_size
        ),
        fleet=FleetService(repository, watcher),
    )
    _log.info(
        "update server ready: database %s, %s storage, device auth %s, freshness %s",
        engine.url.render_as_string(hide_password=True),
        store.kind,
        settings.device_auth,
        "on" if freshness else "off",
    )
    return context
