"""The device's HTTPS client: bounded manifest polls and resumable downloads.

TLS is always verified against the device's CA (hostname included). Every response's status
and length are checked; bodies are read with a size limit and a deadline (slow retrieval: a
server that sends one byte just before each read timeout would otherwise hold the device for
days); httpx errors become :class:`TransportError` here and nowhere else.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Final

import httpx

from secure_fota.errors import ReleaseRejected, TransportError
from secure_fota.limits import MAX_MANIFEST_SIZE
from secure_fota.reasons import Reason
from secure_fota.tls_client import client_context
from secure_fota.wire import (
    FRESHNESS_HEADER,
    RELEASE_HEADER,
    newest_binary_url,
    newest_manifest_url,
    poll_query,
    release_binary_url,
)

__all__ = ["ManifestAnswer", "ServerClient"]

_CHUNK: Final = 16 * 1024
#: the slowest average rate a transfer may have (bytes/s) on top of one timeout of slack
MIN_RATE: Final = 1024


@dataclass(frozen=True, slots=True)
class ManifestAnswer:
    """A manifest poll: ``new`` (body given), ``unchanged`` (304) or ``none`` (404)."""

    status: str
    body: bytes | None = None
    etag: str | None = None
    freshness: str | None = None
    release_id: int | None = None


@contextlib.contextmanager
def _mapped(what: str) -> Iterator[None]:
    try:
        yield
    except httpx.TimeoutException:
        raise TransportError(f"{what}: timed out") from None
    except httpx.HTTPError as exc:
        raise TransportError(f"{what}: {exc}") from None


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
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout
        self.min_rate = min_rate
        verify = client_context(ca_file)
        self._client = httpx.Client(
            verify=verify, timeout=httpx.Timeout(timeout), transport=transport, http2=False
        )

    def close(self) -> None:
        self._client.close()

    def __enter__(self) -> ServerClient:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def newest_manifest(
        self, device_type: str, *, nonce: str | None, etag: str | None
    ) -> ManifestAnswer:
        headers = {"If-None-Match": f'"{etag}"'} if etag else {}
        url = newest_manifest_url(self.base_url)
        params = poll_query(device_type, nonce)
        with (
            _mapped("manifest poll"),
            self._client.stream("GET", url, params=params, headers=headers) as response,
        ):
            freshness = response.headers.get(FRESHNESS_HEADER)
            if response.status_code == 404:
                return ManifestAnswer(status="none")
            if response.status_code == 304:
                return ManifestAnswer(status="unchanged", etag=etag, freshness=freshness)
            if response.status_code != 200:
                raise TransportError(
                    f"manifest poll answered HTTP {response.status_code}",
                    status_code=response.status_code,
                )
            declared = response.headers.get("content-length")
            if declared is not None and int(declared) > MAX_MANIFEST_SIZE:
                raise ReleaseRejected(
                    Reason.MANIFEST_TOO_LARGE, f"server announces a {declared}-byte manifest"
                )
            body = bytearray()
            deadline = self._deadline(MAX_MANIFEST_SIZE)
            for chunk in response.iter_bytes():
                self._check_deadline(deadline, "manifest poll")
                body += chunk
                if len(body) > MAX_MANIFEST_SIZE:
                    raise ReleaseRejected(
                        Reason.MANIFEST_TOO_LARGE, "manifest is larger than 16 KiB"
                    )
            if declared is not None and int(declared) != len(body):
                raise TransportError("manifest poll: body length differs from Content-Length")
            release = response.headers.get(RELEASE_HEADER)
            return ManifestAnswer(
                status="new",
                body=bytes(body),
                etag=(response.headers.get("etag") or "").strip('"') or None,
                freshness=freshness,
                release_id=int(release) if release and release.isdigit() else None,
            )

    def _deadline(self, size: int) -> float:
        return time.monotonic() + self.timeout + size / self.min_rate

    @staticmethod
    def _check_deadline(deadline: float, what: str) -> None:
        if time.monotonic() > deadline:
            # like a cut connection: what arrived is kept and a download resumes next time
            raise TransportError(f"{what}: too slow, gave up (slow retrieval)")

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
            _mapped("download"),
            self._client.stream("GET", url, headers=headers) as response,
        ):
            if offset and response.status_code in (200, 416):
                raise _Restart
            if response.status_code not in (200, 206):
                raise TransportError(
                    f"download answered HTTP {response.status_code}",
                    status_code=response.status_code,
                )
            if response.status_code == 206:
                content_range = response.headers.get("content-range", "")
                if not content_range.startswith(f"bytes {offset}-"):
                    raise TransportError(f"download: unexpected Content-Range {content_range!r}")
            with dest.open("ab" if offset else "wb") as out:
                for chunk in response.iter_bytes(_CHUNK):
                    self._check_deadline(deadline, "download")
                    if offset + received + len(chunk) > expected_size:
                        raise ReleaseRejected(
                            Reason.IMAGE_SIZE_MISMATCH,
                            f"server sends more than the {expected_size} bytes announced",
                        )
                    if interrupt_after is not None and received + len(chunk) > interrupt_after:
                        out.write(chunk[: interrupt_after - received])
                        raise TransportError("download: connection lost (simulated)")
                    out.write(chunk)
                    received += len(chunk)


class _Restart(Exception):
    """The server will not resume: start the download again from byte 0."""
