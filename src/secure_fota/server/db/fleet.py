"""The fleet's database reads and writes: devices and their reports, rollouts and their
members, the audit log. One short transaction per method, plain records in and out, like
:class:`~secure_fota.server.db.repository.Repository` (which this extends).

The rollout engine's steps (:meth:`FleetRepository.step_rollout`) change a rollout only with
conditional updates (``WHERE state = 'running' AND stage = :seen``) after locking its row, so
several workers (or hosts) ticking at once, or a worker killed in the middle, never apply a
step twice or half.
"""

from __future__ import annotations

import dataclasses
import datetime
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Final

from sqlalchemy import func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from secure_fota.errors import ConflictError, InputError, NotFoundError
from secure_fota.server.db.models import AuditEvent, Device, Release, Rollout, RolloutDevice
from secure_fota.server.db.records import (
    AuditInfo,
    DeviceInfo,
    RolloutInfo,
    RolloutProgress,
    StageProgress,
)
from secure_fota.server.db.repository import Repository, _now
from secure_fota.server.errors import Forbidden

__all__ = [
    "ENGINE_ACTOR",
    "FleetRepository",
    "ReplayedReport",
    "ReportFacts",
    "RolloutPlan",
    "StepResult",
]

#: the audit actor of the rollout engine's own steps
ENGINE_ACTOR: Final = "rollout-engine"
ACTIVE: Final = ("running", "paused")
#: outcomes of a rollout member
PENDING, CONFIRMED, FAILED, SILENT = "pending", "confirmed", "failed", "silent"


class ReplayedReport(ConflictError):
    """A report whose counter is not above the last one the device sent (409)."""


@dataclass(frozen=True, slots=True)
class ReportFacts:
    """A verified report, as the repository stores it."""

    device_id: str
    device_type: str
    event: str
    reason: str | None
    detail: str
    seq: int
    secure_version: int
    version: str
    release: int
    counter: int
    pub: str
    #: "success" (confirmed), "failure" (rolled_back, rejected, failed) or None
    outcome: str | None


@dataclass(frozen=True, slots=True)
class RolloutPlan:
    device_type: str
    seq: int
    stages: tuple[int, ...]
    max_failure_rate: float
    min_devices: int
    stage_wait: int
    silent_deadline: int


@dataclass(frozen=True, slots=True)
class StepResult:
    """What one engine step did: ``none``, ``advanced``, ``completed`` or ``aborted``."""

    rollout: RolloutInfo
    action: str


def _device(row: Device, member: RolloutDevice | None = None) -> DeviceInfo:
    return DeviceInfo(
        device_id=row.device_id,
        device_type=row.device_type,
        public_key=row.public_key,
        key_source=row.key_source,
        counter=row.counter,
        running_seq=row.running_seq,
        version=row.version,
        secure_version=row.secure_version,
        first_seen=row.first_seen,
        last_seen=row.last_seen,
        last_event=row.last_event,
        last_release=row.last_release,
        last_reason=row.last_reason,
        last_detail=row.last_detail,
        last_report_at=row.last_report_at,
        rollout_id=None if member is None else member.rollout_id,
        rollout_outcome=None if member is None else member.outcome,
    )


def _rollout(row: Rollout) -> RolloutInfo:
    return RolloutInfo(**{f.name: getattr(row, f.name) for f in dataclasses.fields(RolloutInfo)})


class FleetRepository(Repository):
    # devices and reports ------------------------------------------------------------------

    async def register_device(
        self, device_id: str, device_type: str, public_key: str, *, actor: str
    ) -> DeviceInfo:
        """An operator registers a device's key ahead of its first report (no TOFU for it)."""
        try:
            async with self._tx() as session:
                row = await session.get(Device, device_id, with_for_update=True)
                if row is None:
                    row = Device(
                        device_id=device_id,
                        device_type=device_type,
                        key_source="operator",
                        counter=0,
                        first_seen=_now(),
                    )
                    session.add(row)
                elif row.device_type != device_type:
                    raise ConflictError(
                        f"device {device_id!r} is registered as a {row.device_type!r}"
                    )
                row.public_key = public_key
                row.key_source = "operator"
                self._audit(session, actor, "device-register", device_id, device_type)
                await session.flush()
                return _device(row)
        except IntegrityError:
            raise ConflictError(f"device {device_id!r} registered concurrently; retry") from None

    async def record_report(
        self, device_id: str, verified: Callable[[str | None], ReportFacts]
    ) -> tuple[DeviceInfo, int | None]:
        """Store the report of ``device_id`` that ``verified`` checks against the device's
        registered key (None: none yet) and returns; return the device and the id of the
        running rollout whose member it failed in (the caller then judges that rollout at once).

        In one transaction, under the device's row lock: ``verified`` runs first (what it
        raises rolls everything back), the key must be the registered one (the first report
        registers it), the counter must exceed the last one (else :class:`ReplayedReport`).
        """
        now = _now()
        try:
            async with self._tx() as session:
                row = await session.get(Device, device_id, with_for_update=True)
                facts = verified(None if row is None else row.public_key)
                if facts.device_id != device_id:
                    raise Forbidden(f"the report names {facts.device_id!r}, not {device_id!r}")
                if row is None:
                    row = Device(
                        device_id=facts.device_id,
                        device_type=facts.device_type,
                        public_key=facts.pub,
                        key_source="tofu",
                        counter=0,
                        first_seen=now,
                    )
                    session.add(row)
                if row.public_key is None:
                    row.public_key = facts.pub
                if row.public_key != facts.pub:
                    raise Forbidden(f"device {facts.device_id!r} reported with another key")
                if row.device_type != facts.device_type:
                    raise Forbidden(
                        f"device {facts.device_id!r} is a {row.device_type!r}, "
                        f"not a {facts.device_type!r}"
                    )
                if facts.counter <= row.counter:
                    raise ReplayedReport(
                        f"report counter {facts.counter} of {facts.device_id!r} is not above "
                        f"{row.counter} (a replayed or reordered report)"
                    )
                row.counter = facts.counter
                row.running_seq = facts.seq
                row.version = facts.version
                row.secure_version = facts.secure_version
                row.last_seen = now
                row.last_event = facts.event
                row.last_release = facts.release or None
                row.last_reason = facts.reason
                row.last_detail = facts.detail or None
                row.last_report_at = now
                failed_in = await self._rollout_outcome(session, facts, now)
                await session.flush()
                member = await self._membership(session, [facts.device_id])
                return _device(row, member.get(facts.device_id)), failed_in
        except IntegrityError:
            # two first reports of one device at once: the loser retries as a known device
            raise ReplayedReport(f"concurrent reports of {facts.device_id!r}; retry") from None

    async def _rollout_outcome(
        self, session: AsyncSession, facts: ReportFacts, now: datetime.datetime
    ) -> int | None:
        """Record a member's outcome in the active rollout of the release the report is about."""
        if facts.outcome is None or not facts.release:
            return None
        rollout_id = await session.scalar(
            select(Rollout.id).where(
                Rollout.device_type == facts.device_type,
                Rollout.seq == facts.release,
                Rollout.state.in_(ACTIVE),
            )
        )
        if rollout_id is None:
            return None
        outcome = CONFIRMED if facts.outcome == "success" else FAILED
        result = await session.execute(
            update(RolloutDevice)
            .where(
                RolloutDevice.rollout_id == rollout_id,
                RolloutDevice.device_id == facts.device_id,
                RolloutDevice.outcome.in_((PENDING, SILENT)),
            )
            .values(outcome=outcome, outcome_at=now)
        )
        changed = bool(result.rowcount)  # type: ignore[attr-defined]
        return rollout_id if changed and outcome == FAILED else None

    @staticmethod
    async def _membership(
        session: AsyncSession, device_ids: Sequence[str]
    ) -> dict[str, RolloutDevice]:
        """Each device's membership in its most recent rollout."""
        if not device_ids:
            return {}
        rows = await session.scalars(
            select(RolloutDevice)
            .where(RolloutDevice.device_id.in_(device_ids))
            .order_by(RolloutDevice.rollout_id)
        )
        return {row.device_id: row for row in rows.all()}

    async def device(self, device_id: str) -> DeviceInfo | None:
        async with self._tx() as session:
            row = await session.get(Device, device_id)
            if row is None:
                return None
            member = await self._membership(session, [device_id])
            return _device(row, member.get(device_id))

    async def devices(
        self,
        *,
        device_type: str | None = None,
        rollout_id: int | None = None,
        after: str | None = None,
        limit: int = 100,
    ) -> list[DeviceInfo]:
        """One page of the inventory ordered by device id (keyset pagination: pass the last
        id of a page as ``after``), filtered by type and rollout in the database."""
        query = select(Device).order_by(Device.device_id).limit(limit)
        if device_type is not None:
            query = query.where(Device.device_type == device_type)
        if after is not None:
            query = query.where(Device.device_id > after)
        if rollout_id is not None:
            query = query.where(
                Device.device_id.in_(
                    select(RolloutDevice.device_id).where(RolloutDevice.rollout_id == rollout_id)
                )
            )
        async with self._tx() as session:
            rows = (await session.scalars(query)).all()
            members = await self._membership(session, [row.device_id for row in rows])
            return [_device(row, members.get(row.device_id)) for row in rows]

    # rollouts -------------------------------------------------------------------------------

    async def create_rollout(self, plan: RolloutPlan, *, actor: str) -> RolloutInfo:
        """Start a rollout of a stored release; it is held (offered only through the
        rollout) from now on. One active rollout per device type."""
        now = _now()
        async with self._tx() as session:
            release = (
                await session.scalars(
                    select(Release)
                    .where(Release.device_type == plan.device_type, Release.seq == plan.seq)
                    .with_for_update()
                )
            ).first()
            if release is None:
                raise NotFoundError(f"device type {plan.device_type!r} has no release {plan.seq}")
            if release.yanked:
                raise ConflictError(f"release {plan.device_type}/{plan.seq} is yanked")
            active = await session.scalar(
                select(Rollout.id).where(
                    Rollout.device_type == plan.device_type, Rollout.state.in_(ACTIVE)
                )
            )
            if active is not None:
                raise ConflictError(
                    f"rollout {active} of {plan.device_type!r} is still active (abort it first)"
                )
            newer = await session.scalar(
                select(func.max(Release.seq)).where(
                    Release.device_type == plan.device_type,
                    Release.yanked.is_(False),
                    Release.held.is_(False),
                    Release.seq >= plan.seq,
                    Release.pk != release.pk,
                )
            )
            if newer is not None:
                raise ConflictError(
                    f"release {plan.device_type}/{newer} is newer and offered to every device; "
                    f"a rollout of {plan.seq} would never be newest"
                )
            release.held = True
            row = Rollout(
                device_type=plan.device_type,
                seq=plan.seq,
                stages=",".join(str(p) for p in plan.stages),
                stage=0,
                state="running",
                max_failure_rate=plan.max_failure_rate,
                min_devices=plan.min_devices,
                stage_wait=plan.stage_wait,
                silent_deadline=plan.silent_deadline,
                created_by=actor,
                created_at=now,
                stage_started_at=now,
            )
            session.add(row)
            await session.flush()
            self._audit(
                session,
                actor,
                "rollout-start",
                f"rollout {row.id} {plan.device_type}/{plan.seq}",
                f"stages {row.stages}, max failure rate {plan.max_failure_rate:.1%}",
            )
            await self._bump(session)
            return _rollout(row)

    async def rollout(self, rollout_id: int) -> RolloutInfo:
        async with self._tx() as session:
            row = await session.get(Rollout, rollout_id)
            if row is None:
                raise NotFoundError(f"no rollout {rollout_id}")
            return _rollout(row)

    async def rollouts(
        self, *, device_type: str | None = None, limit: int = 100
    ) -> list[RolloutInfo]:
        query = select(Rollout).order_by(Rollout.id.desc()).limit(limit)
        if device_type is not None:
            query = query.where(Rollout.device_type == device_type)
        async with self._tx() as session:
            return [_rollout(row) for row in (await session.scalars(query)).all()]

    async def active_rollouts(self) -> list[RolloutInfo]:
        async with self._tx() as session:
            rows = await session.scalars(select(Rollout).where(Rollout.state.in_(ACTIVE)))
            return [_rollout(row) for row in rows.all()]

    async def note_offer(self, rollout_id: int, device_id: str, stage: int) -> bool:
        """Remember that ``device_id`` was offered the rollout's release (once; True if new)."""
        try:
            async with self._tx() as session:
                if await session.get(RolloutDevice, (rollout_id, device_id)) is not None:
                    return False
                session.add(
                    RolloutDevice(
                        rollout_id=rollout_id,
                        device_id=device_id,
                        stage=stage,
                        offered_at=_now(),
                        outcome=PENDING,
                    )
                )
        except IntegrityError:
            return False  # another worker noted it first
        return True

    async def progress(self, rollout_id: int) -> RolloutProgress:
        """Members per stage and outcome (silent members counted apart from failed ones)."""
        async with self._tx() as session:
            row = await session.get(Rollout, rollout_id)
            if row is None:
                raise NotFoundError(f"no rollout {rollout_id}")
            return await self._progress(session, _rollout(row))

    @staticmethod
    async def _progress(session: AsyncSession, rollout: RolloutInfo) -> RolloutProgress:
        counts = await session.execute(
            select(RolloutDevice.stage, RolloutDevice.outcome, func.count())
            .where(RolloutDevice.rollout_id == rollout.id)
            .group_by(RolloutDevice.stage, RolloutDevice.outcome)
        )
        table: dict[int, dict[str, int]] = {}
        for stage, outcome, count in counts.all():
            table.setdefault(int(stage), {})[str(outcome)] = int(count)
        stages = []
        for index, percent in enumerate(rollout.percentages):
            found = table.get(index, {})
            stages.append(
                StageProgress(
                    stage=index,
                    percent=percent,
                    offered=sum(found.values()),
                    pending=found.get(PENDING, 0),
                    confirmed=found.get(CONFIRMED, 0),
                    failed=found.get(FAILED, 0),
                    silent=found.get(SILENT, 0),
                )
            )
        return RolloutProgress(rollout, tuple(stages))

    async def control_rollout(self, rollout_id: int, action: str, *, actor: str) -> RolloutInfo:
        """``pause``, ``resume`` or ``abort`` (an abort yanks the release for new offers)."""
        allowed = {"pause": ("running",), "resume": ("paused",), "abort": ACTIVE}
        target = {"pause": "paused", "resume": "running", "abort": "aborted"}
        if action not in allowed:
            raise InputError("action", "must be pause, resume or abort")
        async with self._tx() as session:
            row = await session.get(Rollout, rollout_id, with_for_update=True)
            if row is None:
                raise NotFoundError(f"no rollout {rollout_id}")
            if row.state not in allowed[action]:
                raise ConflictError(f"rollout {rollout_id} is {row.state}; cannot {action} it")
            if action == "abort":
                await self._abort(session, row, actor, f"aborted by {actor}")
            else:
                row.state = target[action]
                if action == "resume":
                    row.stage_started_at = _now()
                self._audit(
                    session,
                    actor,
                    f"rollout-{action}",
                    f"rollout {row.id} {row.device_type}/{row.seq}",
                )
            await self._bump(session)
            return _rollout(row)

    async def _abort(self, session: AsyncSession, row: Rollout, actor: str, note: str) -> None:
        row.state = "aborted"
        row.finished_at = _now()
        row.note = note[:255]
        await session.execute(
            update(Release)
            .where(Release.device_type == row.device_type, Release.seq == row.seq)
            .values(yanked=True)
        )
        self._audit(
            session, actor, "rollout-abort", f"rollout {row.id} {row.device_type}/{row.seq}", note
        )

    async def step_rollout(
        self, rollout_id: int, *, now: datetime.datetime | None = None
    ) -> StepResult:
        """One engine step: mark members silent past the deadline, abort past the failure
        threshold, advance (or complete) when the stage has waited and nobody is pending."""
        now = now or _now()
        async with self._tx() as session:
            row = await session.get(Rollout, rollout_id, with_for_update=True)
            if row is None:
                raise NotFoundError(f"no rollout {rollout_id}")
            if row.state != "running":
                return StepResult(_rollout(row), "none")
            silent_before = now - datetime.timedelta(seconds=row.silent_deadline)
            await session.execute(
                update(RolloutDevice)
                .where(
                    RolloutDevice.rollout_id == row.id,
                    RolloutDevice.outcome == PENDING,
                    RolloutDevice.offered_at < silent_before,
                )
                .values(outcome=SILENT, outcome_at=now)
            )
            progress = await self._progress(session, _rollout(row))
            base = max(progress.offered, row.min_devices)
            rate = progress.failed / base
            if progress.failed and rate > row.max_failure_rate:
                await self._abort(
                    session,
                    row,
                    ENGINE_ACTOR,
                    f"failure rate {progress.failed}/{base} = {rate:.1%} over "
                    f"{row.max_failure_rate:.1%} at stage {row.stage + 1}",
                )
                await self._bump(session)
                return StepResult(_rollout(row), "aborted")
            waited = (now - row.stage_started_at).total_seconds() >= row.stage_wait
            if not waited or progress.pending or not progress.confirmed:
                return StepResult(_rollout(row), "none")
            percentages = _rollout(row).percentages
            if row.stage + 1 < len(percentages):
                row.stage += 1
                row.stage_started_at = now
                self._audit(
                    session,
                    ENGINE_ACTOR,
                    "rollout-advance",
                    f"rollout {row.id} {row.device_type}/{row.seq}",
                    f"stage {row.stage + 1}: {percentages[row.stage]}%",
                )
                action = "advanced"
            else:
                row.state = "completed"
                row.finished_at = now
                await session.execute(
                    update(Release)
                    .where(Release.device_type == row.device_type, Release.seq == row.seq)
                    .values(held=False)
                )
                self._audit(
                    session,
                    ENGINE_ACTOR,
                    "rollout-complete",
                    f"rollout {row.id} {row.device_type}/{row.seq}",
                    f"{progress.confirmed} confirmed, {progress.failed} failed",
                )
                action = "completed"
            await self._bump(session)
            return StepResult(_rollout(row), action)

    # audit ----------------------------------------------------------------------------------

    async def audit_events(self, *, after: int | None = None, limit: int = 100) -> list[AuditInfo]:
        """Audit events, newest first (``after``: only events with a smaller id)."""
        query = select(AuditEvent).order_by(AuditEvent.id.desc()).limit(limit)
        if after is not None:
            query = query.where(AuditEvent.id < after)
        async with self._tx() as session:
            rows = (await session.scalars(query)).all()
            return [AuditInfo(r.id, r.at, r.actor, r.action, r.target, r.detail) for r in rows]

    async def audit(self, actor: str, action: str, target: str, detail: str = "") -> None:
        async with self._tx() as session:
            self._audit(session, actor, action, target, detail)
