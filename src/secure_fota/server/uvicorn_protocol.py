"""uvicorn's HTTP/1.1 protocol (httptools) with a deadline for the request head, and its
writes coalesced.

uvicorn closes a connection that sits idle after a response (``timeout_keep_alive``), but
not one that never completes its request line and headers: a client that opens connections
and trickles header bytes (slowloris) keeps each of them, with its TLS state and file
descriptor, for as long as it likes. Here every request head must be complete within
``request_head_timeout`` seconds of the connection opening (after the TLS handshake, which
asyncio bounds itself) or of the previous response; otherwise the connection is closed.

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

__all__ = ["COALESCE_LIMIT", "HEAD_TIMEOUT_ENV", "CoalescingTransport", "HeadTimeoutProtocol"]

#: how `fota server run` hands the setting to its worker processes
HEAD_TIMEOUT_ENV: Final = "FOTA_REQUEST_HEAD_TIMEOUT"
_DEFAULT: Final = 10.0
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
    """Closes connections whose request head does not arrive in time; coalesces writes."""

    _head_deadline: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self.transport = CoalescingTransport(transport, self.loop)  # type: ignore[assignment]
        self._arm_head_deadline()

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel_head_deadline()
        super().connection_lost(exc)

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
