"""The dashboard's fleet pages: devices (filtered and paginated in the database), rollouts
(progress per stage, outcomes over time, failures grouped by reason; start, pause, resume,
abort) and the audit log. Reads go through :class:`DashboardRepository` (the fleet
repository plus aggregate queries); changes through the fleet repository's own methods, with
the API's role rules (starting and steering rollouts needs an admin)."""

from __future__ import annotations

from typing import Annotated, Any, Final

from fastapi import APIRouter, Path, Request
from starlette.responses import Response

from secure_fota.errors import InputError
from secure_fota.formats.names import check_name, check_seq
from secure_fota.limits import MAX_ROLLOUT_STAGES, UI_PAGE_SIZE
from secure_fota.server.context import ServerContext
from secure_fota.server.db.dashboard import DEVICE_STATES, DashboardRepository, DeviceFilter
from secure_fota.server.db.fleet import RolloutPlan
from secure_fota.server.db.records import RolloutProgress
from secure_fota.server.ui.pages import acting, user_and_context
from secure_fota.server.ui.render import (
    PageView,
    UiRoute,
    page_numbers,
    query_builder,
    query_choice,
    query_int,
    query_name,
    redirect,
    render,
)
from secure_fota.wire import UI

__all__ = ["router"]

router = APIRouter(prefix=UI, route_class=UiRoute, include_in_schema=False)

_ROLLOUT_ACTIONS: Final = ("pause", "resume", "abort")
_DEFAULT_STAGES: Final = "1,10,50,100"
_MAX_SECONDS: Final = 30 * 86400
RolloutPath = Annotated[str, Path()]


def _queries(request: Request, context: ServerContext) -> DashboardRepository:
    """This worker's dashboard queries (on the server's engine; built once)."""
    found = getattr(request.app.state, "ui_queries", None)
    if not isinstance(found, DashboardRepository) or found.engine is not context.engine:
        found = DashboardRepository(context.engine)
        request.app.state.ui_queries = found
    return found


def _chart(
    title: str, kind: str, labels: list[str], series: dict[str, list[int]], **extra: Any
) -> dict[str, Any]:
    return {
        "title": title,
        "type": kind,
        "labels": labels,
        "datasets": [
            {"key": key, "label": key.replace("_", " "), "data": data}
            for key, data in series.items()
        ],
        **extra,
    }


async def distribution_chart(request: Request, context: ServerContext) -> dict[str, Any] | None:
    """The fleet's release distribution (devices per device type and running release)."""
    rows = await _queries(request, context).release_distribution()
    if not rows:
        return None
    top = rows[:24]
    return _chart(
        "devices per running release",
        "bar",
        [f"{t}/{s}" if s is not None else f"{t}/none" for t, s, _ in top],
        {"devices": [n for _, _, n in top]},
        x="device type / running release",
        y="devices",
    )


# devices --------------------------------------------------------------------------------


@router.get("/devices")
async def devices(request: Request) -> Response:
    context, user = await user_and_context(request)
    wanted = DeviceFilter(
        device_type=query_name(request, "type"),
        running_seq=query_int(request, "release", None, 2**31 - 1),
        state=(query_choice(request, "state", ("any", *DEVICE_STATES)).replace("any", "") or None),
    )
    number, size = page_numbers(request)
    queries = _queries(request, context)
    found = await queries.device_page(wanted, offset=(number - 1) * size, limit=size)
    types = [summary.device_type for summary in await context.repository.device_types()]
    return render(
        "devices.html",
        user=user,
        section="/devices",
        title="Devices",
        page=PageView.of(found, number, size),
        filters=wanted,
        states=DEVICE_STATES,
        types=types,
        query=query_builder(request),
    )


# rollouts -------------------------------------------------------------------------------


def _rollout_id(value: str) -> int:
    return check_seq("rollout", value)


@router.get("/rollouts")
async def rollouts(request: Request) -> Response:
    context, user = await user_and_context(request)
    device_type = query_name(request, "type")
    found = await context.repository.rollouts(device_type=device_type, limit=UI_PAGE_SIZE)
    progress = [await context.repository.progress(r.id) for r in found]
    return render(
        "rollouts.html",
        user=user,
        section="/rollouts",
        title="Rollouts",
        rollouts=progress,
        filters={"type": device_type or ""},
    )


def _stage_chart(progress: RolloutProgress) -> dict[str, Any]:
    stages = progress.stages
    return _chart(
        "devices per stage and outcome",
        "bar",
        [f"stage {s.stage + 1} ({s.percent} %)" for s in stages],
        {
            "confirmed": [s.confirmed for s in stages],
            "failed": [s.failed for s in stages],
            "silent": [s.silent for s in stages],
            "pending": [s.pending for s in stages],
        },
        stacked=True,
        y="devices",
    )


async def _rollout_view(
    request: Request, context: ServerContext, rollout_id: int
) -> dict[str, Any]:
    progress = await context.repository.progress(rollout_id)
    queries = _queries(request, context)
    timeline = await queries.rollout_timeline(progress.rollout)
    reasons = await queries.failure_reasons(rollout_id)
    return {
        "progress": progress,
        "rollout": progress.rollout,
        "reasons": reasons,
        "stage_chart": _stage_chart(progress),
        "timeline_chart": _chart(
            "confirmed, failed and pending over time",
            "line",
            [point.at.strftime("%H:%M:%S") for point in timeline],
            {
                "confirmed": [p.confirmed for p in timeline],
                "failed": [p.failed for p in timeline],
                "pending": [p.pending for p in timeline],
            },
            x="time (UTC)",
            y="devices",
        ),
    }


@router.get("/rollouts/new")
async def new_rollout(request: Request) -> Response:
    _, user = await user_and_context(request)
    user.need_admin("starting a rollout")
    device_type = query_name(request, "type") or ""
    seq = query_int(request, "release", None, 2**31 - 1)
    return render(
        "rollout_new.html",
        user=user,
        section="/rollouts",
        title="New rollout",
        form={
            "device_type": device_type,
            "seq": "" if seq is None else str(seq),
            "stages": _DEFAULT_STAGES,
            "max_failure_rate": "5",
            "min_devices": "20",
            "stage_wait": "3600",
            "silent_deadline": "3600",
        },
    )


def _whole(form: dict[str, str], field: str, lowest: int, highest: int) -> int:
    text = form.get(field, "").strip()
    if (
        not (text.isascii() and text.isdigit())
        or len(text) > 9
        or not lowest <= int(text) <= highest
    ):
        raise InputError(field, f"must be a whole number from {lowest} to {highest}")
    return int(text)


def _plan(form: dict[str, str]) -> RolloutPlan:
    device_type = check_name("device type", form.get("device_type", "").strip())
    seq = check_seq("release", form.get("seq", "").strip())
    parts = [part.strip().rstrip("%") for part in form.get("stages", "").split(",")]
    if (
        not parts
        or len(parts) > MAX_ROLLOUT_STAGES
        or not all(p.isascii() and p.isdigit() and len(p) <= 3 for p in parts)
    ):
        raise InputError("stages", f"must be 1 to {MAX_ROLLOUT_STAGES} comma-separated percentages")
    stages = [int(p) for p in parts]
    if any(not 1 <= p <= 100 for p in stages) or stages != sorted(set(stages)) or stages[-1] != 100:
        raise InputError("stages", "must be increasing percentages from 1 to 100, ending at 100")
    rate = form.get("max_failure_rate", "").strip().rstrip("%")
    try:
        failure_rate = float(rate) / 100
    except ValueError:
        raise InputError("max_failure_rate", "must be a percentage from 0 to 100") from None
    if not 0 <= failure_rate <= 1:
        raise InputError("max_failure_rate", "must be a percentage from 0 to 100")
    return RolloutPlan(
        device_type=device_type,
        seq=seq,
        stages=tuple(stages),
        max_failure_rate=failure_rate,
        min_devices=_whole(form, "min_devices", 1, 1_000_000),
        stage_wait=_whole(form, "stage_wait", 0, _MAX_SECONDS),
        silent_deadline=_whole(form, "silent_deadline", 1, _MAX_SECONDS),
    )


@router.post("/rollouts")
async def create_rollout(request: Request) -> Response:
    context, user, form = await acting(request)
    user.need_admin("starting a rollout")
    created = await context.repository.create_rollout(_plan(form), actor=user.name)
    await context.releases.settle()
    return redirect(f"{UI}/rollouts/{created.id}")


@router.get("/rollouts/{rollout_id}")
async def rollout(request: Request, rollout_id: RolloutPath) -> Response:
    context, user = await user_and_context(request)
    view = await _rollout_view(request, context, _rollout_id(rollout_id))
    template = "rollout_live.html" if request.query_params.get("part") == "live" else "rollout.html"
    return render(template, user=user, section="/rollouts", title=f"Rollout {rollout_id}", **view)


@router.post("/rollouts/{rollout_id}/{action}")
async def control(request: Request, rollout_id: RolloutPath, action: str) -> Response:
    context, user, _ = await acting(request)
    number = _rollout_id(rollout_id)
    if action not in _ROLLOUT_ACTIONS:
        raise InputError("action", "must be pause, resume or abort")
    user.need_admin(f"{action} a rollout")
    await context.repository.control_rollout(number, action, actor=user.name)
    await context.releases.settle()
    return redirect(f"{UI}/rollouts/{number}")


# audit log ------------------------------------------------------------------------------


@router.get("/audit")
async def audit(request: Request) -> Response:
    context, user = await user_and_context(request)
    before = query_int(request, "before", None, 2**31 - 1)
    _, size = page_numbers(request)
    events = await context.repository.audit_events(after=before, limit=size)
    return render(
        "audit.html",
        user=user,
        section="/audit",
        title="Audit log",
        events=events,
        older=events[-1].id if len(events) == size else None,
        size=size,
    )
