"""Per-worker caches kept correct across workers and hosts by one shared counter.

Every change that devices must see (upload, yank, unyank, delete, user and token changes)
bumps ``server_state.generation`` in its own transaction. A worker reads that counter at most
once per ``cache_ttl`` seconds (0.5 s by default) and drops its caches when it moved, so a
change is visible on every worker within ``cache_ttl`` plus one query. Between checks, a poll
is answered from memory: no database query, no storage read, headers precomputed.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Final, TypeVar

import anyio

from secure_fota.errors import StorageError
from secure_fota.server.db.records import ReleaseInfo
from secure_fota.server.db.repository import Repository
from secure_fota.server.errors import Unavailable
from secure_fota.server.storage.base import BlobStore
from secure_fota.wire import RELEASE_HEADER

__all__ = ["BlobCache", "GenerationWatcher", "NewestCache", "NewestEntry", "ReleaseCache"]

_log = logging.getLogger("secure_fota.server")

#: at most this many device types (including unknown ones) are remembered per worker
MAX_CACHED_TYPES: Final = 10_000
#: seconds during which a failed generation check is not retried
FAILURE_BACKOFF: Final = 0.5


K = TypeVar("K")
V = TypeVar("V")


async def _single_flight(
    loading: dict[K, asyncio.Future[V]], key: K, load: Callable[[], Awaitable[V]]
) -> tuple[V, bool]:
    """``load()`` run once for concurrent callers with the same ``key``: the first caller runs
    it (and gets ``True``), the others wait for its result or exception (and get ``False``).
    A cancelled loader cancels the waiters too; ``loading`` holds the loads in progress."""
    pending = loading.get(key)
    if pending is not None:
        return await asyncio.shield(pending), False
    future: asyncio.Future[V] = asyncio.get_running_loop().create_future()
    loading[key] = future
    try:
        value = await load()
    except asyncio.CancelledError:
        future.cancel()
        raise
    except BaseException as exc:
        future.set_exception(exc)
        future.exception()  # retrieved: waiters get it, nobody else needs to
        raise
    finally:
        loading.pop(key, None)
    future.set_result(value)
    return value, True


class GenerationWatcher:
    """Knows whether this worker's caches may still be trusted."""

    def __init__(
        self,
        repository: Repository,
        ttl: float,
        *,
        clock: Callable[[], float] = time.monotonic,
        refresh_ahead: float = 0.0,
    ) -> None:
        self._repository = repository
        self._ttl = ttl
        self._clock = clock
        #: re-read the counter in the background this many seconds before the last check
        #: expires, so that requests never wait for it while the database answers in time
        self._ahead = min(max(refresh_ahead, 0.0), ttl)
        self._task: asyncio.Task[None] | None = None
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
        now = self._clock()
        if now < self._valid_until:
            if (
                self._ahead
                and now >= self._valid_until - self._ahead
                and self._task is None
                and not self._lock.locked()
            ):
                self._task = asyncio.get_running_loop().create_task(self._refresh_ahead())
            return
        if now < self._failed_until:
            raise Unavailable("database unavailable (recent check failed)")
        async with self._lock:
            if self._clock() < self._valid_until:
                return
            if self._clock() < self._failed_until:
                raise Unavailable("database unavailable (recent check failed)")
            await self._check()

    async def _check(self) -> None:
        """Read the counter (the caller holds the lock)."""
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

    async def _refresh_ahead(self) -> None:
        """The check, started while the last one is still valid (answers meanwhile come from
        the caches, which that check still covers: the guarantee does not change)."""
        try:
            async with self._lock:
                if self._clock() < self._valid_until - self._ahead:
                    return  # checked meanwhile
                await self._check()
        except Unavailable:
            pass  # recorded in _failed_until; requests see it once the last check expires
        except Exception:  # noqa: BLE001 -- a background task must not die unretrieved
            _log.exception("background generation check failed")
        finally:
            self._task = None

    async def close(self) -> None:
        """Stop a background check in flight (at shutdown)."""
        task = self._task
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

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
        RELEASE_HEADER: str(release.seq),
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
        entry, loaded = await _single_flight(
            self._loading, device_type, lambda: self._load(device_type)
        )
        if not loaded:
            return entry  # another request loaded it (and stored it)
        if len(entries) >= MAX_CACHED_TYPES:
            entries.clear()
        entries[device_type] = entry
        return entry

    async def _load(self, device_type: str) -> NewestEntry | None:
        if self._on_load is not None:
            self._on_load()
        release = await self._repository.newest(device_type)
        if release is None:
            return None
        manifest = await load_manifest(self._store, release, max_size=self._max_manifest_size)
        return NewestEntry(
            release=release,
            manifest=manifest,
            manifest_headers=manifest_headers(release),
            binary_etag=f'"{release.binary_sha256}"',
        )


#: at most this many (device type, id) lookups are remembered per worker
MAX_CACHED_RELEASES: Final = 10_000


class ReleaseCache:
    """(device type, id) -> :class:`ReleaseInfo` (``None``: no such release) for the device
    endpoints by release id, which a downloading fleet asks for on every Range request.

    Dropped with the newest cache whenever the shared generation moves, so an upload, yank or
    delete is visible within ``cache_ttl``, as for "newest".
    """

    def __init__(self, watcher: GenerationWatcher, repository: Repository) -> None:
        self._watcher = watcher
        self._repository = repository
        self._entries: dict[tuple[str, int], ReleaseInfo | None] = {}
        watcher.subscribe(self.clear)

    def clear(self) -> None:
        # a fresh dict: lookups that started before the change write into the old one
        self._entries = {}

    async def release(self, device_type: str, seq: int) -> ReleaseInfo | None:
        await self._watcher.ensure_fresh()
        entries = self._entries
        key = (device_type, seq)
        try:
            return entries[key]
        except KeyError:
            pass
        found = await self._repository.release(device_type, seq)
        if len(entries) >= MAX_CACHED_RELEASES:
            entries.clear()
        entries[key] = found
        return found


class BlobCache:
    """Release files held in memory by their SHA-256, least recently used out first, up to
    ``budget`` bytes per worker (0 disables it).

    Blobs are content-addressed, so an entry can never be stale; each is checked against its
    digest when it is loaded. Downloads and Range requests of the releases a fleet is updating
    to are then served without a storage read (a thread hop per chunk locally, a request to
    the bucket with S3).
    """

    def __init__(self, store: BlobStore, budget: int) -> None:
        self._store = store
        self._budget = budget
        self._size = 0
        self._data: OrderedDict[str, bytes] = OrderedDict()
        self._loading: dict[str, asyncio.Future[bytes]] = {}

    def holds(self, size: int) -> bool:
        """Whether a blob of ``size`` bytes is cached (at most half the budget each)."""
        return 0 < size <= self._budget // 2

    def peek(self, sha256: str, size: int) -> bytes | None:
        """The blob's bytes if they are in memory now (no storage read), else ``None``."""
        if not self.holds(size):
            return None
        data = self._data.get(sha256)
        if data is not None:
            self._data.move_to_end(sha256)
        return data

    async def get(self, sha256: str, size: int) -> bytes | None:
        """The blob's bytes, or ``None`` when a blob of this size is not cached."""
        if not self.holds(size):
            return None
        cached = self.peek(sha256, size)
        if cached is not None:
            return cached
        data, loaded = await _single_flight(self._loading, sha256, lambda: self._load(sha256, size))
        if not loaded:
            return data  # another request loaded it (and stored it)
        self._data[sha256] = data
        self._size += len(data)
        while self._size > self._budget:
            _, evicted = self._data.popitem(last=False)
            self._size -= len(evicted)
        return data

    async def _load(self, sha256: str, size: int) -> bytes:
        data = await self._store.read(sha256, max_size=size)
        digest = await anyio.to_thread.run_sync(lambda: hashlib.sha256(data).hexdigest())
        if len(data) != size or digest != sha256:
            raise StorageError(f"stored blob {sha256[:16]}... is corrupted (digest or size)")
        return data
