"""Fleet operations on the server: signed device reports, the per-device rollout decision on
polls, and the rollout engine's periodic step.

The decision is made per device and per poll, in memory: a device is in a rollout's current
stage when the stable hash bucket of its id (:func:`bucket`, 0..9999) is below the stage's
percentage times 100, so a stage that grows keeps every device it had. The active rollouts
and their manifests are cached per worker and dropped with the other caches when the shared
generation moves; the only database write a poll can cause is noting, once per device and
rollout, that the release was offered to it (for the silent deadline and the progress counts).
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import time
from typing import Final

from secure_fota.crypto.report import FAILURES, Event, open_report, peek_device_id
from secure_fota.errors import FotaError, VerificationError
from secure_fota.server.auth import Principal
from secure_fota.server.cache import NewestEntry, load_manifest
from secure_fota.server.db.fleet import FleetRepository, ReportFacts, StepResult
from secure_fota.server.db.records import DeviceInfo, RolloutInfo
from secure_fota.server.errors import Forbidden
from secure_fota.server.generation import GenerationWatcher
from secure_fota.server.storage.base import BlobStore

__all__ = ["BUCKETS", "FleetService", "RolloutCache", "bucket", "in_stage"]

_log = logging.getLogger("secure_fota.server")

#: hash buckets a device id falls into (a stage of p percent holds buckets below p * 100)
BUCKETS: Final = 10_000
#: (rollout, device) offers remembered per worker before the memo is cleared
_MAX_NOTED: Final = 200_000


def bucket(device_id: str) -> int:
    """The stable position of a device in every rollout: 0..9999 from SHA-256 of its id."""
    digest = hashlib.sha256(device_id.encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big") % BUCKETS


def in_stage(device_id: str, percent: int) -> bool:
    return bucket(device_id) < percent * (BUCKETS // 100)


class RolloutCache:
    """The active rollouts by device type, each with its release's manifest, per worker."""

    def __init__(
        self,
        watcher: GenerationWatcher,
        repository: FleetRepository,
        store: BlobStore,
        *,
        max_manifest_size: int,
    ) -> None:
        self._watcher = watcher
        self._repository = repository
        self._store = store
        self._max_manifest_size = max_manifest_size
        self._active: dict[str, tuple[RolloutInfo, NewestEntry]] | None = None
        self._lock = asyncio.Lock()
        self._noted: set[tuple[int, str]] = set()
        watcher.subscribe(self.clear)

    def clear(self) -> None:
        self._active = None

    async def active(self) -> dict[str, tuple[RolloutInfo, NewestEntry]]:
        await self._watcher.ensure_fresh()
        active = self._active
        if active is not None:
            return active
        async with self._lock:
            if self._active is None:
                self._active = await self._load()
            return self._active

    async def _load(self) -> dict[str, tuple[RolloutInfo, NewestEntry]]:
        loaded = {}
        for rollout in await self._repository.active_rollouts():
            release = await self._repository.release(rollout.device_type, rollout.seq)
            if release is None or release.yanked:
                continue
            manifest = await load_manifest(self._store, release, max_size=self._max_manifest_size)
            loaded[rollout.device_type] = (rollout, NewestEntry(release, manifest))
        return loaded

    async def offer(self, device_type: str, device_id: str | None) -> NewestEntry | None:
        """The rollout release ``device_id`` is offered, or None (it gets the newest)."""
        active = self._active
        if active is None or not self._watcher.fresh():
            active = await self.active()
        found = active.get(device_type)
        if found is None or device_id is None:
            return None
        rollout, entry = found
        if not in_stage(device_id, rollout.percent):
            return None
        key = (rollout.id, device_id)
        if key not in self._noted:
            await self._repository.note_offer(rollout.id, device_id, rollout.stage)
            if len(self._noted) >= _MAX_NOTED:
                self._noted.clear()
            self._noted.add(key)
        return entry


class FleetService:
    """Reports in, rollout steps out."""

    def __init__(self, repository: FleetRepository, watcher: GenerationWatcher) -> None:
        self._repository = repository
        self._watcher = watcher

    async def report(self, token: str, principal: Principal | None) -> DeviceInfo:
        """Verify and store one signed report; a failure judges its rollout at once.

        The signature is checked inside the transaction that stores the report, under the
        device's row lock, against the key registered there (one transaction per report)."""
        arrived = time.perf_counter()

        def verified(registered: str | None) -> ReportFacts:
            try:
                report, _ = open_report(token, registered)
            except VerificationError as exc:
                raise Forbidden(f"device report refused: {exc}") from None
            if (
                principal is not None
                and principal.per_device
                and principal.name != report.device_id
            ):
                raise Forbidden(
                    f"the device token {principal.name!r} cannot report for {report.device_id!r}"
                )
            outcome = (
                "success"
                if report.event is Event.CONFIRMED
                else "failure"
                if report.event in FAILURES
                else None
            )
            return ReportFacts(
                device_id=report.device_id,
                device_type=report.device_type,
                event=report.event.value,
                reason=report.reason,
                detail=report.detail,
                seq=report.seq,
                secure_version=report.secure_version,
                version=report.version,
                release=report.seq if report.event is Event.CONFIRMED else report.release,
                counter=report.counter,
                pub=report.pub,
                outcome=outcome,
            )

        device, failed_in = await self._repository.record_report(peek_device_id(token), verified)
        if failed_in is not None:
            await self.step(failed_in, since=arrived)
        return device

    async def step(self, rollout_id: int, *, since: float | None = None) -> StepResult:
        """One engine step of a rollout (``since``: when the report that caused it arrived,
        for the log line that says how long the abort took)."""
        started = time.perf_counter() if since is None else since
        result = await self._repository.step_rollout(rollout_id)
        if result.action != "none":
            self._watcher.invalidate()
            _log.info(
                "rollout %d of %s/%d %s (stage %d) %.1f ms after %s",
                result.rollout.id,
                result.rollout.device_type,
                result.rollout.seq,
                result.action,
                result.rollout.stage + 1,
                (time.perf_counter() - started) * 1000,
                "the report that crossed the threshold arrived" if since else "the step began",
            )
        return result

    async def tick(self) -> list[StepResult]:
        """One step of every running rollout."""
        results = []
        for rollout in await self._repository.active_rollouts():
            if rollout.state == "running":
                results.append(await self.step(rollout.id))
        return results

    async def run(self, interval: float) -> None:
        """Tick every ``interval`` seconds until cancelled (every worker runs one; the steps
        are conditional updates under row locks, so concurrent ticks are harmless)."""
        while True:
            await asyncio.sleep(interval)
            try:
                await self.tick()
            except FotaError as exc:
                _log.warning("rollout engine step failed: %s", exc)
            except Exception:  # noqa: BLE001 -- the engine keeps ticking; the next step retries
                _log.exception("rollout engine step failed")
