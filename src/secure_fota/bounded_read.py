"""Reading a small file whole, never more than a bound, with the caller's error types.

Key files, keystores, the server's configuration file, a release's manifest, a device's
cached manifest and the local blob store's manifests are all read here: one ``read`` of at
most ``limit + 1`` bytes, so that a file that is too large is noticed without reading it all.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from secure_fota.errors import FotaError, NotFoundError

__all__ = ["read_bounded"]


def read_bounded(
    path: Path,
    limit: int,
    *,
    what: str,
    error: Callable[[str], FotaError] = FotaError,
    missing: Callable[[str], FotaError] = NotFoundError,
    truncate: bool = False,
    show_path: bool = True,
) -> bytes:
    """The bytes of the file ``path``, at most ``limit`` of them.

    A missing file raises ``missing("PATH: WHAT not found")``, an unreadable one
    ``error("PATH: cannot read WHAT (REASON)")``, a larger one
    ``error("PATH: larger than LIMIT bytes, not a WHAT")``. With ``truncate`` a larger file
    yields its first ``limit + 1`` bytes instead, for a parser that refuses it with a reason
    of its own. ``show_path=False`` leaves the path out of the messages (for answers that
    must not reveal where a server keeps its files).
    """
    prefix = f"{path}: " if show_path else ""
    try:
        with path.open("rb") as handle:
            data = handle.read(limit + 1)
    except FileNotFoundError:
        raise missing(f"{prefix}{what} not found") from None
    except OSError as exc:
        raise error(f"{prefix}cannot read {what} ({exc.strerror})") from None
    if len(data) > limit and not truncate:
        raise error(f"{prefix}larger than {limit} bytes, not a {what}")
    return data
