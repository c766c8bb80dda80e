"""A pull-style streaming reader of ``multipart/form-data`` bodies.

Starlette's form parser spools whole files before the handler runs. This reader hands each
file part to the blob store chunk by chunk as it arrives, so that hashing, size limits and
header checks happen while the upload streams, and an oversized part is refused at once.
"""

from __future__ import annotations

from collections import deque
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Final

from python_multipart.exceptions import MultipartParseError
from python_multipart.multipart import MultipartParser, parse_options_header

from secure_fota.server.errors import BadRequest, PayloadTooLarge, UnsupportedMediaType

__all__ = ["MultipartReader", "Part", "boundary_of"]

_MAX_BOUNDARY: Final = 200
_MAX_HEADER_BYTES: Final = 4096


def boundary_of(content_type: str | None) -> bytes:
    """The boundary of a ``multipart/form-data`` content type, else 415 (or 400)."""
    media, options = parse_options_header(content_type or "")
    if media != b"multipart/form-data":
        shown = media.decode("latin-1")[:80] or "none"
        raise UnsupportedMediaType("Content-Type", f"must be multipart/form-data (got {shown})")
    boundary = options.get(b"boundary", b"")
    if not boundary or len(boundary) > _MAX_BOUNDARY:
        raise BadRequest("Content-Type", "multipart boundary is missing or too long")
    return boundary


@dataclass(slots=True)
class Part:
    name: str
    filename: str | None
    reader: MultipartReader

    def chunks(self) -> AsyncIterator[bytes]:
        return self.reader._part_chunks()

    async def text(self, limit: int) -> str:
        data = bytearray()
        async for chunk in self.chunks():
            data += chunk
            if len(data) > limit:
                raise PayloadTooLarge(self.name, f"is longer than {limit} bytes")
        try:
            return data.decode("utf-8")
        except UnicodeDecodeError:
            raise BadRequest(self.name, "is not UTF-8 text") from None


class MultipartReader:
    def __init__(
        self,
        stream: AsyncIterator[bytes],
        boundary: bytes,
        *,
        max_body: int,
        max_parts: int = 16,
    ) -> None:
        self._stream = stream
        self._max_body = max_body
        self._max_parts = max_parts
        self._received = 0
        self._parts = 0
        self._events: deque[tuple[str, bytes]] = deque()
        self._eof = False
        self._in_part = False
        self._finished = False
        self._parser = MultipartParser(
            boundary,
            {
                "on_part_begin": lambda: self._events.append(("begin", b"")),
                "on_part_data": lambda d, s, e: self._events.append(("data", d[s:e])),
                "on_part_end": lambda: self._events.append(("end", b"")),
                "on_header_field": lambda d, s, e: self._events.append(("hfield", d[s:e])),
                "on_header_value": lambda d, s, e: self._events.append(("hvalue", d[s:e])),
                "on_header_end": lambda: self._events.append(("hend", b"")),
                "on_headers_finished": lambda: self._events.append(("hdone", b"")),
                "on_end": lambda: self._events.append(("finish", b"")),
            },
            max_header_size=_MAX_HEADER_BYTES,
        )

    @property
    def received(self) -> int:
        return self._received

    async def _pull(self) -> None:
        """Feed the parser one more chunk of the body (or finish it)."""
        if self._eof:
            raise BadRequest("body", "multipart body ends before its closing boundary")
        try:
            chunk = await anext(self._stream)
        except StopAsyncIteration:
            self._eof = True
            try:
                self._parser.finalize()
            except MultipartParseError:
                raise BadRequest("body", "malformed multipart body") from None
            if not self._events:
                raise BadRequest(
                    "body", "multipart body ends before its closing boundary"
                ) from None
            return
        self._received += len(chunk)
        if self._received > self._max_body:
            raise PayloadTooLarge("body", f"request body is larger than {self._max_body} bytes")
        try:
            self._parser.write(chunk)
        except MultipartParseError:
            raise BadRequest("body", "malformed multipart body") from None

    async def _next_event(self) -> tuple[str, bytes]:
        while not self._events:
            await self._pull()
        return self._events.popleft()

    async def next_part(self) -> Part | None:
        """The next part with its headers read, or ``None`` after the closing boundary."""
        if self._in_part:  # the caller did not consume the previous part: skip it
            async for _ in self._part_chunks():
                pass
        if self._finished:
            return None
        headers: dict[str, str] = {}
        field = bytearray()
        value = bytearray()
        while True:
            kind, data = await self._next_event()
            if kind == "finish":
                self._finished = True
                return None
            if kind == "begin":
                self._parts += 1
                if self._parts > self._max_parts:
                    raise BadRequest("body", f"more than {self._max_parts} multipart parts")
            elif kind == "hfield":
                field += data
            elif kind == "hvalue":
                value += data
            elif kind == "hend":
                headers[field.decode("latin-1").strip().lower()] = value.decode("latin-1")
                field.clear()
                value.clear()
            elif kind == "hdone":
                break
        _, options = parse_options_header(headers.get("content-disposition", ""))
        name = options.get(b"name")
        if name is None:
            raise BadRequest("body", "a multipart part has no name")
        filename = options.get(b"filename")
        self._in_part = True
        return Part(
            name=name.decode("utf-8", "replace"),
            filename=None if filename is None else filename.decode("utf-8", "replace"),
            reader=self,
        )

    async def _part_chunks(self) -> AsyncIterator[bytes]:
        while self._in_part:
            kind, data = await self._next_event()
            if kind == "data":
                if data:
                    yield data
            elif kind == "end":
                self._in_part = False
            else:
                raise BadRequest("body", "malformed multipart body")

    async def drain(self, limit: int) -> bool:
        """Read and discard the rest of the body (so the client reads our answer); ``False``
        if more than ``limit`` bytes remain."""
        drained = 0
        if self._eof:
            return True
        try:
            async for chunk in self._stream:
                drained += len(chunk)
                if drained > limit:
                    return False
        except Exception:  # noqa: BLE001 -- the client went away; nothing left to drain
            return False
        self._eof = True
        return True
