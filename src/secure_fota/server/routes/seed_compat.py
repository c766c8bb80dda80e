"""The seed's three endpoints, with the seed's parameter names and answers, minus its bugs:
404 (not 500) for a device type without releases, uniqueness per (deviceType, id), no
user text in any path, files stored before the release becomes visible."""

from __future__ import annotations

from typing import Any, Final

from fastapi import APIRouter, Request
from fastapi.responses import PlainTextResponse, Response

from secure_fota.errors import NotFoundError
from secure_fota.formats.names import check_name
from secure_fota.server.delivery import send_binary, send_manifest
from secure_fota.server.errors import required
from secure_fota.server.routes.common import (
    ERROR_RESPONSES,
    ID_SCHEMA,
    NAME_SCHEMA,
    NONCE_SCHEMA,
    context_of,
    device,
    get_and_head,
    nonce_of,
    publish_upload,
    query_parameters,
)
from secure_fota.wire import (
    DEVICE_TYPE,
    FIRMWARE_FILE,
    FW_NAME,
    ID,
    MANIFEST_FILE,
    NEWEST_BINARY,
    NEWEST_MANIFEST,
    NONCE,
    UPLOAD,
)

__all__ = ["UPLOAD_BODY", "router"]

router = APIRouter(tags=["seed-compatible"], responses=ERROR_RESPONSES)

_DEVICE_TYPE_DOC: Final = "device type (1-64 of A-Z a-z 0-9 . _ -)"
_NONCE_DOC: Final = "32-64 lowercase hex digits; asks for an X-Fota-Freshness statement"
_BINARY: Final[dict[int | str, dict[str, Any]]] = {
    200: {"content": {"application/octet-stream": {}}, "description": "the bytes"},
    304: {"description": "If-None-Match matched"},
}

#: OpenAPI description of the multipart upload body (parsed by our streaming reader)
UPLOAD_BODY: Final[dict[str, Any]] = {
    "requestBody": {
        "required": True,
        "content": {
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "required": [MANIFEST_FILE, FIRMWARE_FILE],
                    "properties": {
                        MANIFEST_FILE: {"type": "string", "format": "binary"},
                        FIRMWARE_FILE: {"type": "string", "format": "binary"},
                        ID: ID_SCHEMA,
                        DEVICE_TYPE: NAME_SCHEMA,
                        FW_NAME: NAME_SCHEMA,
                    },
                }
            }
        },
    }
}


def _no_release(device_type: str) -> NotFoundError:
    return NotFoundError(f"device type {device_type!r} has no release")


@get_and_head(
    router,
    NEWEST_MANIFEST,
    response_class=Response,
    responses=_BINARY,
    summary="Newest manifest of a device type (seed contract)",
    openapi_extra=query_parameters(
        (DEVICE_TYPE, True, _DEVICE_TYPE_DOC, NAME_SCHEMA),
        (NONCE, False, _NONCE_DOC, NONCE_SCHEMA),
    ),
)
async def newest_manifest(request: Request) -> Response:
    context = context_of(request)
    device_type = check_name(
        DEVICE_TYPE, required(DEVICE_TYPE, request.query_params.get(DEVICE_TYPE))
    )
    checked_nonce = nonce_of(request)
    await device(request, context, device_type)
    entry = await context.cache.newest(device_type)
    if entry is None:
        raise _no_release(device_type)
    return send_manifest(
        request,
        context,
        release=entry.release,
        manifest=entry.manifest,
        headers=entry.manifest_headers,
        nonce=checked_nonce,
    )


@get_and_head(
    router,
    NEWEST_BINARY,
    response_class=Response,
    responses={
        **_BINARY,
        206: {"description": "the requested range"},
    },
    summary="Newest encrypted image of a device type (seed contract)",
    openapi_extra=query_parameters((DEVICE_TYPE, True, _DEVICE_TYPE_DOC, NAME_SCHEMA)),
)
async def newest_binary(request: Request) -> Response:
    context = context_of(request)
    device_type = check_name(
        DEVICE_TYPE, required(DEVICE_TYPE, request.query_params.get(DEVICE_TYPE))
    )
    await device(request, context, device_type)
    entry = await context.cache.newest(device_type)
    if entry is None:
        raise _no_release(device_type)
    return await send_binary(request, context, entry.release)


@router.post(
    UPLOAD,
    openapi_extra={
        **UPLOAD_BODY,
        **query_parameters(
            (ID, False, "release id; or a form field", ID_SCHEMA),
            (DEVICE_TYPE, False, "device type; or a form field", NAME_SCHEMA),
            (FW_NAME, False, "firmware name; or a form field", NAME_SCHEMA),
        ),
    },
    responses={
        200: {
            "content": {"text/plain": {"example": "OK"}},
            "description": "stored (or identical retry)",
        },
    },
    summary="Upload a release (seed contract; uploader or admin)",
)
async def upload_file(request: Request) -> PlainTextResponse:
    await publish_upload(request)
    return PlainTextResponse("OK")
