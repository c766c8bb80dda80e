"""The release service: publish (blobs first, then one transaction), yank, unyank, delete,
and garbage collection of blobs no release references.

A release becomes visible only when its row commits, and both of its blobs were stored
durably before that. The answer to a change waits ``cache_ttl`` after the commit, so that
once a client holds the answer, every worker on every host serves the new state.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass

from secure_fota.errors import InputError, NotFoundError
from secure_fota.formats.names import check_name, check_seq
from secure_fota.server.auth import Principal
from secure_fota.server.cache import GenerationWatcher
from secure_fota.server.db.repository import NewRelease, Repository
from secure_fota.server.errors import MissingParameter
from secure_fota.server.metrics import Metrics
from secure_fota.server.records import ReleaseInfo
from secure_fota.server.storage.base import BlobStore
from secure_fota.server.uploads import UploadForm
from secure_fota.wire import DEVICE_TYPE, FIRMWARE_FILE, FW_NAME, ID, MANIFEST_FILE

__all__ = ["Published", "ReleaseService", "required_name", "required_seq"]

_log = logging.getLogger("secure_fota.server")


def required_name(field: str, value: str | None) -> str:
    if value is None:
        raise MissingParameter(field)
    return check_name(field, value)


def required_seq(field: str, value: str | None) -> int:
    if value is None:
        raise MissingParameter(field)
    return check_seq(field, value)


@dataclass(frozen=True, slots=True)
class Published:
    release: ReleaseInfo
    created: bool


class ReleaseService:
    def __init__(
        self,
        repository: Repository,
        store: BlobStore,
        watcher: GenerationWatcher,
        metrics: Metrics,
        *,
        gc_grace_seconds: float,
    ) -> None:
        self._repository = repository
        self._store = store
        self._watcher = watcher
        self._metrics = metrics
        self._gc_grace = gc_grace_seconds

    @staticmethod
    def precheck(query: Mapping[str, str], *, device_type: str | None = None) -> None:
        """Refuse malformed query-string fields before any byte of the body is stored."""
        if ID in query:
            check_seq(ID, query[ID])
        for name in (DEVICE_TYPE, FW_NAME):
            if name in query:
                check_name(name, query[name])
        if device_type is not None and query.get(DEVICE_TYPE, device_type) != device_type:
            raise InputError(DEVICE_TYPE, "differs from the device type in the path")

    async def _settle(self) -> None:
        """Wait until every worker's cache has re-checked the shared generation counter."""
        self._watcher.invalidate()
        await asyncio.sleep(self._watcher.ttl)

    async def publish(
        self,
        form: UploadForm,
        query: Mapping[str, str],
        principal: Principal,
        *,
        device_type: str | None = None,
    ) -> Published:
        if form.manifest is None:
            raise MissingParameter(MANIFEST_FILE)
        if form.firmware is None:
            raise MissingParameter(FIRMWARE_FILE)
        given_type = form.value(DEVICE_TYPE, query)
        if device_type is not None:
            if given_type is not None and given_type != device_type:
                raise InputError(DEVICE_TYPE, "differs from the device type in the path")
            given_type = device_type
        new = NewRelease(
            device_type=required_name(DEVICE_TYPE, given_type),
            seq=required_seq(ID, form.value(ID, query)),
            fw_name=required_name(FW_NAME, form.value(FW_NAME, query)),
            manifest_sha256=form.manifest.sha256,
            manifest_size=form.manifest.size,
            binary_sha256=form.firmware.sha256,
            binary_size=form.firmware.size,
            uploader=principal.name,
        )
        try:
            row, created = await self._repository.add_release(new)
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
        return Published(ReleaseInfo.from_row(row), created)

    async def release(self, device_type: str, seq: int) -> ReleaseInfo:
        row = await self._repository.release(device_type, seq)
        if row is None:
            raise NotFoundError(f"device type {device_type!r} has no release {seq}")
        return ReleaseInfo.from_row(row)

    async def releases(self, device_type: str) -> list[ReleaseInfo]:
        rows = await self._repository.releases(device_type)
        if not rows:
            raise NotFoundError(f"unknown device type {device_type!r}")
        return [ReleaseInfo.from_row(row) for row in rows]

    async def set_yanked(self, device_type: str, seq: int, yanked: bool) -> ReleaseInfo:
        row = await self._repository.set_yanked(device_type, seq, yanked)
        await self._settle()
        return ReleaseInfo.from_row(row)

    async def delete(self, device_type: str, seq: int) -> ReleaseInfo:
        row = await self._repository.delete_release(device_type, seq)
        await self._settle()
        return ReleaseInfo.from_row(row)

    async def collect_garbage(self, *, grace: float | None = None) -> int:
        """Delete blobs that no release references and that are older than the grace period
        (an upload in progress has stored its blobs but not yet committed its row)."""
        grace = self._gc_grace if grace is None else grace
        referenced = await self._repository.referenced_blobs()
        cutoff = time.time() - grace
        removed = 0
        async for sha256, modified in self._store.list_blobs():
            if sha256 not in referenced and modified < cutoff:
                await self._store.delete(sha256)
                removed += 1
        if removed:
            _log.info("garbage collection removed %d unreferenced blobs", removed)
        return removed
