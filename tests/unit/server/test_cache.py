"""The generation-checked caches, with an in-memory repository and store and a fake clock."""

from __future__ import annotations

import asyncio
import dataclasses
import datetime
import hashlib
from typing import Any

import pytest

from secure_fota.errors import StorageError
from secure_fota.server.cache import NewestCache
from secure_fota.server.db.records import ReleaseInfo
from secure_fota.server.delivery import manifest_headers
from secure_fota.server.errors import Unavailable
from secure_fota.server.generation import FAILURE_BACKOFF, GenerationWatcher


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def Row(seq: int, manifest: bytes) -> ReleaseInfo:  # noqa: N802 -- what the repository returns
    return ReleaseInfo(
        device_type="t",
        seq=seq,
        fw_name="app",
        manifest_sha256=hashlib.sha256(manifest).hexdigest(),
        manifest_size=len(manifest),
        binary_sha256="0" * 64,
        binary_size=1,
        uploaded_at=datetime.datetime.now(datetime.UTC),
        uploader="u",
        yanked=False,
    )


class Repository:
    def __init__(self) -> None:
        self.generation_value = 0
        self.generation_calls = 0
        self.newest_calls = 0
        self.rows: dict[str, ReleaseInfo] = {}
        self.down = False
        self.gate: asyncio.Event | None = None

    async def generation(self) -> int:
        self.generation_calls += 1
        if self.down:
            raise Unavailable("database unavailable (test)")
        return self.generation_value

    async def newest(self, device_type: str) -> ReleaseInfo | None:
        self.newest_calls += 1
        if self.gate is not None:
            await self.gate.wait()
        return self.rows.get(device_type)


class Store:
    def __init__(self) -> None:
        self.blobs: dict[str, bytes] = {}

    async def read(self, sha256: str, *, max_size: int) -> bytes:
        data = self.blobs[sha256]
        assert len(data) <= max_size
        return data


def make(ttl: float = 0.5) -> tuple[Clock, Repository, Store, GenerationWatcher, NewestCache]:
    clock, repository, store = Clock(), Repository(), Store()
    watcher = GenerationWatcher(repository, ttl, clock=clock)  # type: ignore[arg-type]
    cache = NewestCache(watcher, repository, store, max_manifest_size=1024)  # type: ignore[arg-type]
    return clock, repository, store, watcher, cache


def publish(repository: Repository, store: Store, seq: int) -> bytes:
    manifest = f"manifest {seq}".encode()
    store.blobs[hashlib.sha256(manifest).hexdigest()] = manifest
    repository.rows["t"] = Row(seq, manifest)
    repository.generation_value += 1
    return manifest


def test_polls_within_ttl_cost_no_query_and_changes_show_after_it() -> None:
    clock, repository, store, _, cache = make()

    async def run() -> None:
        assert await cache.newest("t") is None
        first = publish(repository, store, 1)
        assert await cache.newest("t") is None  # cached "nothing" until the ttl passes
        clock.now += 0.5
        entry = await cache.newest("t")
        assert entry is not None
        assert entry.manifest == first
        headers = manifest_headers(entry.release)
        assert headers["x-fota-release"] == "1"
        assert headers["etag"] == f'"{hashlib.sha256(first).hexdigest()}"'
        calls = (repository.generation_calls, repository.newest_calls)
        for _ in range(100):
            assert await cache.newest("t") is entry
        assert (repository.generation_calls, repository.newest_calls) == calls
        clock.now += 0.6  # ttl passed, nothing changed: one counter read, no reload
        assert await cache.newest("t") is entry
        assert repository.generation_calls == calls[0] + 1
        assert repository.newest_calls == calls[1]

    asyncio.run(run())


def test_concurrent_misses_load_once() -> None:
    _, repository, store, _, cache = make()
    publish(repository, store, 3)
    repository.gate = asyncio.Event()

    async def run() -> None:
        tasks = [asyncio.create_task(cache.newest("t")) for _ in range(20)]
        await asyncio.sleep(0.01)
        assert repository.gate is not None
        repository.gate.set()
        entries = await asyncio.gather(*tasks)
        assert {e.release.seq for e in entries if e is not None} == {3}
        assert repository.newest_calls == 1

    asyncio.run(run())


def test_a_load_that_straddles_a_change_is_not_kept() -> None:
    clock, repository, store, _, cache = make()
    publish(repository, store, 1)
    repository.gate = asyncio.Event()

    async def run() -> None:
        slow = asyncio.create_task(cache.newest("t"))  # reads the old state, slowly
        await asyncio.sleep(0.01)
        publish(repository, store, 2)
        clock.now += 1
        repository.gate.set()  # type: ignore[union-attr]
        fresh = await cache.newest("t")  # sees the new counter: caches dropped
        await slow
        assert fresh is not None
        assert fresh.release.seq == 2
        assert (await cache.newest("t")).release.seq == 2  # type: ignore[union-attr]

    asyncio.run(run())


def test_database_down_fails_fast_then_recovers() -> None:
    clock, repository, store, _, cache = make()
    publish(repository, store, 1)

    async def run() -> None:
        assert await cache.newest("t") is not None
        repository.down = True
        clock.now += 1
        with pytest.raises(Unavailable):
            await cache.newest("t")
        calls = repository.generation_calls
        with pytest.raises(Unavailable):
            await cache.newest("t")  # within the back-off: no new attempt
        assert repository.generation_calls == calls
        repository.down = False
        clock.now += FAILURE_BACKOFF
        assert await cache.newest("t") is not None

    asyncio.run(run())


def test_corrupted_manifest_is_an_error() -> None:
    _, repository, store, _, cache = make()
    publish(repository, store, 1)
    key = repository.rows["t"].manifest_sha256
    store.blobs[key] = b"tampered"

    async def run() -> Any:
        return await cache.newest("t")

    with pytest.raises(StorageError):
        asyncio.run(run())


# ReleaseCache and BlobCache ------------------------------------------------------------------


class ById(Repository):
    def __init__(self) -> None:
        super().__init__()
        self.release_calls = 0

    async def release(self, device_type: str, seq: int) -> ReleaseInfo | None:
        self.release_calls += 1
        row = self.rows.get(device_type)
        return row if row is not None and row.seq == seq else None


def test_release_cache_reads_the_database_once_per_generation():
    from secure_fota.server.cache import ReleaseCache

    async def run() -> None:
        clock, repository = Clock(), ById()
        watcher = GenerationWatcher(repository, 0.5, clock=clock)  # type: ignore[arg-type]
        cache = ReleaseCache(watcher, repository)  # type: ignore[arg-type]
        repository.rows["t"] = Row(3, b"m")
        for _ in range(5):
            found = await cache.release("t", 3)
            assert found is not None
            assert found.seq == 3
            assert await cache.release("t", 4) is None
        assert repository.release_calls == 2
        # a yank bumps the generation
        repository.rows["t"] = dataclasses.replace(repository.rows["t"], yanked=True)
        repository.generation_value += 1
        clock.now += 0.6
        found = await cache.release("t", 3)
        assert found is not None
        assert found.yanked
        assert repository.release_calls == 3

    asyncio.run(run())


def test_blob_cache_verifies_bounds_and_evicts_least_recently_used():
    from secure_fota.server.cache import BlobCache

    class CountingStore(Store):
        reads = 0

        async def read(self, sha256: str, *, max_size: int) -> bytes:
            self.reads += 1
            return await super().read(sha256, max_size=max_size)

    async def run() -> None:
        store = CountingStore()
        blobs = [bytes([i]) * 100 for i in range(3)]
        digests = [hashlib.sha256(b).hexdigest() for b in blobs]
        store.blobs.update(zip(digests, blobs, strict=True))
        cache = BlobCache(store, budget=250)  # type: ignore[arg-type]
        assert await cache.get(digests[0], 100) == blobs[0]
        assert await cache.get(digests[0], 100) == blobs[0]
        assert store.reads == 1
        assert await cache.get(digests[1], 100) == blobs[1]
        assert await cache.get(digests[0], 100) == blobs[0]  # 0 is now the most recent
        assert await cache.get(digests[2], 100) == blobs[2]  # evicts 1
        reads = store.reads
        assert await cache.get(digests[0], 100) == blobs[0]
        assert store.reads == reads
        assert await cache.get(digests[1], 100) == blobs[1]
        assert store.reads == reads + 1
        assert await cache.get(digests[0], 200) is None  # over half the budget: not cached
        assert await BlobCache(store, 0).get(digests[0], 100) is None  # type: ignore[arg-type]
        store.blobs[digests[2]] = b"x" * 100  # corrupted in storage
        with pytest.raises(StorageError):
            await BlobCache(store, 250).get(digests[2], 100)  # type: ignore[arg-type]
        store.blobs[digests[1]] = blobs[1][:99]  # truncated in storage
        with pytest.raises(StorageError):
            await BlobCache(store, 250).get(digests[1], 100)  # type: ignore[arg-type]

    asyncio.run(run())


def test_blob_cache_peek_never_reads_storage():
    from secure_fota.server.cache import BlobCache

    async def run() -> None:
        store = Store()
        blobs = [bytes([i]) * 100 for i in range(3)]
        digests = [hashlib.sha256(b).hexdigest() for b in blobs]
        store.blobs.update(zip(digests, blobs, strict=True))
        cache = BlobCache(store, budget=250)  # type: ignore[arg-type]
        assert cache.peek(digests[0], 100) is None  # not loaded yet, and not loaded by peek
        assert await cache.get(digests[0], 100) == blobs[0]
        assert cache.peek(digests[0], 100) == blobs[0]
        assert cache.peek(digests[0], 200) is None  # a size the cache never holds
        assert await cache.get(digests[1], 100) == blobs[1]
        assert cache.peek(digests[0], 100) == blobs[0]  # 0 is now the most recent ...
        assert await cache.get(digests[2], 100) == blobs[2]  # ... so this evicts 1
        assert cache.peek(digests[1], 100) is None
        assert cache.peek(digests[0], 100) == blobs[0]

    asyncio.run(run())


def test_refresh_ahead_checks_in_the_background_without_blocking():
    async def run() -> None:
        clock, repository = Clock(), Repository()
        watcher = GenerationWatcher(repository, 0.5, clock=clock, refresh_ahead=0.1)  # type: ignore[arg-type]
        await watcher.ensure_fresh()
        assert repository.generation_calls == 1
        clock.now += 0.3  # not yet within the last 0.1 s: nothing happens
        await watcher.ensure_fresh()
        await asyncio.sleep(0)
        assert repository.generation_calls == 1
        changed: list[int] = []
        watcher.subscribe(lambda: changed.append(1))
        repository.generation_value += 1
        clock.now += 0.15  # 0.45 s: answered at once, a check starts in the background
        await watcher.ensure_fresh()
        assert repository.generation_calls == 1
        await asyncio.sleep(0)
        await asyncio.sleep(0)
        assert repository.generation_calls == 2
        assert changed == [1]  # the caches were dropped by the background check
        clock.now += 0.2  # 0.65 s: within the new check's ttl (from 0.45 s), no wait, no query
        await watcher.ensure_fresh()
        assert repository.generation_calls == 2
        repository.down = True
        clock.now += 0.25  # 0.9 s: a background check fails, the last one is still valid
        await watcher.ensure_fresh()
        await asyncio.sleep(0)
        await asyncio.sleep(0)
        clock.now += 0.1  # 1.0 s: expired, and the failure is recent: 503 at once
        with pytest.raises(Unavailable):
            await watcher.ensure_fresh()
        await watcher.close()

    asyncio.run(run())
