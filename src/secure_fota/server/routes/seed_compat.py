"""The seed's three endpoints, with the seed's parameter names and answers, minus its bugs:
404 (not 500) for a device type without releases, uniqueness per (deviceType, id), no
user text in any path, files stored before the release becomes visible."""

from __future__ import annotations

from typing import Any, Final

from fastapi import APIRouter, Request
from fastapi.responses import PlainTextResponse, Response

from secure_fota.errors import required
from secure_fota.formats.names import check_name
from secure_fota.server.routes.common import (
    ERROR_RESPONSES,
    ID_SCHEMA,
    NAME_SCHEMA,
    NONCE_SCHEMA,
    get_and_head,
    publish_upload,
    query_parameters,
    send_newest_binary,
    send_newest_manifest,
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


def _device_type(request: Request) -> str:
    return check_name(DEVICE_TYPE, required(DEVICE_TYPE, request.query_params.get(DEVICE_TYPE)))


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
    return await send_newest_manifest(request, _device_type(request))


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
    return await send_newest_binary(request, _device_type(request))


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
