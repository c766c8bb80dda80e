"""The versioned API, ``/api/v1``: device types, releases, downloads by id, upload, yank,
unyank, delete. Listing and changing need an uploader or admin; downloads follow the device
authentication setting, like the seed's endpoints."""

from __future__ import annotations

import dataclasses
import datetime
from typing import Annotated, Any, Final

from fastapi import APIRouter, Path, Request
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, Field

from secure_fota.errors import InputError, NotFoundError
from secure_fota.formats.names import check_name, check_seq
from secure_fota.limits import MAX_NAME_LENGTH
from secure_fota.server.cache import load_manifest
from secure_fota.server.db.records import ReleaseInfo
from secure_fota.server.delivery import send_binary, send_manifest
from secure_fota.server.routes.common import (
    ERROR_RESPONSES,
    ID_SCHEMA,
    NAME_SCHEMA,
    NONCE_SCHEMA,
    context_of,
    device,
    get_and_head,
    publish_upload,
    query_parameters,
    send_newest_binary,
    send_newest_manifest,
    staff,
)
from secure_fota.server.routes.seed_compat import UPLOAD_BODY
from secure_fota.wire import (
    API_V1,
    DEVICE_TYPE,
    DEVICE_TYPE_PATH,
    DEVICE_TYPES,
    ID,
    NONCE,
    RELEASE,
    RELEASE_BINARY,
    RELEASE_MANIFEST,
    RELEASE_UNYANK,
    RELEASE_YANK,
    RELEASES,
    TYPE_NEWEST_BINARY,
    TYPE_NEWEST_MANIFEST,
)

__all__ = ["router"]

router = APIRouter(prefix=API_V1, tags=["api-v1"], responses=ERROR_RESPONSES)

# documented precisely, validated by formats.names (so that errors name "deviceType" / "id")
TypePath = Annotated[
    str,
    Path(description="device type", max_length=4 * MAX_NAME_LENGTH, json_schema_extra=NAME_SCHEMA),
]
IdPath = Annotated[str, Path(description="release id", json_schema_extra=ID_SCHEMA)]
_ARTIFACT: Final[dict[int | str, dict[str, Any]]] = {
    200: {"content": {"application/octet-stream": {}}, "description": "the bytes"},
    206: {"description": "a range of the bytes (binaries)"},
    304: {"description": "If-None-Match matched"},
}

_NONCE: Final = query_parameters(
    (NONCE, False, "asks for an X-Fota-Freshness statement bound to it", NONCE_SCHEMA)
)


class DeviceTypeOut(BaseModel):
    device_type: str
    newest: int | None = Field(description="id of the newest non-yanked release, if any")
    releases: int = Field(description="number of releases, yanked ones included")


class ReleaseOut(BaseModel):
    device_type: str
    id: int
    fw_name: str
    manifest_size: int
    binary_size: int
    manifest_sha256: str
    binary_sha256: str
    uploaded_at: datetime.datetime
    uploader: str
    yanked: bool
    held: bool = Field(False, description="reaches devices only through a rollout")

    @classmethod
    def of(cls, release: ReleaseInfo) -> ReleaseOut:
        """The API's view of a release (``seq`` is the seed's ``id``)."""
        fields = dataclasses.asdict(release)
        return cls(id=fields.pop("seq"), **fields)


class UploadOut(BaseModel):
    created: bool = Field(description="false when this was an identical re-upload")
    release: ReleaseOut


def _type(value: str) -> str:
    return check_name(DEVICE_TYPE, value)


def _id(value: str) -> int:
    return check_seq(ID, value)


@router.get(DEVICE_TYPES, response_model=list[DeviceTypeOut])
async def device_types(request: Request) -> list[DeviceTypeOut]:
    await staff(request, read_only=True)
    summaries = await context_of(request).repository.device_types()
    return [
        DeviceTypeOut(device_type=s.device_type, newest=s.newest, releases=s.releases)
        for s in summaries
    ]


@router.get(
    DEVICE_TYPE_PATH,
    response_model=DeviceTypeOut,
    responses={404: {"description": "the server has never stored a release of this type"}},
)
async def device_type(request: Request, device_type: TypePath) -> DeviceTypeOut:
    """One device type (what `fota author upload` asks before the first upload of a type)."""
    name = _type(device_type)
    await staff(request, read_only=True)
    summary = await context_of(request).repository.device_type(name)
    if summary is None:
        raise NotFoundError(f"device type {name!r} has no releases")
    return DeviceTypeOut(
        device_type=summary.device_type, newest=summary.newest, releases=summary.releases
    )


@router.get(RELEASES, response_model=list[ReleaseOut])
async def releases(request: Request, device_type: TypePath) -> list[ReleaseOut]:
    name = _type(device_type)
    await staff(request, read_only=True)
    return [ReleaseOut.of(r) for r in await context_of(request).releases.releases(name)]


@router.get(RELEASE, response_model=ReleaseOut)
async def release(request: Request, device_type: TypePath, release_id: IdPath) -> ReleaseOut:
    name, seq = _type(device_type), _id(release_id)
    await staff(request, read_only=True)
    return ReleaseOut.of(await context_of(request).releases.release(name, seq))


async def _visible(request: Request, device_type: str, release_id: str) -> ReleaseInfo:
    context = context_of(request)
    name, seq = _type(device_type), _id(release_id)
    await device(request, context, name)
    found = await context.release_cache.release(name, seq)
    if found is None:
        raise NotFoundError(f"device type {name!r} has no release {seq}")
    if found.yanked:
        raise NotFoundError(f"release {seq} of device type {name!r} is yanked")
    return found


@get_and_head(
    router,
    RELEASE_MANIFEST,
    response_class=Response,
    responses=_ARTIFACT,
)
async def release_manifest(
    request: Request,
    device_type: TypePath,
    release_id: IdPath,
) -> Response:
    if request.query_params.get(NONCE) is not None:
        # a statement here would vouch for an old manifest to whoever asks: a mirror could
        # pair it with a device's nonce (docs/formats.md §7); only the newest polls sign
        raise InputError(NONCE, "is only accepted by the newest-manifest polls")
    found = await _visible(request, device_type, release_id)
    context = context_of(request)
    manifest = await load_manifest(
        context.store, found, max_size=context.settings.max_manifest_size
    )
    return send_manifest(request, context, release=found, manifest=manifest, nonce=None)


@get_and_head(
    router,
    RELEASE_BINARY,
    response_class=Response,
    responses=_ARTIFACT,
)
async def release_binary(request: Request, device_type: TypePath, release_id: IdPath) -> Response:
    found = await _visible(request, device_type, release_id)
    return await send_binary(request, context_of(request), found)


@get_and_head(
    router,
    TYPE_NEWEST_MANIFEST,
    response_class=Response,
    responses=_ARTIFACT,
    openapi_extra=_NONCE,
)
async def newest_manifest(request: Request, device_type: TypePath) -> Response:
    return await send_newest_manifest(request, _type(device_type))


@get_and_head(
    router,
    TYPE_NEWEST_BINARY,
    response_class=Response,
    responses=_ARTIFACT,
)
async def newest_binary(request: Request, device_type: TypePath) -> Response:
    return await send_newest_binary(request, _type(device_type))


@router.post(
    RELEASES,
    response_model=UploadOut,
    status_code=201,
    openapi_extra=UPLOAD_BODY,
    responses={
        200: {"model": UploadOut, "description": "identical re-upload (idempotent retry)"},
    },
)
async def upload(request: Request, device_type: TypePath) -> JSONResponse:
    published = await publish_upload(request, device_type=_type(device_type))
    body = UploadOut(created=published.created, release=ReleaseOut.of(published.release))
    return JSONResponse(body.model_dump(mode="json"), status_code=201 if published.created else 200)


@router.post(
    RELEASE_YANK,
    response_model=ReleaseOut,
)
async def yank(request: Request, device_type: TypePath, release_id: IdPath) -> ReleaseOut:
    name, seq = _type(device_type), _id(release_id)
    principal = await staff(request, admin=True)
    return ReleaseOut.of(
        await context_of(request).releases.set_yanked(name, seq, True, actor=principal.name)
    )


@router.post(
    RELEASE_UNYANK,
    response_model=ReleaseOut,
)
async def unyank(request: Request, device_type: TypePath, release_id: IdPath) -> ReleaseOut:
    name, seq = _type(device_type), _id(release_id)
    principal = await staff(request, admin=True)
    return ReleaseOut.of(
        await context_of(request).releases.set_yanked(name, seq, False, actor=principal.name)
    )


@router.delete(
    RELEASE,
    status_code=204,
    response_class=Response,
)
async def delete(request: Request, device_type: TypePath, release_id: IdPath) -> Response:
    name, seq = _type(device_type), _id(release_id)
    principal = await staff(request, admin=True)
    await context_of(request).releases.delete(name, seq, actor=principal.name)
    return Response(status_code=204)
