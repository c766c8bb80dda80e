"""Helpers shared by the route modules: the app's context, the client, credentials, and the
answers both routers give (newest manifest and image, an upload)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from fastapi import APIRouter
from pydantic import BaseModel, Field
from starlette.requests import Request
from starlette.responses import Response

from secure_fota.errors import FotaError, NotFoundError
from secure_fota.formats.names import check_name
from secure_fota.limits import MAX_NAME_LENGTH, MAX_SEQ
from secure_fota.server.auth import Principal
from secure_fota.server.cache import NewestEntry
from secure_fota.server.context import ServerContext
from secure_fota.server.delivery import send_binary, send_manifest
from secure_fota.server.errors import Forbidden, Unavailable
from secure_fota.server.http_errors import error_response
from secure_fota.server.releases import Published
from secure_fota.server.uploads import precheck, read_upload, refuse_upload
from secure_fota.wire import DEVICE_ID, FRESHNESS_HEADER, HOLD, NONCE, check_nonce

__all__ = [
    "ERROR_RESPONSES",
    "ID_SCHEMA",
    "NAME_SCHEMA",
    "NONCE_SCHEMA",
    "ErrorOut",
    "client_of",
    "context_of",
    "device",
    "device_id_of",
    "get_and_head",
    "nonce_of",
    "publish_upload",
    "query_parameters",
    "require_tls",
    "send_newest_binary",
    "send_newest_manifest",
    "staff",
]

_F = TypeVar("_F", bound=Callable[..., Any])


class ErrorOut(BaseModel):
    """Every error answer (4xx and 5xx) has this body."""

    error: str = Field(description="what is wrong, naming the field")
    field: str | None = Field(description="the parameter, header or part at fault, if any")


#: OpenAPI schemas of names and ids (validation itself is formats.names; ECMA-262 patterns)
NAME_SCHEMA: dict[str, Any] = {
    "type": "string",
    "minLength": 1,
    "maxLength": MAX_NAME_LENGTH,
    "pattern": r"^[A-Za-z0-9](?:[A-Za-z0-9_-]|\.(?!\.))*$",
}
ID_SCHEMA: dict[str, Any] = {"type": "integer", "minimum": 1, "maximum": MAX_SEQ}
NONCE_SCHEMA: dict[str, Any] = {"type": "string", "pattern": "^[0-9a-f]{32,64}$"}


def query_parameters(*specs: tuple[str, bool, str, dict[str, Any]]) -> dict[str, Any]:
    """OpenAPI text for query parameters that a handler reads itself (declaring them as
    FastAPI parameters costs a validation pass on every poll, and words errors differently)."""
    return {
        "parameters": [
            {
                "name": name,
                "in": "query",
                "required": required,
                "description": description,
                "schema": schema,
            }
            for name, required, description, schema in specs
        ]
    }


#: documented for every route of the seed-compatible and versioned routers
ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    code: {"model": ErrorOut, "description": text}
    for code, text in {
        400: "a required parameter is missing, or the body is malformed",
        401: "credentials missing or wrong (WWW-Authenticate)",
        403: "insufficient role, a token for another device type, or credentials without TLS",
        404: "unknown device type, release or route",
        408: "the upload body did not arrive in time",
        409: "this (device type, id) exists with different content",
        413: "a file or the body exceeds its limit",
        415: "the body is not multipart/form-data",
        416: "the Range lies outside the image (Content-Range: bytes */LEN)",
        422: "a parameter or the image header is invalid",
        429: "too many failed sign-ins (Retry-After)",
        503: "database or storage unavailable (Retry-After)",
    }.items()
}


def context_of(request: Request) -> ServerContext:
    context = getattr(request.app.state, "context", None)
    if not isinstance(context, ServerContext):
        raise Unavailable("server is starting")
    return context


def client_of(request: Request) -> str:
    return request.client.host if request.client else "unknown"


def require_tls(request: Request, context: ServerContext) -> None:
    if request.url.scheme != "https" and not context.settings.allow_insecure_http:
        raise Forbidden("credentials are only accepted over TLS (https)")


async def staff(request: Request, *, admin: bool = False, read_only: bool = False) -> Principal:
    """The uploader or admin (or, for ``read_only`` requests, viewer) making this request
    (401/403/429 otherwise)."""
    context = context_of(request)
    require_tls(request, context)
    return await context.auth.staff(
        request.headers.get("authorization"), client_of(request), admin=admin, read_only=read_only
    )


async def device(request: Request, context: ServerContext, device_type: str) -> Principal | None:
    """Check a device's token when the server is configured to need one."""
    if context.auth.device_mode == "open":
        return None
    require_tls(request, context)
    return await context.auth.device(
        request.headers.get("authorization"), client_of(request), device_type
    )


def device_id_of(request: Request, principal: Principal | None) -> str | None:
    """The polling device's id: its per-device token's name, else the ``deviceId`` query
    parameter (a per-device token cannot poll as another device)."""
    claimed = request.query_params.get(DEVICE_ID)
    if claimed is not None:
        check_name(DEVICE_ID, claimed)
    if principal is not None and principal.per_device:
        if claimed is not None and claimed != principal.name:
            raise Forbidden(f"the device token {principal.name!r} cannot poll as {claimed!r}")
        return principal.name
    return claimed


async def publish_upload(request: Request, *, device_type: str | None = None) -> Published:
    """Publish the upload this request carries (``device_type``: the one the path names).

    Credentials and query-string fields are checked before any byte of the body is stored;
    a request refused then has a little of its body read, so the client sees the answer."""
    context = context_of(request)
    try:
        principal = await staff(request)
        precheck(request.query_params, path_type=device_type)
    except FotaError as exc:
        raise await refuse_upload(request, exc) from None
    new = await read_upload(
        request,
        context.store,
        path_type=device_type,
        max_upload_size=context.settings.max_upload_size,
        max_manifest_size=context.settings.max_manifest_size,
        timeout=context.settings.upload_timeout,
    )
    hold = request.query_params.get(HOLD, "").lower() in ("1", "true", "yes")
    return await context.releases.publish(new, principal, hold=hold)


def nonce_of(request: Request) -> str | None:
    return check_nonce(request.query_params.get(NONCE))


async def _newest(context: ServerContext, device_type: str, device_id: str | None) -> NewestEntry:
    """The newest release for this device: a rollout's, when its current stage holds the
    device, else the newest release that is not held."""
    entry = await context.rollouts.offer(device_type, device_id)
    if entry is None:
        entry = await context.cache.newest(device_type)
    if entry is None:
        raise NotFoundError(f"device type {device_type!r} has no release")
    return entry


async def send_newest_manifest(request: Request, device_type: str) -> Response:
    """The manifest of ``device_type``'s newest release (a checked name), with a freshness
    statement answering ``newest`` when the request carries a nonce; a 404 when it has none,
    with a statement answering ``none`` (docs/formats.md §7). Only these polls sign."""
    context = context_of(request)
    nonce = nonce_of(request)
    principal = await device(request, context, device_type)
    # a rollout offers its release to the devices of its current stage only
    entry = await context.rollouts.offer(device_type, device_id_of(request, principal))
    if entry is None:
        entry = await context.cache.newest(device_type)
    # the statement names the id the poll sent (checked by device_id_of), so that nobody can
    # strip or change it on the way and have the device accept the answer for another device
    sent_id = request.query_params.get(DEVICE_ID)
    if entry is None:
        headers = {}
        if nonce is not None and context.freshness is not None:
            headers[FRESHNESS_HEADER] = context.freshness.sign_none(
                device_type=device_type, nonce=nonce, device_id=sent_id
            )
        context.metrics.errors.labels("NotFoundError", "404").inc()
        return error_response(404, f"device type {device_type!r} has no release", None, headers)
    return send_manifest(
        request,
        context,
        release=entry.release,
        manifest=entry.manifest,
        nonce=nonce,
        device_id=sent_id,
    )


async def send_newest_binary(request: Request, device_type: str) -> Response:
    """The encrypted image of ``device_type``'s newest release (a checked name)."""
    context = context_of(request)
    principal = await device(request, context, device_type)
    entry = await _newest(context, device_type, device_id_of(request, principal))
    return await send_binary(request, context, entry.release)


def get_and_head(router: APIRouter, path: str, **options: Any) -> Callable[[_F], _F]:
    """Register an endpoint for GET (documented) and HEAD (same handler, not in OpenAPI)."""

    def register(function: _F) -> _F:
        router.add_api_route(path, function, methods=["GET"], **options)
        router.add_api_route(
            path,
            function,
            methods=["HEAD"],
            include_in_schema=False,
            response_class=options.get("response_class", Response),
        )
        return function

    return register
