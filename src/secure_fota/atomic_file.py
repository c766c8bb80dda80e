"""Atomic file creation: a temporary file in the target directory, fsync, then rename.

A reader sees either the old file, or no file, or the complete new one; a failure leaves
nothing behind.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import BinaryIO

__all__ = [
    "atomic_output",
    "commit_all",
    "create_private_file",
    "fsync_directory",
    "private_directory",
    "staged_output",
    "write_atomic",
]

#: mode of every directory and file the update server creates (readable by its user only)
PRIVATE_DIR_MODE = 0o700
PRIVATE_FILE_MODE = 0o600


def private_directory(path: Path) -> Path:
    """``path`` as a directory; each missing component is created 0700 (whatever the umask).
    Directories that exist already keep their mode."""
    missing: list[Path] = []
    current = path
    while not current.is_dir():
        missing.append(current)
        if current.parent == current:
            break
        current = current.parent
    for directory in reversed(missing):
        try:
            directory.mkdir(mode=PRIVATE_DIR_MODE)
        except FileExistsError:
            if not directory.is_dir():
                raise
            continue  # made by another process meanwhile
        directory.chmod(PRIVATE_DIR_MODE)
    return path


def create_private_file(path: Path) -> bool:
    """Create ``path`` empty with mode 0600 unless it exists; whether it was created."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, PRIVATE_FILE_MODE)
    except FileExistsError:
        return False
    os.fchmod(fd, PRIVATE_FILE_MODE)
    os.close(fd)
    return True


def fsync_directory(directory: Path) -> None:
    """Make a rename in ``directory`` durable (a no-op where directories cannot be opened)."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _create_temp(path: Path) -> tuple[int, Path]:
    """Create a new, empty, private ``.NAME.<random>.tmp`` beside ``path`` (as ``mkstemp``
    does, without importing ``tempfile``, whose imports cost the author tool ~8 ms)."""
    flags = os.O_RDWR | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0)
    for _ in range(100):
        temp = path.parent / f".{path.name}.{os.urandom(8).hex()}.tmp"
        try:
            return os.open(temp, flags, 0o600), temp
        except FileExistsError:
            continue
    raise FileExistsError(f"no free temporary name beside {path}")


@contextlib.contextmanager
def staged_output(path: Path, mode: int = 0o644) -> Iterator[tuple[BinaryIO, Path]]:
    """Yield ``(file, temp_path)`` for a file that will become ``path``; the caller renames.

    The temporary file is removed if the block raises. Use :func:`commit_all` to rename.
    """
    fd, temp = _create_temp(path)
    try:
        os.fchmod(fd, mode)
        with os.fdopen(fd, "w+b") as handle:
            yield handle, temp
            handle.flush()
            os.fsync(handle.fileno())
    except BaseException:
        temp.unlink(missing_ok=True)
        raise


def commit_all(pairs: Sequence[tuple[Path, Path]]) -> None:
    """Rename each ``(temp, final)`` pair; on failure undo the renames already made."""
    done: list[Path] = []
    try:
        for temp, final in pairs:
            temp.replace(final)
            done.append(final)
    except BaseException:
        for final in done:
            final.unlink(missing_ok=True)
        for temp, _ in pairs:
            temp.unlink(missing_ok=True)
        raise
    for directory in {final.parent for _, final in pairs}:
        fsync_directory(directory)


@contextlib.contextmanager
def atomic_output(path: Path, mode: int = 0o644) -> Iterator[BinaryIO]:
    """Yield a file object whose content replaces ``path`` atomically when the block ends."""
    with staged_output(path, mode) as (handle, temp):
        yield handle
    try:
        commit_all([(temp, path)])
    except BaseException:
        temp.unlink(missing_ok=True)
        raise


def write_atomic(path: Path, data: bytes, mode: int = 0o644) -> None:
    """Replace ``path`` with ``data`` atomically."""
    with atomic_output(path, mode) as handle:
        handle.write(data)
