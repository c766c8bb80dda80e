"""Per-worker caches kept correct across workers and hosts by one shared counter.

Every change that devices must see (upload, yank, unyank, delete, user and token changes)
bumps ``server_state.generation`` in its own transaction. A worker reads that counter at most
once per ``cache_ttl`` seconds (0.5 s by default) and drops its caches when it moved, so a
change is visible on every worker within ``cache_ttl`` plus one query. Between checks, a poll
is answered from memory: no database query, no storage read, headers precomputed.
"""

from __future__ import annotations

import asyncio
import hashlib
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Final

from secure_fota.errors import StorageError
from secure_fota.server.db.repository import Repository
from secure_fota.server.errors import Unavailable
from secure_fota.server.records import ReleaseInfo
from secure_fota.server.storage.base import BlobStore

__all__ = ["GenerationWatcher", "NewestCache", "NewestEntry"]

#: at most this many device types (including unknown ones) are remembered per worker
MAX_CACHED_TYPES: Final = 10_000
#: seconds during which a failed generation check is not retried
FAILURE_BACKOFF: Final = 0.5


class GenerationWatcher:
    """Knows whether this worker's caches may still be trusted."""

    def __init__(
        self,
        repository: Repository,
        ttl: float,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._repository = repository
        self._ttl = ttl
        self._clock = clock
        self._valid_until = 0.0
        self._generation: int | None = None
        self._lock = asyncio.Lock()
        self._listeners: list[Callable[[], None]] = []
        #: after a failed check, answer at once (503) for a moment instead of queueing every
        #: request behind another connection attempt to an unreachable database
        self._failed_until = 0.0

    @property
    def ttl(self) -> float:
        return self._ttl

    def subscribe(self, listener: Callable[[], None]) -> None:
        self._listeners.append(listener)

    def fresh(self) -> bool:
        return self._clock() < self._valid_until

    async def ensure_fresh(self) -> None:
        """Return at once while the last check is younger than ``ttl``; else re-read the
        counter (one query, shared by every request waiting at that moment)."""
        if self._clock() < self._valid_until:
            return
        if self._clock() < self._failed_until:
            raise Unavailable("database unavailable (recent check failed)")
        async with self._lock:
            if self._clock() < self._valid_until:
                return
            if self._clock() < self._failed_until:
                raise Unavailable("database unavailable (recent check failed)")
            started = self._clock()
            try:
                generation = await self._repository.generation()
            except Unavailable:
                self._failed_until = self._clock() + FAILURE_BACKOFF
                raise
            if generation != self._generation:
                self._generation = generation
                for listener in self._listeners:
                    listener()
            # measured from before the query: a check that began before a commit expires
            # no later than ttl after that commit
            self._valid_until = started + self._ttl

    def invalidate(self) -> None:
        """Force a check on the next request (after this worker changed something)."""
        self._valid_until = 0.0


@dataclass(frozen=True, slots=True)
class NewestEntry:
    """The newest release of one device type, with its manifest and ready-made headers."""

    release: ReleaseInfo
    manifest: bytes
    manifest_headers: dict[str, str] = field(repr=False)
    binary_etag: str


def manifest_headers(release: ReleaseInfo) -> dict[str, str]:
    return {
        "content-type": "application/octet-stream",
        "content-length": str(release.manifest_size),
        "etag": f'"{release.manifest_sha256}"',
        "cache-control": "no-cache",
        "x-fota-release": str(release.seq),
    }


async def load_manifest(store: BlobStore, release: ReleaseInfo, *, max_size: int) -> bytes:
    """Read a release's manifest and check it is the one the database row names."""
    data = await store.read(release.manifest_sha256, max_size=max_size)
    if hashlib.sha256(data).hexdigest() != release.manifest_sha256:
        raise StorageError(
            f"stored manifest of release {release.seq} of {release.device_type!r} is corrupted"
        )
    return data


class NewestCache:
    """device type -> :class:`NewestEntry` (or ``None`` when it has no visible release)."""

    def __init__(
        self,
        watcher: GenerationWatcher,
        repository: Repository,
        store: BlobStore,
        *,
        max_manifest_size: int,
        on_load: Callable[[], None] | None = None,
    ) -> None:
        self._on_load = on_load
        self._watcher = watcher
        self._repository = repository
        self._store = store
        self._max_manifest_size = max_manifest_size
        self._entries: dict[str, NewestEntry | None] = {}
        self._loading: dict[str, asyncio.Future[NewestEntry | None]] = {}
        watcher.subscribe(self.clear)

    def clear(self) -> None:
        # a fresh dict: loads that started before the change write into the old one
        self._entries = {}
        self._loading = {}

    async def newest(self, device_type: str) -> NewestEntry | None:
        await self._watcher.ensure_fresh()
        entries = self._entries
        try:
            return entries[device_type]
        except KeyError:
            pass
        loading = self._loading
        pending = loading.get(device_type)
        if pending is not None:
            return await asyncio.shield(pending)
        future: asyncio.Future[NewestEntry | None] = asyncio.get_running_loop().create_future()
        loading[device_type] = future
        try:
            entry = await self._load(device_type)
        except asyncio.CancelledError:
            future.cancel()
            raise
        except BaseException as exc:
            future.set_exception(exc)
            future.exception()  # retrieved: waiters get it, nobody else needs to
            raise
        finally:
            loading.pop(device_type, None)
        future.set_result(entry)
        if len(entries) >= MAX_CACHED_TYPES:
            entries.clear()
        entries[device_type] = entry
        return entry

    async def _load(self, device_type: str) -> NewestEntry | None:
        if self._on_load is not None:
            self._on_load()
        row = await self._repository.newest(device_type)
        if row is None:
            return None
        release = ReleaseInfo.from_row(row)
        manifest = await load_manifest(self._store, release, max_size=self._max_manifest_size)
        return NewestEntry(
            release=release,
            manifest=manifest,
            manifest_headers=manifest_headers(release),
            binary_etag=f'"{release.binary_sha256}"',
        )
