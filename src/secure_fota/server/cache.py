"""Per-worker caches of what devices ask for: the newest release per device type (with its
manifest), releases by id, and release images.

The first two are dropped whenever the cross-worker generation counter moves
(:mod:`secure_fota.server.generation`), so a change is visible on every worker within
``cache_ttl`` plus one query; between checks a poll is answered from memory, without a
database query or a storage read. Images are content-addressed and never stale.
"""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Final, TypeVar

import anyio

from secure_fota.errors import StorageError
from secure_fota.server.db.records import ReleaseInfo
from secure_fota.server.db.repository import Repository
from secure_fota.server.generation import GenerationWatcher
from secure_fota.server.storage.base import BlobStore

__all__ = ["BlobCache", "NewestCache", "NewestEntry", "ReleaseCache", "load_manifest"]

#: at most this many device types (including unknown ones) are remembered per worker
MAX_CACHED_TYPES: Final = 10_000


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


@dataclass(frozen=True, slots=True)
class NewestEntry:
    """The newest release of one device type, with its manifest."""

    release: ReleaseInfo
    manifest: bytes = dataclasses.field(repr=False)


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
        return NewestEntry(release, manifest)


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
