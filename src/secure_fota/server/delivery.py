"""Serving manifests and images to devices: strong ETags (the SHA-256), ``If-None-Match``
→ 304, ``Range``/``If-Range`` → 206/416, ``Content-Length`` always, freshness statements.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Final

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response, StreamingResponse

from secure_fota.server.context import ServerContext
from secure_fota.server.db.records import ReleaseInfo
from secure_fota.server.http_errors import error_response
from secure_fota.server.ranges import Unsatisfiable, etag_matches, if_range_allows, parse_range
from secure_fota.wire import FRESHNESS_HEADER, RELEASE_HEADER

__all__ = [
    "MAX_MEMORY_BODY",
    "BinaryPart",
    "binary_answer",
    "manifest_answer",
    "manifest_headers",
    "memory_answer",
    "send_binary",
    "send_manifest",
]

_OCTETS = "application/octet-stream"
#: bytes per body message when an image is served from memory
MAX_MEMORY_BODY: Final = 256 * 1024


def manifest_headers(release: ReleaseInfo) -> dict[str, str]:
    """The headers of a 200 answer carrying ``release``'s manifest."""
    return {
        "content-type": _OCTETS,
        "content-length": str(release.manifest_size),
        "etag": f'"{release.manifest_sha256}"',
        "cache-control": "no-cache",
        RELEASE_HEADER: str(release.seq),
    }


def manifest_answer(
    context: ServerContext,
    *,
    method: str,
    if_none_match: str | None,
    release: ReleaseInfo,
    manifest: bytes,
    nonce: str | None,
    device_id: str | None = None,
) -> tuple[int, dict[str, str], bytes]:
    """Status, headers and body of a manifest answer (the route's and the poll fast path's);
    a freshness statement for ``nonce`` names ``device_id``, the id the poll sent."""
    headers = manifest_headers(release)
    etag = headers["etag"]
    extra: dict[str, str] = {}
    if nonce is not None and context.freshness is not None:  # only the newest polls pass one
        extra[FRESHNESS_HEADER] = context.freshness.sign(
            device_type=release.device_type,
            seq=release.seq,
            manifest_sha256=release.manifest_sha256,
            nonce=nonce,
            device_id=device_id,
        )
    if etag_matches(if_none_match, etag):
        context.metrics.not_modified_manifest.inc()
        return (
            304,
            {
                "etag": etag,
                "cache-control": "no-cache",
                RELEASE_HEADER: str(release.seq),
                **extra,
            },
            b"",
        )
    headers.update(extra)
    if method == "HEAD":
        return 200, headers, b""
    context.metrics.bytes_served_manifest.inc(len(manifest))
    return 200, headers, manifest


def send_manifest(
    request: Request,
    context: ServerContext,
    *,
    release: ReleaseInfo,
    manifest: bytes,
    nonce: str | None,
    device_id: str | None = None,
) -> Response:
    """``release``'s ``manifest`` (a freshness statement for ``nonce``, naming ``device_id``,
    when one is given)."""
    status, answer_headers, body = manifest_answer(
        context,
        method=request.method,
        if_none_match=request.headers.get("if-none-match"),
        release=release,
        manifest=manifest,
        nonce=nonce,
        device_id=device_id,
    )
    return Response(body, status_code=status, headers=answer_headers)


async def _counted(chunks: AsyncIterator[bytes], context: ServerContext) -> AsyncIterator[bytes]:
    counter = context.metrics.bytes_served_binary
    async for chunk in chunks:
        counter.inc(len(chunk))
        yield chunk


def _binary_headers(release: ReleaseInfo, cache_control: str) -> dict[str, str]:
    return {
        "etag": f'"{release.binary_sha256}"',
        "cache-control": cache_control,
        "accept-ranges": "bytes",
        RELEASE_HEADER: str(release.seq),
    }


@dataclass(frozen=True, slots=True)
class BinaryPart:
    """The bytes a binary answer must carry (status 200 or 206, headers ready)."""

    status: int
    headers: dict[str, str]
    start: int
    length: int


def binary_answer(
    context: ServerContext,
    release: ReleaseInfo,
    *,
    method: str,
    if_none_match: str | None,
    if_range: str | None,
    range_header: str | None,
) -> Response | BinaryPart:
    """The answer to a request for ``release``'s image that needs none of its bytes (304,
    416, HEAD), or the part of the image to send (the route's and the Range fast path's)."""
    base = _binary_headers(release, "no-cache")
    etag = base["etag"]
    size = release.binary_size
    if etag_matches(if_none_match, etag):
        context.metrics.not_modified_binary.inc()
        return Response(status_code=304, headers=base)
    byte_range = None
    if if_range_allows(if_range, etag):
        try:
            byte_range = parse_range(range_header, size)
        except Unsatisfiable:
            return error_response(
                416,
                f"Range is outside the {size}-byte image",
                "Range",
                {**base, "content-range": f"bytes */{size}"},
            )
    headers = {**base, "content-type": _OCTETS}
    if byte_range is None:
        start, length, status = 0, size, 200
    else:
        start, length, status = byte_range.start, byte_range.length, 206
        headers["content-range"] = byte_range.content_range(size)
    headers["content-length"] = str(length)
    if method == "HEAD":
        return Response(status_code=status, headers=headers)
    return BinaryPart(status, headers, start, length)


def memory_answer(context: ServerContext, part: BinaryPart, data: bytes) -> Response | None:
    """``part`` of the image ``data`` held in memory as one body message, or ``None`` when it
    is too long for one (it is then streamed in slices)."""
    if part.length > MAX_MEMORY_BODY:
        return None
    context.metrics.bytes_served_binary.inc(part.length)
    return Response(
        data[part.start : part.start + part.length], status_code=part.status, headers=part.headers
    )


async def send_binary(request: Request, context: ServerContext, release: ReleaseInfo) -> Response:
    if_none_match = request.headers.get("if-none-match")
    if context.settings.s3_presign_downloads and not etag_matches(
        if_none_match, f'"{release.binary_sha256}"'
    ):
        url = await context.store.presigned_url(
            release.binary_sha256, expires=context.settings.s3_presign_expiry
        )
        if url is not None:
            return RedirectResponse(
                url,
                status_code=302,
                headers=_binary_headers(release, "no-store"),
            )
    answer = binary_answer(
        context,
        release,
        method=request.method,
        if_none_match=if_none_match,
        if_range=request.headers.get("if-range"),
        range_header=request.headers.get("range"),
    )
    if isinstance(answer, Response):
        return answer
    cached = await context.blobs.get(release.binary_sha256, release.binary_size)
    if cached is None:
        chunks = await context.store.open(release.binary_sha256, answer.start, answer.length)
    else:
        response = memory_answer(context, answer, cached)
        if response is not None:
            return response
        chunks = _slices(cached, answer.start, answer.length)
    return StreamingResponse(
        _counted(chunks, context), status_code=answer.status, headers=answer.headers
    )


async def _slices(data: bytes, start: int, length: int) -> AsyncIterator[bytes]:
    """A cached image in bounded pieces: the server's send buffer, not the image, is what
    each connection holds while the client reads."""
    view = memoryview(data)
    end = start + length
    for offset in range(start, end, MAX_MEMORY_BODY):
        yield bytes(view[offset : min(end, offset + MAX_MEMORY_BODY)])
