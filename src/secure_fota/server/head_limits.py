"""Bounds on request heads, for every HTTP server option (issue 14, class 3).

A request line longer than :data:`~secure_fota.limits.MAX_REQUEST_LINE` answers 414; a header
line longer than :data:`~secure_fota.limits.MAX_HEADER_LINE`, more than
:data:`~secure_fota.limits.MAX_HEADERS` header lines, or a head larger than
:data:`~secure_fota.limits.MAX_REQUEST_HEAD` in all answers 431; the connection is closed.

* :class:`HeadScanner` counts a head's bytes and lines as they arrive, before the HTTP parser
  sees them (uvicorn's httptools parser has no bound of its own: one connection sending a
  64 MiB header within the head deadline cost the server 100+ MiB and seconds of CPU, since
  the header is joined piece by piece). :mod:`secure_fota.server.uvicorn_protocol` uses it.
* granian (hyper) bounds what it buffers of a head by its read buffer, which `fota server run`
  sets to :data:`~secure_fota.limits.MAX_REQUEST_HEAD`, and refuses more than 100 headers
  itself; :class:`HeadLimitsMiddleware` checks the bounds themselves (414/431) for it, on the
  parsed head, before the app runs.
"""

from __future__ import annotations

from typing import Final

from starlette.types import ASGIApp, Receive, Scope, Send

from secure_fota.limits import MAX_HEADER_LINE, MAX_HEADERS, MAX_REQUEST_HEAD, MAX_REQUEST_LINE

__all__ = ["HeadLimitsMiddleware", "HeadScanner", "HeadTooLarge", "head_error_response"]


class HeadTooLarge(Exception):
    """A request head over one of the bounds; ``status`` is 414 or 431."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def _too_long_line(first: bool, length: int) -> HeadTooLarge:
    if first:
        return HeadTooLarge(414, f"request line longer than {MAX_REQUEST_LINE} bytes ({length}+)")
    return HeadTooLarge(431, f"header line longer than {MAX_HEADER_LINE} bytes ({length}+)")


class HeadScanner:
    """Counts one request head as its bytes arrive: the request line, each header line, the
    number of header lines and the head in all. :meth:`scan` raises :class:`HeadTooLarge` as
    soon as a bound is passed (a line need not be complete to be too long)."""

    __slots__ = ("_cr", "_line", "_lines", "size")

    def __init__(self) -> None:
        self.size = 0
        self._line = 0  # bytes of the line being received
        self._cr = False  # whether they end in CR
        self._lines = 0  # complete lines of this head (the request line included)

    def restart(self, already: int = 0) -> None:
        """A new head begins; ``already`` bytes of it arrived unseen (counted, not parsed)."""
        self.size = already
        self._line = 0
        self._cr = False
        self._lines = 1 if already else 0
        if already > MAX_REQUEST_HEAD:
            raise HeadTooLarge(431, f"request head larger than {MAX_REQUEST_HEAD} bytes")

    def scan(self, data: bytes, start: int = 0) -> int:
        """Read ``data[start:]`` as the continuation of the head. Returns the offset just past
        the head's empty line, or -1 when the head goes on beyond ``data``."""
        end = len(data)
        pos = start
        while pos < end:
            newline = data.find(b"\n", pos)
            stop = end if newline < 0 else newline
            if stop > pos:
                self._cr = data[stop - 1] == 0x0D
            self._line += stop - pos
            length = self._line - self._cr  # without its line end
            first = self._lines == 0
            if length > (MAX_REQUEST_LINE if first else MAX_HEADER_LINE):
                raise _too_long_line(first, length)
            self.size += stop - pos + (newline >= 0)
            if self.size > MAX_REQUEST_HEAD:
                raise HeadTooLarge(431, f"request head larger than {MAX_REQUEST_HEAD} bytes")
            if newline < 0:
                return -1
            pos = newline + 1
            self._line = 0
            self._cr = False
            if length == 0:
                if first:
                    continue  # empty lines before a request line are ignored (RFC 9112 2.2)
                return pos
            self._lines += 1
            if self._lines - 1 > MAX_HEADERS:
                raise HeadTooLarge(431, f"more than {MAX_HEADERS} header lines")
        return -1


def head_error_response(error: HeadTooLarge) -> bytes:
    """The complete HTTP/1.1 answer to a head over a bound (the connection closes after it)."""
    reason = b"URI Too Long" if error.status == 414 else b"Request Header Fields Too Large"
    body = (
        b'{"error":"' + error.message.encode("ascii", "replace") + b'","field":null}'
    )  # the JSON error body of wire.error_body, without a JSON encoder in the data path
    return (
        b"HTTP/1.1 %d %s\r\ncontent-type: application/json\r\ncontent-length: %d\r\n"
        b"connection: close\r\n\r\n" % (error.status, reason, len(body))
    ) + body


#: bytes of ": " and CR LF around a header line's name and value
_LINE_OVERHEAD: Final = 4


class HeadLimitsMiddleware:
    """The bounds, for a server that only bounds what it buffers (granian): a request line
    longer than :data:`MAX_REQUEST_LINE` answers 414; a header line longer than
    :data:`MAX_HEADER_LINE`, more than :data:`MAX_HEADERS` headers or a head larger than
    :data:`MAX_REQUEST_HEAD` answers 431, before the app runs (sizes as sent, give or take
    the white space the parser dropped)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            error = _scope_error(scope)
            if error is not None:
                await _answer(send, error)
                return
        await self.app(scope, receive, send)


def _scope_error(scope: Scope) -> HeadTooLarge | None:
    target = len(scope.get("raw_path") or scope["path"].encode()) + len(scope["query_string"])
    # method, two spaces, "?" and "HTTP/1.1": a few bytes more than the target
    line = len(scope["method"]) + 2 + target + 1 + 8
    if line > MAX_REQUEST_LINE:
        return _too_long_line(True, line)
    headers = scope["headers"]
    if len(headers) > MAX_HEADERS:
        return HeadTooLarge(431, f"more than {MAX_HEADERS} header lines")
    total = line + 2 + 2  # its CR LF, and the empty line's
    for name, value in headers:
        length = len(name) + len(value) + _LINE_OVERHEAD - 2
        if length > MAX_HEADER_LINE:
            return _too_long_line(False, length)
        total += length + 2
    if total > MAX_REQUEST_HEAD:
        return HeadTooLarge(431, f"request head larger than {MAX_REQUEST_HEAD} bytes")
    return None


async def _answer(send: Send, error: HeadTooLarge) -> None:
    raw = head_error_response(error)
    body = raw.split(b"\r\n\r\n", 1)[1]
    await send(
        {
            "type": "http.response.start",
            "status": error.status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                (b"connection", b"close"),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})
