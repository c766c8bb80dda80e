"""Operations endpoints: liveness, readiness (database and storage), Prometheus metrics."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST
from pydantic import BaseModel

from secure_fota.errors import FotaError
from secure_fota.server.routes.common import context_of
from secure_fota.wire import HEALTH, METRICS, READY

__all__ = ["router"]

router = APIRouter(tags=["operations"])


class Health(BaseModel):
    status: str


class Readiness(BaseModel):
    status: str
    database: str
    storage: str


@router.get(HEALTH, response_model=Health)
async def healthz() -> Health:
    """The process is up and answering."""
    return Health(status="ok")


@router.get(
    READY,
    response_model=Readiness,
    responses={503: {"model": Readiness, "description": "database or storage unreachable"}},
)
async def readyz(request: Request) -> JSONResponse:
    """The database answers and the blob store is usable."""
    context = context_of(request)
    database = storage = "ok"
    try:
        await context.repository.ping()
    except FotaError as exc:
        database = exc.message
    try:
        await context.store.check()
    except FotaError as exc:
        storage = exc.message
    ready = database == "ok" and storage == "ok"
    body = Readiness(status="ok" if ready else "unavailable", database=database, storage=storage)
    return JSONResponse(
        body.model_dump(),
        status_code=200 if ready else 503,
        headers={"cache-control": "no-store"},
    )


@router.get(METRICS, response_class=Response, responses={200: {"content": {"text/plain": {}}}})
async def metrics(request: Request) -> Response:
    """Prometheus text format: requests, bytes served, uploads, errors, 304s (this worker)."""
    return Response(context_of(request).metrics.render(), media_type=CONTENT_TYPE_LATEST)
