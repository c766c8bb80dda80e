"""The ``BlobStore`` protocol: content-addressed, immutable blobs named by their SHA-256.

No user-supplied text ever reaches a blob's name: a blob is stored under the hex SHA-256 of
its bytes, computed while it streams in. ``put`` either stores the complete blob durably or
leaves nothing visible.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterable, AsyncIterator, Callable
from dataclasses import dataclass
from typing import Final, Protocol

import anyio

from secure_fota.errors import FotaError, StorageError
from secure_fota.limits import STREAM_CHUNK

__all__ = [
    "SHA256_HEX",
    "BlobInfo",
    "BlobMissing",
    "BlobStore",
    "BlobTooLarge",
    "check_digest",
    "read_in_chunks",
]

SHA256_HEX: Final = re.compile(r"[0-9a-f]{64}")


def check_digest(sha256: str) -> str:
    """Return ``sha256`` if it is 64 lowercase hex digits (a blob name), else raise.

    Blob names come from the server's own database, never from a client: anything else is
    a damaged (or tampered) row, a server-side error and not a client's (not 422)."""
    if not SHA256_HEX.fullmatch(sha256):
        raise StorageError("a release names a blob that is not a SHA-256 digest (damaged row)")
    return sha256


@dataclass(frozen=True, slots=True)
class BlobInfo:
    """What ``put`` stored: the blob's name (its SHA-256) and its size in bytes."""

    sha256: str
    size: int


class BlobStore(Protocol):
    """Where release files live. Every method raises :class:`StorageError` (or a subclass)
    on backend failures, and ``put`` raises what its source raises."""

    #: "local" or "s3", for logs and /readyz
    kind: str

    async def start(self) -> None:
        """Prepare the store (directories, client) and remove leftovers of crashed uploads."""

    async def close(self) -> None:
        """Release clients and threads."""

    async def put(self, chunks: AsyncIterable[bytes], *, max_size: int) -> BlobInfo:
        """Store the bytes of ``chunks`` while hashing them; at most ``max_size`` bytes or
        :class:`BlobTooLarge` (nothing stored)."""
        ...

    async def read(self, sha256: str, *, max_size: int) -> bytes:
        """The whole blob (for small blobs such as manifests)."""
        ...

    async def open(self, sha256: str, start: int, length: int) -> AsyncIterator[bytes]:
        """Open the blob (raising :class:`BlobMissing` now, before a response starts) and
        return an iterator over ``length`` bytes from offset ``start``, in chunks."""
        ...

    async def exists(self, sha256: str) -> bool: ...

    async def delete(self, sha256: str) -> None:
        """Remove a blob (no error if it is already gone)."""

    def list_blobs(self) -> AsyncIterator[tuple[str, float]]:
        """Every stored blob as ``(sha256, last modification as Unix time)``."""
        ...

    async def presigned_url(self, sha256: str, *, expires: int) -> str | None:
        """A URL a client can GET the blob from directly, or ``None`` if unsupported."""
        ...

    async def check(self) -> None:
        """Raise :class:`~secure_fota.server.errors.Unavailable` unless the store works."""


class BlobTooLarge(FotaError):
    """``put``'s source gave more than ``max_size`` bytes; nothing was stored. The caller says
    what was too large (an upload's form field, for example)."""

    def __init__(self, limit: int) -> None:
        super().__init__(f"is larger than the {limit}-byte limit")
        self.limit = limit


class BlobMissing(StorageError):
    """A database row names a blob that the store does not hold (an operator problem)."""

    def __init__(self, sha256: str) -> None:
        super().__init__(f"blob {sha256[:16]}... is missing from the store")
        self.sha256 = sha256


async def read_in_chunks(
    read: Callable[[int], bytes], close: Callable[[], object], sha256: str, length: int
) -> AsyncIterator[bytes]:
    """``length`` bytes of blob ``sha256`` from a blocking ``read(size)``, each piece (at most
    :data:`STREAM_CHUNK`) read in a worker thread; ``close()`` at the end. A source that ends
    early is a damaged blob."""
    try:
        remaining = length
        while remaining > 0:
            chunk = await anyio.to_thread.run_sync(read, min(STREAM_CHUNK, remaining))
            if not chunk:
                raise StorageError(f"blob {sha256[:16]}... is shorter than recorded")
            remaining -= len(chunk)
            yield chunk
    finally:
        close()
