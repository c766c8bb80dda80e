"""uvicorn's HTTP/1.1 protocol (httptools) with a deadline and size bounds for the request
head, and its writes coalesced.

uvicorn closes a connection that sits idle after a response (``timeout_keep_alive``), but
not one that never completes its request line and headers: a client that opens connections
and trickles header bytes (slowloris) keeps each of them, with its TLS state and file
descriptor, for as long as it likes. Here every request head must be complete within
``request_head_timeout`` seconds of the connection opening (after the TLS handshake, which
asyncio bounds itself) or of the previous response; otherwise the connection is closed.

Nor does it bound a head's size: httptools joins a header line piece by piece however long it
grows, so one connection sending a 64 MiB header within the deadline cost the server 110 MiB
and stalled every other client for seconds. Here each head passes a
:class:`~secure_fota.server.head_limits.HeadScanner` before the parser sees it: a request line
over 8 KiB answers 414, a header line over 8 KiB, more than 100 headers or a head over 64 KiB
answers 431, and the connection is closed.

uvicorn writes a response's status line and headers, then its body, as two transport
writes; over TLS each is its own TLS record and ``send`` system call, and a device poll is
nothing but those two small writes. :class:`CoalescingTransport` holds what is written during
one turn of the event loop and hands it to the TLS transport as one write at the end of that
turn (or before the connection is closed), so a small response costs one record and one
system call. Nothing waits longer than the current turn of the loop.
"""

from __future__ import annotations

import asyncio
import os
from typing import Any, Final

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from secure_fota.server.head_limits import HeadScanner, HeadTooLarge, head_error_response

__all__ = ["COALESCE_LIMIT", "HEAD_TIMEOUT_ENV", "CoalescingTransport", "HeadTimeoutProtocol"]

#: how `fota server run` hands the setting to its worker processes
HEAD_TIMEOUT_ENV: Final = "FOTA_REQUEST_HEAD_TIMEOUT"
_DEFAULT: Final = 10.0
#: seconds a refused connection has to take its answer before it is cut off
_REFUSED_LINGER: Final = 1.0
#: bytes held back at most before a write goes on to the TLS transport (one TLS record)
COALESCE_LIMIT: Final = 16 * 1024


def _head_timeout() -> float:
    try:
        value = float(os.environ.get(HEAD_TIMEOUT_ENV, _DEFAULT))
    except ValueError:
        return _DEFAULT
    return value if value > 0 else _DEFAULT


class CoalescingTransport:
    """A transport whose writes within one turn of the event loop reach the wrapped transport
    as one write; everything else is the wrapped transport's."""

    __slots__ = ("_loop", "_pending", "_pending_size", "_transport")

    def __init__(self, transport: asyncio.Transport, loop: asyncio.AbstractEventLoop) -> None:
        self._transport = transport
        self._loop = loop
        self._pending: list[bytes] = []
        self._pending_size = 0

    def write(self, data: bytes | bytearray | memoryview) -> None:
        if not data:
            return
        if not self._pending:
            self._loop.call_soon(self.flush)
        self._pending.append(bytes(data))
        self._pending_size += len(data)
        if self._pending_size >= COALESCE_LIMIT:
            # a large body goes on at once, so that the transport's flow control (which makes
            # uvicorn wait before the next chunk) sees it; only small writes wait for the turn
            self.flush()

    def flush(self) -> None:
        if self._pending:
            data = self._pending[0] if len(self._pending) == 1 else b"".join(self._pending)
            self._pending.clear()
            self._pending_size = 0
            if not self._transport.is_closing():
                self._transport.write(data)

    def close(self) -> None:
        self.flush()
        self._transport.close()

    def abort(self) -> None:
        self._pending.clear()
        self._transport.abort()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._transport, name)


class HeadTimeoutProtocol(HttpToolsProtocol):
    """Closes connections whose request head does not arrive in time or is too large;
    coalesces writes."""

    _head_deadline: asyncio.TimerHandle | None = None
    _scanner: HeadScanner
    _in_head = True  # the bytes that arrive next belong to a request head
    _message_done = False  # the parser finished a request during the current feed
    _body_bytes = 0  # body bytes the parser delivered during the current feed

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self.transport = CoalescingTransport(transport, self.loop)  # type: ignore[assignment]
        self._scanner = HeadScanner()
        self._arm_head_deadline()

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel_head_deadline()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        try:
            self._receive(data)
        except HeadTooLarge as error:
            self._refuse(error)

    def _receive(self, data: bytes) -> None:
        pos, end = 0, len(data)
        while pos < end and not self.transport.is_closing():
            if self._in_head:
                head_end = self._scanner.scan(data, pos)
                if head_end < 0:
                    self._feed(data, pos, end)
                    return
                self._in_head = False
                self._feed(data, pos, head_end)
                pos = head_end
                if self._message_done:  # a request without a body: the next head follows
                    self._start_head(0)
                continue
            self._feed(data, pos, end)
            if self._message_done:
                # the request's body ended within data[pos:]; what followed it (a pipelined
                # request's head, rarely) reached the parser unscanned: counted, not parsed
                self._start_head(max(0, end - pos - self._body_bytes))
            return

    def _feed(self, data: bytes, start: int, stop: int) -> None:
        self._message_done = False
        self._body_bytes = 0
        super().data_received(data if start == 0 and stop == len(data) else data[start:stop])

    def _start_head(self, already: int) -> None:
        self._in_head = True
        self._scanner.restart(already)

    def _refuse(self, error: HeadTooLarge) -> None:
        self._cancel_head_deadline()
        if not self.transport.is_closing():
            self.logger.info("request head refused: %s", error.message)
            self.transport.write(head_error_response(error))
            # no more reading, and no TLS close: while it waits for the client's close_notify,
            # a TLS close goes on reading (and decrypting) whatever the client still sends.
            # The answer goes out now; the connection is cut once the client had time to
            # read it.
            self.transport.pause_reading()
            self.loop.call_later(_REFUSED_LINGER, self.transport.abort)

    def on_body(self, body: bytes) -> None:
        self._body_bytes += len(body)
        super().on_body(body)

    def on_message_complete(self) -> None:
        self._message_done = True
        super().on_message_complete()

    def on_headers_complete(self) -> None:
        self._cancel_head_deadline()
        super().on_headers_complete()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        if not self.transport.is_closing():
            self._arm_head_deadline()  # the next request on this connection, if any

    def _arm_head_deadline(self) -> None:
        self._cancel_head_deadline()
        self._head_deadline = self.loop.call_later(_head_timeout(), self._head_too_slow)

    def _cancel_head_deadline(self) -> None:
        if self._head_deadline is not None:
            self._head_deadline.cancel()
            self._head_deadline = None

    def _head_too_slow(self) -> None:
        self._head_deadline = None
        if not self.transport.is_closing():
            self.transport.close()
