"""Fleet operations under ``/api/v1``: signed device reports, the inventory, staged rollouts
and the audit log (docs/api.md, "Fleet operations"). Reports follow the device
authentication setting (and are signed in every mode); everything else needs an uploader or
admin, and changes need an admin."""

from __future__ import annotations

import datetime
from typing import Annotated, Any, Final, Literal

from fastapi import APIRouter, Path, Query, Request
from pydantic import BaseModel, Field

from secure_fota.crypto.report import public_key_from_text
from secure_fota.errors import FormatError, InputError, NotFoundError
from secure_fota.formats.names import check_name
from secure_fota.limits import MAX_PAGE_SIZE, MAX_REPORT_SIZE, MAX_ROLLOUT_STAGES
from secure_fota.server.db.fleet import RolloutPlan
from secure_fota.server.db.records import AuditInfo, DeviceInfo, RolloutInfo, RolloutProgress
from secure_fota.server.errors import PayloadTooLarge
from secure_fota.server.routes.common import ERROR_RESPONSES, NAME_SCHEMA, context_of, device, staff
from secure_fota.wire import (
    API_V1,
    AUDIT,
    DEVICE,
    DEVICES,
    REPORT_CONTENT_TYPE,
    REPORTS,
    ROLLOUT,
    ROLLOUT_ACTION,
    ROLLOUTS,
)

__all__ = ["router"]

router = APIRouter(prefix=API_V1, tags=["fleet"], responses=ERROR_RESPONSES)

DeviceIdPath = Annotated[str, Path(description="device id", json_schema_extra=NAME_SCHEMA)]
RolloutIdPath = Annotated[int, Path(ge=1, le=2**31 - 1, description="rollout id")]
_REPORT_BODY: Final[dict[str, Any]] = {
    "requestBody": {
        "required": True,
        "content": {
            "text/plain": {
                "schema": {
                    "type": "string",
                    "description": f"a JWS compact report (formats.md §11); devices send it as "
                    f"{REPORT_CONTENT_TYPE}",
                }
            }
        },
    }
}


class DeviceOut(BaseModel):
    device_id: str
    device_type: str
    key_source: str = Field(description="tofu (first report) or operator (pre-registered)")
    running_seq: int | None
    version: str | None
    secure_version: int | None
    first_seen: datetime.datetime
    last_seen: datetime.datetime | None
    last_event: str | None
    last_release: int | None
    last_reason: str | None
    last_detail: str | None
    last_report_at: datetime.datetime | None
    rollout_id: int | None = Field(description="the rollout that last offered this device")
    rollout_outcome: str | None = Field(description="pending, confirmed, failed or silent")

    @classmethod
    def of(cls, info: DeviceInfo) -> DeviceOut:
        return cls(
            **{name: getattr(info, name) for name in cls.model_fields},
        )


class DevicePage(BaseModel):
    devices: list[DeviceOut]
    next: str | None = Field(description="pass as `after` for the next page (null: last page)")


class DeviceKeyIn(BaseModel):
    device_type: str = Field(json_schema_extra=NAME_SCHEMA)
    public_key: str = Field(description="the device's P-256 report key, SPKI DER in base64url")


class RolloutIn(BaseModel):
    device_type: str = Field(json_schema_extra=NAME_SCHEMA)
    seq: int = Field(ge=1, le=2**31 - 1, description="the release")
    stages: list[int] = Field(
        default=[1, 10, 50, 100],
        min_length=1,
        max_length=MAX_ROLLOUT_STAGES,
        description="percent of the fleet per stage, increasing, ending at 100",
    )
    max_failure_rate: float = Field(0.05, ge=0, le=1, description="abort above this share")
    min_devices: int = Field(20, ge=1, le=1_000_000, description="failure rate denominator floor")
    stage_wait: int = Field(3600, ge=0, le=30 * 86400, description="seconds per stage at least")
    silent_deadline: int = Field(
        3600, ge=1, le=30 * 86400, description="seconds after an offer before silence is failure"
    )


class StageOut(BaseModel):
    stage: int = Field(description="1-based")
    percent: int
    offered: int
    pending: int
    confirmed: int
    failed: int
    silent: int


class RolloutOut(BaseModel):
    id: int
    device_type: str
    seq: int
    state: Literal["running", "paused", "aborted", "completed"]
    stage: int = Field(description="the current stage, 1-based")
    stages: list[int]
    max_failure_rate: float
    min_devices: int
    stage_wait: int
    silent_deadline: int
    created_by: str
    created_at: datetime.datetime
    stage_started_at: datetime.datetime
    finished_at: datetime.datetime | None
    note: str | None
    progress: list[StageOut] | None = None

    @classmethod
    def of(cls, info: RolloutInfo, progress: RolloutProgress | None = None) -> RolloutOut:
        return cls(
            id=info.id,
            device_type=info.device_type,
            seq=info.seq,
            state=info.state,  # type: ignore[arg-type]
            stage=info.stage + 1,
            stages=list(info.percentages),
            max_failure_rate=info.max_failure_rate,
            min_devices=info.min_devices,
            stage_wait=info.stage_wait,
            silent_deadline=info.silent_deadline,
            created_by=info.created_by,
            created_at=info.created_at,
            stage_started_at=info.stage_started_at,
            finished_at=info.finished_at,
            note=info.note,
            progress=None
            if progress is None
            else [
                StageOut(
                    stage=s.stage + 1,
                    percent=s.percent,
                    offered=s.offered,
                    pending=s.pending,
                    confirmed=s.confirmed,
                    failed=s.failed,
                    silent=s.silent,
                )
                for s in progress.stages
            ],
        )


class AuditOut(BaseModel):
    id: int
    at: datetime.datetime
    actor: str
    action: str
    target: str
    detail: str

    @classmethod
    def of(cls, info: AuditInfo) -> AuditOut:
        return cls(
            id=info.id,
            at=info.at,
            actor=info.actor,
            action=info.action,
            target=info.target,
            detail=info.detail,
        )


async def _body(request: Request, limit: int) -> bytes:
    data = bytearray()
    async for chunk in request.stream():
        data += chunk
        if len(data) > limit:
            raise PayloadTooLarge("body", f"is larger than {limit} bytes")
    return bytes(data)


@router.post(REPORTS, response_model=DeviceOut, openapi_extra=_REPORT_BODY)
async def report(request: Request) -> DeviceOut:
    """A device's signed report; answers the device as the inventory now has it."""
    from secure_fota.crypto.report import peek_device_type

    context = context_of(request)
    body = await _body(request, MAX_REPORT_SIZE)
    try:
        token = body.decode("ascii").strip()
    except UnicodeDecodeError:
        raise FormatError("device report", "is not ASCII") from None
    principal = await device(request, context, peek_device_type(token))
    return DeviceOut.of(await context.fleet.report(token, principal))


@router.get(DEVICES, response_model=DevicePage)
async def devices(
    request: Request,
    device_type: Annotated[str | None, Query(alias="deviceType")] = None,
    rollout: Annotated[int | None, Query(ge=1)] = None,
    after: Annotated[
        str | None, Query(description="the last device id of the previous page")
    ] = None,
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE_SIZE)] = 100,
) -> DevicePage:
    """The inventory, ordered by device id, one page at a time."""
    if device_type is not None:
        check_name("deviceType", device_type)
    await staff(request)
    found = await context_of(request).repository.devices(
        device_type=device_type, rollout_id=rollout, after=after, limit=limit
    )
    return DevicePage(
        devices=[DeviceOut.of(d) for d in found],
        next=found[-1].device_id if len(found) == limit else None,
    )


@router.get(DEVICE, response_model=DeviceOut)
async def device_info(request: Request, device_id: DeviceIdPath) -> DeviceOut:
    check_name("device_id", device_id)
    await staff(request)
    found = await context_of(request).repository.device(device_id)
    if found is None:
        raise NotFoundError(f"no device {device_id!r}")
    return DeviceOut.of(found)


@router.put(DEVICE, response_model=DeviceOut)
async def register_device(
    request: Request, device_id: DeviceIdPath, body: DeviceKeyIn
) -> DeviceOut:
    """Pre-register a device's report key (its reports are then never trusted on first use)."""
    check_name("device_id", device_id)
    check_name("device_type", body.device_type)
    try:
        public_key_from_text(body.public_key)
    except FormatError as exc:
        raise InputError("public_key", exc.detail) from None
    principal = await staff(request, admin=True)
    return DeviceOut.of(
        await context_of(request).repository.register_device(
            device_id, body.device_type, body.public_key, actor=principal.name
        )
    )


def _stages(stages: list[int]) -> tuple[int, ...]:
    if any(not 1 <= p <= 100 for p in stages) or stages != sorted(set(stages)):
        raise InputError("stages", "must be increasing percentages from 1 to 100")
    if stages[-1] != 100:
        raise InputError("stages", "must end at 100")
    return tuple(stages)


@router.post(ROLLOUTS, response_model=RolloutOut, status_code=201)
async def create_rollout(request: Request, body: RolloutIn) -> RolloutOut:
    check_name("device_type", body.device_type)
    plan = RolloutPlan(
        device_type=body.device_type,
        seq=body.seq,
        stages=_stages(body.stages),
        max_failure_rate=body.max_failure_rate,
        min_devices=body.min_devices,
        stage_wait=body.stage_wait,
        silent_deadline=body.silent_deadline,
    )
    principal = await staff(request, admin=True)
    context = context_of(request)
    created = await context.repository.create_rollout(plan, actor=principal.name)
    await context.releases.settle()
    return RolloutOut.of(created, await context.repository.progress(created.id))


@router.get(ROLLOUTS, response_model=list[RolloutOut])
async def rollouts(
    request: Request,
    device_type: Annotated[str | None, Query(alias="deviceType")] = None,
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE_SIZE)] = 100,
) -> list[RolloutOut]:
    if device_type is not None:
        check_name("deviceType", device_type)
    await staff(request)
    found = await context_of(request).repository.rollouts(device_type=device_type, limit=limit)
    return [RolloutOut.of(r) for r in found]


@router.get(ROLLOUT, response_model=RolloutOut)
async def rollout(request: Request, rollout_id: RolloutIdPath) -> RolloutOut:
    await staff(request)
    progress = await context_of(request).repository.progress(rollout_id)
    return RolloutOut.of(progress.rollout, progress)


@router.post(ROLLOUT_ACTION, response_model=RolloutOut)
async def control_rollout(
    request: Request, rollout_id: RolloutIdPath, action: Literal["pause", "resume", "abort"]
) -> RolloutOut:
    principal = await staff(request, admin=True)
    context = context_of(request)
    changed = await context.repository.control_rollout(rollout_id, action, actor=principal.name)
    await context.releases.settle()
    return RolloutOut.of(changed, await context.repository.progress(rollout_id))


@router.get(AUDIT, response_model=list[AuditOut])
async def audit(
    request: Request,
    before: Annotated[int | None, Query(ge=1, description="only events older than this id")] = None,
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE_SIZE)] = 100,
) -> list[AuditOut]:
    """The audit log, newest first."""
    await staff(request)
    found = await context_of(request).repository.audit_events(after=before, limit=limit)
    return [AuditOut.of(e) for e in found]
