"""The device's HTTPS client: bounded manifest polls and resumable downloads.

TLS is always verified against the device's CA (hostname included). Every response's status,
headers and length are checked; bodies are read with a size limit and a deadline (slow
retrieval: a server that sends one byte just before each read timeout would otherwise hold the
device for days). The device asks for ``Accept-Encoding: identity`` and refuses any
``Content-Encoding`` (``unsupported_encoding``): nothing is ever inflated, so the size bounds
hold for the bytes that arrive. Every way an answer can be unusable has a transport reason
(``connection_failed``, ``timeout``, ``unexpected_status``, ``bad_header``,
``unsupported_encoding``, ``redirect_refused``) on the :class:`TransportError` raised; httpx
errors become :class:`TransportError` here and nowhere else.
"""

from __future__ import annotations

import contextlib
import re
import ssl
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import httpcore
import httpx

from secure_fota.errors import ReleaseRejected, TransportError
from secure_fota.limits import MAX_MANIFEST_SIZE, MAX_REDIRECTS
from secure_fota.reasons import Reason
from secure_fota.tls_client import client_context, connect_failure
from secure_fota.wire import (
    FRESHNESS_HEADER,
    RELEASE_HEADER,
    REPORT_CONTENT_TYPE,
    device_auth_headers,
    newest_binary_url,
    newest_manifest_url,
    poll_query,
    release_binary_url,
    reports_url,
)

__all__ = ["ManifestAnswer", "ServerClient"]

_CHUNK: Final = 16 * 1024
#: the slowest average rate a transfer may have (bytes/s) on top of one timeout of slack
MIN_RATE: Final = 1024
_PAST_DEADLINE: Final = "the request's deadline has passed"
#: answers that name another URL for the same bytes
_REDIRECTS: Final = frozenset({301, 302, 303, 307, 308})
#: request headers that never follow a redirect to another origin
_CREDENTIALS: Final = ("authorization", "proxy-authorization", "cookie")

#: what every request asks for: the bytes as stored, never a compressed form
_REQUEST_HEADERS: Final = {"Accept-Encoding": "identity"}
#: a decimal number in a header (ASCII digits only: "\u0663" is a digit to str.isdigit)
_DECIMAL: Final = re.compile(r"[0-9]{1,19}")


class _Deadline:
    """The deadline (``time.monotonic()``) of the request in flight, if any: every connect,
    TLS handshake, write and read of its connection is bounded by what is left of it, so a
    server that drips its response head cannot hold the device past its budget (httpx only
    bounds each read)."""

    def __init__(self) -> None:
        self.at: float | None = None

    def left(self, timeout: float | None) -> float | None:
        if self.at is None:
            return timeout
        left = self.at - time.monotonic()
        if left <= 0:
            raise httpcore.ReadTimeout(_PAST_DEADLINE)
        return left if timeout is None else min(timeout, left)


class _DeadlineStream(httpcore.NetworkStream):
    def __init__(self, inner: httpcore.NetworkStream, deadline: _Deadline) -> None:
        self._inner = inner
        self._deadline = deadline

    def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        try:
            return self._inner.read(max_bytes, self._deadline.left(timeout))
        except httpcore.ReadTimeout:
            self._deadline.left(None)  # the deadline, not the read timeout, cut it: say so
            raise

    def write(self, buffer: bytes, timeout: float | None = None) -> None:
        self._inner.write(buffer, self._deadline.left(timeout))

    def close(self) -> None:
        self._inner.close()

    def start_tls(
        self,
        ssl_context: ssl.SSLContext,
        server_hostname: str | None = None,
        timeout: float | None = None,
    ) -> httpcore.NetworkStream:
        inner = self._inner.start_tls(ssl_context, server_hostname, self._deadline.left(timeout))
        return _DeadlineStream(inner, self._deadline)

    def get_extra_info(self, info: str) -> Any:
        return self._inner.get_extra_info(info)


class _DeadlineBackend(httpcore.NetworkBackend):
    def __init__(self, deadline: _Deadline) -> None:
        self._inner = httpcore.SyncBackend()
        self._deadline = deadline

    def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.NetworkStream:
        stream = self._inner.connect_tcp(
            host, port, self._deadline.left(timeout), local_address, socket_options
        )
        return _DeadlineStream(stream, self._deadline)

    def connect_unix_socket(
        self, path: str, timeout: float | None = None, socket_options: Iterable[Any] | None = None
    ) -> httpcore.NetworkStream:
        stream = self._inner.connect_unix_socket(path, self._deadline.left(timeout), socket_options)
        return _DeadlineStream(stream, self._deadline)

    def sleep(self, seconds: float) -> None:
        self._inner.sleep(seconds)


def _deadline_transport(context: ssl.SSLContext, deadline: _Deadline) -> httpx.HTTPTransport:
    """httpx's transport over a connection pool whose sockets obey ``deadline``."""
    transport = httpx.HTTPTransport(verify=context, http2=False, retries=0)
    # httpx takes no network backend: its pool is replaced (httpx 0.2x keeps it in _pool)
    transport._pool = httpcore.ConnectionPool(
        ssl_context=context, http1=True, http2=False, network_backend=_DeadlineBackend(deadline)
    )
    return transport


@dataclass(frozen=True, slots=True)
class ManifestAnswer:
    """A manifest poll: ``new`` (body given), ``unchanged`` (304) or ``none`` (404)."""

    status: str
    body: bytes | None = None
    etag: str | None = None
    freshness: str | None = None
    release_id: int | None = None


@contextlib.contextmanager
def _mapped(what: str, server: str) -> Iterator[None]:
    try:
        yield
    except httpx.TimeoutException as exc:
        if str(exc) == _PAST_DEADLINE:
            raise TransportError(
                f"{what}: too slow, gave up (slow retrieval: {_PAST_DEADLINE})",
                reason=Reason.TIMEOUT,
            ) from None
        raise TransportError(f"{what}: {server} timed out", reason=Reason.TIMEOUT) from None
    except httpx.ConnectError as exc:
        raise TransportError(
            f"{what}: {connect_failure(exc, server, server_option='the --server it was given')}",
            reason=Reason.CONNECTION_FAILED,
        ) from None
    except httpx.RemoteProtocolError as exc:
        text = str(exc)
        cut = "closed" in text or "disconnected" in text
        reason = Reason.CONNECTION_FAILED if cut else Reason.BAD_HEADER
        raise TransportError(f"{what}: {text}", reason=reason) from None
    except httpx.HTTPError as exc:
        raise TransportError(f"{what}: {exc}", reason=Reason.CONNECTION_FAILED) from None
    except (UnicodeError, ValueError) as exc:  # a header httpx could not read
        raise TransportError(
            f"{what}: unreadable answer ({exc})", reason=Reason.BAD_HEADER
        ) from None


def _decimal(response: httpx.Response, name: str, what: str) -> int | None:
    """The header ``name`` as a decimal number, ``None`` when absent; ``bad_header`` else."""
    values = response.headers.get_list(name)
    if not values:
        return None
    if len(values) > 1 or not _DECIMAL.fullmatch(values[0].strip()):
        raise TransportError(f"{what}: malformed {name} header", reason=Reason.BAD_HEADER)
    return int(values[0])


def _identity(response: httpx.Response, what: str) -> None:
    """Refuse any content coding: the device asked for identity and inflates nothing."""
    codings = [c.strip().lower() for v in response.headers.get_list("content-encoding")
               for c in v.split(",")]  # fmt: skip
    if any(c not in ("", "identity") for c in codings):
        raise TransportError(
            f"{what}: the server sent a {', '.join(codings)} body (asked for identity)",
            reason=Reason.UNSUPPORTED_ENCODING,
        )


def _unexpected(response: httpx.Response, what: str) -> TransportError:
    return TransportError(
        f"{what} answered HTTP {response.status_code}",
        status_code=response.status_code,
        reason=Reason.UNEXPECTED_STATUS,
    )


class ServerClient:
    """Talks to one update server over HTTPS."""

    def __init__(
        self,
        base_url: str,
        *,
        ca_file: Path | None,
        timeout: float = 10.0,
        transport: httpx.BaseTransport | None = None,
        min_rate: float = MIN_RATE,
        token: str | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout
        self.min_rate = min_rate
        verify = client_context(ca_file)
        self._in_flight = _Deadline()
        if transport is None:
            transport = _deadline_transport(verify, self._in_flight)
        self._client = httpx.Client(
            verify=verify,
            timeout=httpx.Timeout(timeout),
            transport=transport,
            http2=False,
            headers={**_REQUEST_HEADERS, **device_auth_headers(token)},
        )

    def close(self) -> None:
        self._client.close()

    def __enter__(self) -> ServerClient:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def send_report(self, token: str) -> int:
        """POST one signed report; return the HTTP status (2xx delivered, 409 a counter the
        server has seen); TransportError when it could not be delivered (kept for later)."""
        with _mapped("report", self.base_url):
            response = self._client.post(
                reports_url(self.base_url),
                content=token.encode("ascii"),
                headers={"content-type": REPORT_CONTENT_TYPE},
            )
        if response.status_code >= 500 or response.status_code in (401, 429):
            raise TransportError(
                f"report answered HTTP {response.status_code}", status_code=response.status_code
            )
        return response.status_code

    def newest_manifest(
        self,
        device_type: str,
        *,
        nonce: str | None,
        etag: str | None,
        device_id: str | None = None,
    ) -> ManifestAnswer:
        """Poll the newest manifest: ``new`` (200, body read), ``unchanged`` (304, only when
        ``etag`` was sent) or ``none`` (404); anything else is a :class:`TransportError`."""
        headers = {"If-None-Match": f'"{etag}"'} if etag else {}
        url = newest_manifest_url(self.base_url)
        params = poll_query(device_type, nonce, device_id)
        what = "manifest poll"
        deadline = self._deadline(MAX_MANIFEST_SIZE)
        with (
            _mapped(what, self.base_url),
            self._bounded(deadline),
            self._get(url, params=params, headers=headers, what=what) as response,
        ):
            freshness = response.headers.get(FRESHNESS_HEADER)
            if response.status_code == 404:
                return ManifestAnswer(status="none", freshness=freshness)
            if response.status_code == 304:
                if etag is None:  # nothing was asked that "not modified" could answer
                    raise _unexpected(response, what)
                return ManifestAnswer(status="unchanged", etag=etag, freshness=freshness)
            if response.status_code != 200:
                raise _unexpected(response, what)
            _identity(response, what)
            declared = _decimal(response, "content-length", what)
            release = _decimal(response, RELEASE_HEADER, what)
            if declared is not None and declared > MAX_MANIFEST_SIZE:
                raise ReleaseRejected(
                    Reason.MANIFEST_TOO_LARGE, f"server announces a {declared}-byte manifest"
                )
            body = bytearray()
            for chunk in response.iter_raw():
                self._check_deadline(deadline, what)
                body += chunk
                if len(body) > MAX_MANIFEST_SIZE:
                    raise ReleaseRejected(
                        Reason.MANIFEST_TOO_LARGE, "manifest is larger than 16 KiB"
                    )
            self._check_deadline(deadline, what)
            if declared is not None and declared != len(body):
                raise TransportError(
                    f"{what}: body length differs from Content-Length",
                    reason=Reason.CONNECTION_FAILED,
                )
            return ManifestAnswer(
                status="new",
                body=bytes(body),
                etag=(response.headers.get("etag") or "").strip('"') or None,
                freshness=freshness,
                release_id=release,
            )

    @contextlib.contextmanager
    def _get(
        self,
        url: str,
        *,
        params: dict[str, str] | None,
        headers: dict[str, str],
        what: str,
    ) -> Iterator[httpx.Response]:
        """GET ``url``, following at most :data:`MAX_REDIRECTS` redirects from HTTPS to HTTPS
        (a presigned S3 download, a CDN): never to plain HTTP, never to a URL with
        credentials, and never with the device's ``Authorization`` (or cookies) to another
        origin. Whatever the server redirects to is still verified end to end (the digests and
        signatures judge the bytes, not where they came from)."""
        request = self._client.build_request("GET", url, params=params, headers=headers)
        origin = request.url.scheme, request.url.host, request.url.port
        left_origin = False
        for hop in range(MAX_REDIRECTS + 1):
            response = self._client.send(request, stream=True, follow_redirects=False)
            if response.status_code not in _REDIRECTS:
                try:
                    yield response
                finally:
                    response.close()
                return
            location = response.headers.get("location")
            response.close()
            if hop == MAX_REDIRECTS:
                raise TransportError(
                    f"{what}: more than {MAX_REDIRECTS} redirects", reason=Reason.REDIRECT_REFUSED
                )
            if not location:
                raise TransportError(
                    f"{what}: HTTP {response.status_code} without Location",
                    reason=Reason.BAD_HEADER,
                )
            try:
                target = request.url.join(location)
            except httpx.InvalidURL:
                raise TransportError(
                    f"{what}: unreadable redirect Location", reason=Reason.BAD_HEADER
                ) from None
            if request.url.scheme != "https" or target.scheme != "https" or target.userinfo:
                raise TransportError(
                    f"{what}: refusing a redirect from {request.url.scheme} to "
                    f"{target.copy_with(userinfo=None, query=None)} (HTTPS to HTTPS only, "
                    "no credentials in the URL)",
                    reason=Reason.REDIRECT_REFUSED,
                )
            nxt = self._client.build_request("GET", target, headers=headers)
            left_origin = left_origin or (target.scheme, target.host, target.port) != origin
            if left_origin:  # the device's token stays with its own server
                for name in _CREDENTIALS:
                    nxt.headers.pop(name, None)
            request = nxt
        raise AssertionError("unreachable")  # pragma: no cover

    @contextlib.contextmanager
    def _bounded(self, deadline: float) -> Iterator[None]:
        """Every socket operation of the request inside is bounded by ``deadline``: the
        connection, the TLS handshake, the response head and the body (a server dripping its
        head once held a poll 76 s against an 18 s budget)."""
        self._in_flight.at = deadline
        try:
            yield
        finally:
            self._in_flight.at = None

    def _deadline(self, size: int) -> float:
        """Started before the request: one timeout plus ``size`` at the minimum rate."""
        return time.monotonic() + self.timeout + size / self.min_rate

    @staticmethod
    def _check_deadline(deadline: float, what: str) -> None:
        if time.monotonic() > deadline:
            # like a cut connection: what arrived is kept and a download resumes next time
            raise TransportError(
                f"{what}: too slow, gave up (slow retrieval)", reason=Reason.TIMEOUT
            )

    def binary_url(self, device_type: str, seq: int) -> str:
        """The image of release ``seq`` by id (what a device downloads)."""
        return release_binary_url(self.base_url, device_type, seq)

    def newest_binary_url(self, device_type: str) -> str:
        """The seed's "newest image" (for servers that have no by-id URL)."""
        return newest_binary_url(self.base_url, device_type)

    def download(
        self,
        url: str,
        dest: Path,
        *,
        expected_size: int,
        etag: str,
        interrupt_after: int | None = None,
    ) -> int:
        """Download ``url`` into ``dest``, resuming from what ``dest`` already holds.

        Returns the offset the transfer resumed from. More than ``expected_size`` bytes is
        refused as they arrive (endless data). A server that will not resume (200 instead of
        206, or 416) restarts the download from byte 0. ``interrupt_after`` drops the
        connection after that many new bytes (a simulated link failure for tests and the demo).
        """
        offset = dest.stat().st_size if dest.exists() else 0
        if offset > expected_size:
            dest.unlink()
            offset = 0
        if offset == expected_size:
            return offset
        try:
            self._transfer(url, dest, offset, expected_size, etag, interrupt_after)
        except _Restart:
            dest.unlink(missing_ok=True)
            self._transfer(url, dest, 0, expected_size, etag, interrupt_after)
            return 0
        return offset

    def _transfer(
        self,
        url: str,
        dest: Path,
        offset: int,
        expected_size: int,
        etag: str,
        interrupt_after: int | None,
    ) -> None:
        headers = {"Range": f"bytes={offset}-", "If-Range": f'"{etag}"'} if offset else {}
        received = 0
        deadline = self._deadline(expected_size - offset)
        with (
            _mapped("download", self.base_url),
            self._bounded(deadline),
            self._get(url, params=None, headers=headers, what="download") as response,
        ):
            if offset and response.status_code in (200, 416):
                raise _Restart
            if response.status_code not in (200, 206):
                raise _unexpected(response, "download")
            _identity(response, "download")
            if response.status_code == 206:
                content_range = response.headers.get("content-range", "")
                if not content_range.startswith(f"bytes {offset}-"):
                    raise TransportError(
                        f"download: unexpected Content-Range {content_range!r}",
                        reason=Reason.BAD_HEADER,
                    )
            with dest.open("ab" if offset else "wb") as out:
                for chunk in response.iter_raw(_CHUNK):
                    self._check_deadline(deadline, "download")
                    if offset + received + len(chunk) > expected_size:
                        raise ReleaseRejected(
                            Reason.IMAGE_SIZE_MISMATCH,
                            f"server sends more than the {expected_size} bytes announced",
                        )
                    if interrupt_after is not None and received + len(chunk) > interrupt_after:
                        out.write(chunk[: interrupt_after - received])
                        raise TransportError(
                            "download: connection lost (simulated)",
                            reason=Reason.CONNECTION_FAILED,
                        )
                    out.write(chunk)
                    received += len(chunk)


class _Restart(Exception):
    """The server will not resume: start the download again from byte 0."""
