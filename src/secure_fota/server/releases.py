"""The release service: publish (blobs first, then one transaction), yank, unyank, delete;
and garbage collection of blobs no release references.

A release becomes visible only when its row commits, and both of its blobs were stored
durably before that. The answer to a change waits ``cache_ttl`` after the commit, so that
once a client holds the answer, every worker on every host serves the new state.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass

from secure_fota.errors import NotFoundError
from secure_fota.server.auth import Principal
from secure_fota.server.db.records import NewRelease, ReleaseInfo
from secure_fota.server.db.repository import Repository
from secure_fota.server.generation import GenerationWatcher
from secure_fota.server.metrics import Metrics
from secure_fota.server.storage.base import BlobStore

__all__ = ["Published", "ReleaseService", "collect_garbage"]

_log = logging.getLogger("secure_fota.server")


@dataclass(frozen=True, slots=True)
class Published:
    release: ReleaseInfo
    created: bool


class ReleaseService:
    def __init__(
        self,
        repository: Repository,
        watcher: GenerationWatcher,
        metrics: Metrics,
        *,
        hold_new_releases: bool = False,
    ) -> None:
        self._repository = repository
        self._watcher = watcher
        self._metrics = metrics
        self._hold = hold_new_releases

    async def settle(self) -> None:
        """Wait until every worker has seen a change made elsewhere (a rollout step)."""
        await self._settle()

    async def _settle(self) -> None:
        """Wait until every worker's cache has re-checked the shared generation counter."""
        self._watcher.invalidate()
        await asyncio.sleep(self._watcher.ttl)

    async def publish(
        self, new: NewRelease, principal: Principal, *, hold: bool = False
    ) -> Published:
        """Make an upload (whose blobs are stored) a release, or recognise an identical retry.
        A held release (``hold``, or the ``hold_new_releases`` setting) reaches devices only
        through a rollout."""
        try:
            release, created = await self._repository.add_release(
                new, uploader=principal.name, held=hold or self._hold
            )
        except Exception:
            self._metrics.uploads.labels("refused").inc()
            raise
        self._metrics.uploads.labels("created" if created else "retry").inc()
        _log.info(
            "release %s of %s %s by %s",
            new.seq,
            new.device_type,
            "stored" if created else "re-uploaded identically",
            principal.name,
        )
        await self._settle()
        return Published(release, created)

    async def release(self, device_type: str, seq: int) -> ReleaseInfo:
        release = await self._repository.release(device_type, seq)
        if release is None:
            raise NotFoundError(f"device type {device_type!r} has no release {seq}")
        return release

    async def releases(self, device_type: str) -> list[ReleaseInfo]:
        releases = await self._repository.releases(device_type)
        if not releases:
            raise NotFoundError(f"unknown device type {device_type!r}")
        return releases

    async def set_yanked(
        self, device_type: str, seq: int, yanked: bool, *, actor: str
    ) -> ReleaseInfo:
        release = await self._repository.set_yanked(device_type, seq, yanked, actor=actor)
        await self._settle()
        return release

    async def delete(self, device_type: str, seq: int, *, actor: str) -> ReleaseInfo:
        release = await self._repository.delete_release(device_type, seq, actor=actor)
        await self._settle()
        return release


async def collect_garbage(repository: Repository, store: BlobStore, *, grace: float) -> int:
    """Delete blobs that no release references and that are older than ``grace`` seconds (an
    upload in progress has stored its blobs but not yet committed its row)."""
    referenced = await repository.referenced_blobs()
    cutoff = time.time() - grace
    removed = 0
    async for sha256, modified in store.list_blobs():
        if sha256 not in referenced and modified < cutoff:
            await store.delete(sha256)
            removed += 1
    if removed:
        _log.info("garbage collection removed %d unreferenced blobs", removed)
    return removed
