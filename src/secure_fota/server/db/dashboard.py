"""The dashboard's read queries over the fleet tables: a filtered, paginated device list with
its total, the fleet's release distribution, a rollout's outcomes over time and its failures
grouped by reason. Everything is filtered, counted and grouped in the database, so that a page
costs the same with 100 devices or 100,000 (bench/dashboard.py)."""

from __future__ import annotations

import datetime
from dataclasses import dataclass
from typing import Any, Final

from sqlalchemy import and_, case, func, or_, select

from secure_fota.server.db.fleet import CONFIRMED, FAILED, SILENT, FleetRepository, _device
from secure_fota.server.db.models import Device, RolloutDevice
from secure_fota.server.db.records import DeviceInfo, Page, RolloutInfo

__all__ = [
    "DEVICE_STATES",
    "DashboardRepository",
    "DeviceFilter",
    "FailureGroup",
    "TimelinePoint",
]

#: the device list's state filter: a device's last reported event, or ``never`` (no report)
DEVICE_STATES: Final = (
    "checking",
    "downloading",
    "installed",
    "confirmed",
    "rolled_back",
    "rejected",
    "failed",
    "never",
)


@dataclass(frozen=True, slots=True)
class DeviceFilter:
    device_type: str | None = None
    running_seq: int | None = None
    state: str | None = None


@dataclass(frozen=True, slots=True)
class TimelinePoint:
    at: datetime.datetime
    confirmed: int
    failed: int
    pending: int


@dataclass(frozen=True, slots=True)
class FailureGroup:
    """Failed (or silent) members of a rollout with the same last event, reason code and
    detail."""

    outcome: str
    event: str | None
    reason: str | None
    detail: str | None
    devices: int


def _conditions(wanted: DeviceFilter) -> list[Any]:
    conditions: list[Any] = []
    if wanted.device_type is not None:
        conditions.append(Device.device_type == wanted.device_type)
    if wanted.running_seq is not None:
        conditions.append(Device.running_seq == wanted.running_seq)
    if wanted.state == "never":
        conditions.append(Device.last_event.is_(None))
    elif wanted.state is not None:
        conditions.append(Device.last_event == wanted.state)
    return conditions


class DashboardRepository(FleetRepository):
    """The fleet repository, plus the dashboard's aggregate reads."""

    async def device_page(
        self, wanted: DeviceFilter, *, offset: int, limit: int
    ) -> Page[DeviceInfo]:
        """Devices by id, filtered; one page of them and how many match in all."""
        conditions = _conditions(wanted)
        async with self._tx() as session:
            total = await session.scalar(
                select(func.count()).select_from(Device).where(*conditions)
            )
            rows = (
                await session.scalars(
                    select(Device)
                    .where(*conditions)
                    .order_by(Device.device_id)
                    .offset(offset)
                    .limit(limit)
                )
            ).all()
            members = await self._membership(session, [row.device_id for row in rows])
            items = [_device(row, members.get(row.device_id)) for row in rows]
        return Page(items, int(total or 0))

    async def release_distribution(self) -> list[tuple[str, int | None, int]]:
        """``(device type, running seq, devices)``, most devices first."""
        count = func.count().label("devices")
        async with self._tx() as session:
            rows = await session.execute(
                select(Device.device_type, Device.running_seq, count)
                .group_by(Device.device_type, Device.running_seq)
                .order_by(count.desc(), Device.device_type, Device.running_seq)
            )
            return [(t, s, int(n)) for t, s, n in rows.all()]

    async def rollout_timeline(
        self, rollout: RolloutInfo, *, points: int = 24
    ) -> list[TimelinePoint]:
        """Confirmed, failed (silent included) and pending members at ``points`` moments from
        the rollout's start to its end (or now): one query, one pass over its members."""
        start = rollout.created_at
        end = rollout.finished_at or datetime.datetime.now(datetime.UTC)
        span = max((end - start).total_seconds(), 1.0)
        moments = [
            start + datetime.timedelta(seconds=span * (i + 1) / points) for i in range(points)
        ]
        member = RolloutDevice
        resolved = member.outcome_at.is_not(None)
        columns = []
        for moment in moments:
            offered = member.offered_at <= moment
            done = and_(resolved, member.outcome_at <= moment)
            columns += [
                func.sum(case((and_(done, member.outcome == CONFIRMED), 1), else_=0)),
                func.sum(case((and_(done, member.outcome.in_((FAILED, SILENT))), 1), else_=0)),
                func.sum(
                    case((and_(offered, or_(~resolved, member.outcome_at > moment)), 1), else_=0)
                ),
            ]
        async with self._tx() as session:
            row = (
                await session.execute(select(*columns).where(member.rollout_id == rollout.id))
            ).one()
        values = [int(value or 0) for value in row]
        return [
            TimelinePoint(moment, values[3 * i], values[3 * i + 1], values[3 * i + 2])
            for i, moment in enumerate(moments)
        ]

    async def failure_reasons(self, rollout_id: int) -> list[FailureGroup]:
        """The rollout's failed and silent members grouped by their last report (event, reason
        code, detail)."""
        count = func.count().label("devices")
        async with self._tx() as session:
            rows = await session.execute(
                select(
                    RolloutDevice.outcome,
                    Device.last_event,
                    Device.last_reason,
                    Device.last_detail,
                    count,
                )
                .join(Device, Device.device_id == RolloutDevice.device_id, isouter=True)
                .where(
                    RolloutDevice.rollout_id == rollout_id,
                    RolloutDevice.outcome.in_((FAILED, SILENT)),
                )
                .group_by(
                    RolloutDevice.outcome, Device.last_event, Device.last_reason, Device.last_detail
                )
                .order_by(count.desc())
            )
            return [FailureGroup(o, e, r, d, int(n)) for o, e, r, d, n in rows.all()]
