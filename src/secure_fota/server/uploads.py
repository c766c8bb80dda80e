"""Reading an upload request into a :class:`~secure_fota.server.db.records.NewRelease`: the
seed's multipart contract, streamed into the blob store.

Parts: ``manifestFile`` and ``firmwareFile`` (files), ``id``, ``deviceType``, ``fwName``
(fields; like Spring's ``@RequestParam`` they may also come in the query string). Query-string
fields are checked before any byte of the body is read (:func:`precheck`); both files are then
durably stored (content-addressed) before anything else happens; a request that fails later
leaves only unreferenced blobs, which garbage collection removes.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from typing import Final

from starlette.requests import Request

from secure_fota.errors import FormatError, FotaError, InputError, MissingParameter, required
from secure_fota.formats.encrypted_image import HEADER_SIZE, EncryptedImageHeader
from secure_fota.formats.names import check_name, check_seq
from secure_fota.server.db.records import NewRelease
from secure_fota.server.errors import BadRequest, PayloadTooLarge, RequestTimeout
from secure_fota.server.multipart import MultipartReader, boundary_of
from secure_fota.server.storage.base import BlobInfo, BlobStore, BlobTooLarge
from secure_fota.wire import DEVICE_TYPE, FIRMWARE_FILE, FW_NAME, ID, MANIFEST_FILE, UPLOAD_FIELDS

__all__ = ["precheck", "read_upload", "refuse_upload"]

_MAX_FIELD: Final = 256
#: room for part headers and the small fields around the two files
_OVERHEAD: Final = 64 * 1024
#: how much of an oversized or refused body we read and discard so the client sees our answer
_DRAIN_FACTOR: Final = 4


def _device_type(given: str | None, path_type: str | None) -> str | None:
    """The upload's device type: the one given (a valid name, and the path's when the route
    names one), else the path's."""
    if given is None:
        return path_type
    check_name(DEVICE_TYPE, given)
    if path_type is not None and given != path_type:
        raise InputError(DEVICE_TYPE, "differs from the device type in the path")
    return given


def precheck(query: Mapping[str, str], *, path_type: str | None = None) -> None:
    """Refuse malformed query-string fields before any byte of the body is stored (the body's
    own fields are checked once it has arrived)."""
    _device_type(query.get(DEVICE_TYPE), path_type)
    if ID in query:
        check_seq(ID, query[ID])
    if FW_NAME in query:
        check_name(FW_NAME, query[FW_NAME])


@dataclass(slots=True)
class _UploadForm:
    fields: dict[str, str] = field(default_factory=dict)
    manifest: BlobInfo | None = None
    firmware: BlobInfo | None = None

    def value(self, name: str, query: Mapping[str, str]) -> str | None:
        """A field from the body, else from the query string; both and different is an error."""
        body = self.fields.get(name)
        in_query = query.get(name)
        if body is not None and in_query is not None and body != in_query:
            raise InputError(name, "given in the query string and the body with different values")
        return body if body is not None else in_query

    def release(self, query: Mapping[str, str], path_type: str | None) -> NewRelease:
        """The upload these parts and ``query`` describe, every field required and checked."""
        if self.manifest is None:
            raise MissingParameter(MANIFEST_FILE)
        if self.firmware is None:
            raise MissingParameter(FIRMWARE_FILE)
        device_type = _device_type(self.value(DEVICE_TYPE, query), path_type)
        return NewRelease(
            device_type=required(DEVICE_TYPE, device_type),
            seq=check_seq(ID, required(ID, self.value(ID, query))),
            fw_name=check_name(FW_NAME, required(FW_NAME, self.value(FW_NAME, query))),
            manifest_sha256=self.manifest.sha256,
            manifest_size=self.manifest.size,
            binary_sha256=self.firmware.sha256,
            binary_size=self.firmware.size,
        )


async def _checked_firmware(chunks: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
    """Pass the chunks through; check the esp_encrypted_img header once 512 bytes are in, and
    that the file is exactly ``512 + bin_size`` bytes long at the end."""
    head = bytearray()
    header: EncryptedImageHeader | None = None
    total = 0
    async for chunk in chunks:
        total += len(chunk)
        if header is None:
            head += chunk[: HEADER_SIZE - len(head)]
            if len(head) >= HEADER_SIZE:
                header = _parse_header(bytes(head))
        yield chunk
    if header is None:
        header = _parse_header(bytes(head))
    if header.total_size != total:
        raise InputError(
            FIRMWARE_FILE,
            f"is {total} bytes but its encrypted image header announces "
            f"{header.total_size} (512 + bin_size {header.bin_size})",
        )


def _parse_header(data: bytes) -> EncryptedImageHeader:
    try:
        return EncryptedImageHeader.from_bytes(data)
    except FormatError as exc:
        raise InputError(FIRMWARE_FILE, f"is not an esp_encrypted_img file: {exc.detail}") from None


#: an upload refused before its body was read (credentials, query) is read this far, so that
#: a well-behaved client sees the answer instead of a reset connection
_REFUSAL_DRAIN: Final = 1024 * 1024


async def refuse_upload(request: Request, error: FotaError) -> FotaError:
    """Read (and discard) a little of a refused upload's body, then hand back ``error``."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) <= _REFUSAL_DRAIN:
        received = 0
        try:
            async for chunk in request.stream():
                received += len(chunk)
                if received > _REFUSAL_DRAIN:
                    break
        except Exception:  # noqa: BLE001,S110 -- the client went away: nothing to drain
            pass
    return error


async def read_upload(
    request: Request,
    store: BlobStore,
    *,
    path_type: str | None = None,
    max_upload_size: int,
    max_manifest_size: int,
    timeout: float,
) -> NewRelease:
    """Stream an upload's files into ``store`` and collect its fields (within ``timeout``
    seconds: a client that trickles its body does not hold a worker's resources forever);
    ``path_type`` is the device type the route's path names, if any."""
    boundary = boundary_of(request.headers.get("content-type"))
    max_body = max_upload_size + max_manifest_size + _OVERHEAD
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > max_body:
        raise PayloadTooLarge("body", f"request body is larger than {max_body} bytes")
    reader = MultipartReader(request.stream(), boundary, max_body=max_body)
    form = _UploadForm()
    try:
        async with asyncio.timeout(timeout):
            await _read_parts(reader, store, form, max_upload_size, max_manifest_size)
    except TimeoutError:
        raise RequestTimeout(f"the upload did not arrive within {timeout:g} s") from None
    except FotaError:
        await reader.drain(_DRAIN_FACTOR * max_body)
        raise
    return form.release(request.query_params, path_type)


async def _store(
    store: BlobStore, chunks: AsyncIterator[bytes], max_size: int, field: str
) -> BlobInfo:
    """``store.put``, its 413 naming the form ``field`` that was too large."""
    try:
        return await store.put(chunks, max_size=max_size)
    except BlobTooLarge as exc:
        raise PayloadTooLarge(field, exc.message) from None


async def _read_parts(
    reader: MultipartReader,
    store: BlobStore,
    form: _UploadForm,
    max_upload_size: int,
    max_manifest_size: int,
) -> None:
    while (part := await reader.next_part()) is not None:
        if part.name == MANIFEST_FILE:
            if form.manifest is not None:
                raise BadRequest(MANIFEST_FILE, "is given twice")
            form.manifest = await _store(store, part.chunks(), max_manifest_size, MANIFEST_FILE)
            if form.manifest.size == 0:
                raise InputError(MANIFEST_FILE, "is empty")
        elif part.name == FIRMWARE_FILE:
            if form.firmware is not None:
                raise BadRequest(FIRMWARE_FILE, "is given twice")
            form.firmware = await _store(
                store, _checked_firmware(part.chunks()), max_upload_size, FIRMWARE_FILE
            )
        elif part.name in UPLOAD_FIELDS and part.filename is None:
            if part.name in form.fields:
                raise BadRequest(part.name, "is given twice")
            form.fields[part.name] = await part.text(_MAX_FIELD)
        # anything else is skipped, like Spring ignores unknown parameters
