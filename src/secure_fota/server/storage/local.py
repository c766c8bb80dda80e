"""Blobs as files under ``<data_dir>/blobs``: ``sha256/<2 hex>/<64 hex>``, written by
spooling into ``blobs/staging`` (same filesystem), fsync, rename, fsync of the directory."""

from __future__ import annotations

import functools
import os
import time
from collections.abc import AsyncIterable, AsyncIterator
from pathlib import Path
from typing import BinaryIO, Final

import anyio

from secure_fota.atomic_file import fsync_directory, private_directory
from secure_fota.bounded_read import read_bounded
from secure_fota.errors import StorageError
from secure_fota.server.errors import Unavailable
from secure_fota.server.storage.base import (
    SHA256_HEX,
    BlobInfo,
    BlobMissing,
    check_digest,
    read_in_chunks,
)
from secure_fota.server.storage.spool import clean_spool_dir, spool

__all__ = ["LocalBlobStore"]

_OBJECTS: Final = "sha256"
_STAGING: Final = "staging"


class LocalBlobStore:
    """A :class:`~secure_fota.server.storage.base.BlobStore` on the local filesystem."""

    kind = "local"

    def __init__(self, root: Path, *, staging_max_age: float = 86400) -> None:
        self.root = root.resolve()
        self._objects = self.root / _OBJECTS
        self._staging = self.root / _STAGING
        self._staging_max_age = staging_max_age

    def path_of(self, sha256: str) -> Path:
        check_digest(sha256)
        return self._objects / sha256[:2] / sha256

    async def start(self) -> None:
        try:
            private_directory(self._objects)
            private_directory(self._staging)
        except OSError as exc:
            raise StorageError(f"cannot create {self.root} ({exc.strerror})") from None
        clean_spool_dir(self._staging, max_age=self._staging_max_age)

    async def close(self) -> None:
        return None

    async def put(self, chunks: AsyncIterable[bytes], *, max_size: int) -> BlobInfo:
        spooled = await spool(chunks, self._staging, max_size=max_size)
        target = self.path_of(spooled.sha256)
        try:
            await anyio.to_thread.run_sync(_install, spooled.path, target)
        except OSError as exc:
            spooled.path.unlink(missing_ok=True)
            raise StorageError(f"cannot store a blob ({exc.strerror})") from None
        return BlobInfo(spooled.sha256, spooled.size)

    async def read(self, sha256: str, *, max_size: int) -> bytes:
        path = self.path_of(sha256)
        data = await anyio.to_thread.run_sync(
            functools.partial(
                read_bounded,
                path,
                max_size,
                what="a blob",
                error=StorageError,
                missing=lambda _: BlobMissing(sha256),
                truncate=True,
                show_path=False,  # the path is the server's business, not a client's
            )
        )
        if len(data) > max_size:
            raise StorageError(f"blob {sha256[:16]}... is larger than {max_size} bytes")
        return data

    async def open(self, sha256: str, start: int, length: int) -> AsyncIterator[bytes]:
        path = self.path_of(sha256)
        try:
            handle = await anyio.to_thread.run_sync(_open_at, path, start)
        except FileNotFoundError:
            raise BlobMissing(sha256) from None
        except OSError as exc:
            raise StorageError(f"cannot read a blob ({exc.strerror})") from None
        return read_in_chunks(handle.read, handle.close, sha256, length)

    async def exists(self, sha256: str) -> bool:
        return self.path_of(sha256).is_file()

    async def delete(self, sha256: str) -> None:
        path = self.path_of(sha256)
        try:
            path.unlink(missing_ok=True)
        except OSError as exc:
            raise StorageError(f"cannot delete a blob ({exc.strerror})") from None

    async def list_blobs(self) -> AsyncIterator[tuple[str, float]]:
        entries = await anyio.to_thread.run_sync(self._scan)
        for item in entries:
            yield item

    def _scan(self) -> list[tuple[str, float]]:
        found: list[tuple[str, float]] = []
        for directory in sorted(self._objects.glob("??")):
            for entry in directory.iterdir():
                if not SHA256_HEX.fullmatch(entry.name):
                    continue  # foreign files are skipped, never removed
                try:
                    found.append((entry.name, entry.stat().st_mtime))
                except OSError:
                    continue
        return found

    async def presigned_url(self, sha256: str, *, expires: int) -> str | None:  # noqa: ARG002
        return None

    async def check(self) -> None:
        probe = self._staging / f".readyz.{os.getpid()}"
        try:
            await anyio.to_thread.run_sync(_probe, probe)
        except OSError as exc:
            raise Unavailable(f"blob directory is not writable ({exc.strerror})") from None


def _install(temp: Path, target: Path) -> None:
    private_directory(target.parent)
    if target.exists():
        # identical content (same digest): keep the old file, mark it recently used for GC
        temp.unlink(missing_ok=True)
        now = time.time()
        os.utime(target, (now, now))
        return
    temp.replace(target)
    fsync_directory(target.parent)


def _open_at(path: Path, start: int) -> BinaryIO:
    handle = path.open("rb")
    try:
        handle.seek(start)
    except BaseException:
        handle.close()
        raise
    return handle


def _probe(path: Path) -> None:
    path.write_bytes(b"ok")
    path.unlink()
