"""Spool a stream into a temporary file while hashing it and enforcing a size limit.

Temporary names are ``<host>.<pid>.<random>.part``: unique, so a retry never collides with
the leftover of a crashed upload, and attributable, so start-up removes exactly the leftovers
of processes that are gone (or that are older than a day), never a live upload of a sibling
worker.
"""

from __future__ import annotations

import hashlib
import os
import secrets
import socket
import time
from collections.abc import AsyncIterable
from dataclasses import dataclass
from pathlib import Path
from typing import Final

import anyio

from secure_fota.errors import StorageError
from secure_fota.server.storage.base import BlobTooLarge

__all__ = ["SPOOL_SUFFIX", "Spooled", "clean_spool_dir", "spool"]

SPOOL_SUFFIX: Final = ".part"
_HOST: Final = socket.gethostname().replace(".", "_")[:64] or "host"


@dataclass(frozen=True, slots=True)
class Spooled:
    path: Path
    sha256: str
    size: int


def _spool_name() -> str:
    return f"{_HOST}.{os.getpid()}.{secrets.token_hex(8)}{SPOOL_SUFFIX}"


def _fsync_and_close(fd: int) -> None:
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


async def spool(chunks: AsyncIterable[bytes], directory: Path, *, max_size: int) -> Spooled:
    """Write ``chunks`` to a new file in ``directory``, fsync it, return its digest and size.

    The file is removed if anything fails (including the source raising). A file system that
    refuses the bytes (full, over quota, read-only, file too large) is a :class:`StorageError`
    (503), never an internal error."""
    path = directory / _spool_name()
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except OSError as exc:
        raise StorageError(f"cannot store an upload ({exc.strerror})") from None
    closed = False
    try:
        digest = hashlib.sha256()
        size = 0
        async for chunk in chunks:
            size += len(chunk)
            if size > max_size:
                raise BlobTooLarge(max_size)  # noqa: TRY301 -- the cleanup below must run
            digest.update(chunk)
            view = memoryview(chunk)
            while view:
                written = os.write(fd, view)
                view = view[written:]
        closed = True
        await anyio.to_thread.run_sync(_fsync_and_close, fd)
    except BaseException as exc:
        if not closed:
            os.close(fd)
        path.unlink(missing_ok=True)
        if isinstance(exc, OSError):
            raise StorageError(f"cannot store an upload ({exc.strerror})") from None
        raise
    return Spooled(path=path, sha256=digest.hexdigest(), size=size)


def _pid_alive(pid: int) -> bool:
    """Whether process ``pid`` runs. A zombie does not: a worker killed with its main process
    (``kill -9`` of the service) stays one until init reaps it, and its upload is over."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True  # no /proc (not Linux), or it just went: judged by the signal above
    state = stat.rpartition(")")[2].split()[:1]  # the name in parentheses may hold spaces
    return state not in (["Z"], ["X"])


def clean_spool_dir(directory: Path, *, max_age: float) -> int:
    """Remove leftovers of crashed uploads from ``directory``; return how many."""
    removed = 0
    now = time.time()
    try:
        entries = list(directory.iterdir())
    except FileNotFoundError:
        return 0
    for entry in entries:
        if not entry.name.endswith(SPOOL_SUFFIX):
            continue
        parts = entry.name.split(".")
        stale = False
        try:
            stale = now - entry.stat().st_mtime > max_age
        except FileNotFoundError:
            continue
        if len(parts) == 4 and parts[0] == _HOST and parts[1].isdigit():
            stale = stale or not _pid_alive(int(parts[1]))
        if stale:
            entry.unlink(missing_ok=True)
            removed += 1
    return removed
