"""uvicorn's HTTP/1.1 protocol (httptools) with a deadline for the request head.

uvicorn closes a connection that sits idle after a response (``timeout_keep_alive``), but
not one that never completes its request line and headers: a client that opens connections
and trickles header bytes (slowloris) keeps each of them, with its TLS state and file
descriptor, for as long as it likes. Here every request head must be complete within
``request_head_timeout`` seconds of the connection opening (after the TLS handshake, which
asyncio bounds itself) or of the previous response; otherwise the connection is closed.
"""

from __future__ import annotations

import asyncio
import os
from typing import Final

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

__all__ = ["HEAD_TIMEOUT_ENV", "HeadTimeoutProtocol"]

#: how `fota server run` hands the setting to its worker processes
HEAD_TIMEOUT_ENV: Final = "FOTA_REQUEST_HEAD_TIMEOUT"
_DEFAULT: Final = 10.0


def _head_timeout() -> float:
    try:
        value = float(os.environ.get(HEAD_TIMEOUT_ENV, _DEFAULT))
    except ValueError:
        return _DEFAULT
    return value if value > 0 else _DEFAULT


class HeadTimeoutProtocol(HttpToolsProtocol):
    """Closes connections whose request head does not arrive in time."""

    _head_deadline: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
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
