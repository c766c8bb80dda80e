"""Release files that are kept only once the server has taken the release.

``fota author publish`` and ``fota author serve`` build a release and upload it in one step.
They build into a private folder inside the output folder and move the files into the output
folder only after the upload succeeded: a refused upload (a 409 for a different release under
the same number, a typo in the device type, a server that cannot be reached) leaves the local
files of the release the server does hold exactly as they were.
"""

from __future__ import annotations

import contextlib
import dataclasses
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

from secure_fota.author.release import ReleaseFiles

__all__ = ["keep", "staging_folder"]


@contextlib.contextmanager
def staging_folder(out_dir: Path) -> Iterator[Path]:
    """A private folder inside ``out_dir`` (created if missing; same file system, so that
    :func:`keep` renames), removed with whatever is left in it."""
    out_dir.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".staging-", dir=out_dir))
    try:
        yield staging
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def keep(files: ReleaseFiles, out_dir: Path) -> ReleaseFiles:
    """Move a staged release's files into ``out_dir`` (replacing files of the same name) and
    return where they are now."""

    def move(path: Path) -> Path:
        target = out_dir / path.name
        path.replace(target)
        return target

    return dataclasses.replace(
        files,
        manifest=move(files.manifest),
        binary=move(files.binary),
        legacy_manifest=move(files.legacy_manifest) if files.legacy_manifest else None,
    )
