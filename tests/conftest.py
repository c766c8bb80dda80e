"""Shared fixtures: the ../shared fixtures (skipped visibly when absent), a session key set,
valid app images built in memory, and ``fota`` run in this process.

Running ``fota`` in a child process, and servers (a child ``fota server run``, or an app
under uvicorn in a thread), come from :mod:`secure_fota.devtools.harness`."""

from __future__ import annotations

import io
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import NamedTuple

import pytest

from secure_fota.cli.main import main
from secure_fota.formats.app_image_builder import ImageSpec, build_app_image
from secure_fota.keys.generate import generate_key_set

REPO = Path(__file__).resolve().parent.parent
SHARED = Path(os.environ.get("FOTA_SHARED_DIR", REPO.parent / "shared"))
FIXTURES = SHARED / "fixtures"
#: fixtures committed with the repository (permissively licensed; see its SOURCES.md)
REPO_FIXTURES = REPO / "tests" / "fixtures"


def shared_fixture(*parts: str) -> Path:
    """Path of a fixture: committed under tests/fixtures, else under ../shared/fixtures, else
    skip the test saying why."""
    committed = REPO_FIXTURES.joinpath(*parts)
    if committed.exists():
        return committed
    path = FIXTURES.joinpath(*parts)
    if not path.exists():
        pytest.skip(f"{path} is absent (../shared is not on this machine)")
    return path


@pytest.fixture(scope="session")
def key_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A complete key set (secure boot v1), generated once per test session."""
    directory = tmp_path_factory.mktemp("keys")
    generate_key_set(directory, secure_boot="v1")
    return directory


@pytest.fixture(scope="session")
def image_v1() -> bytes:
    """A valid 96 KiB ESP32 app image, version 1.0.0."""
    return build_app_image(ImageSpec(chip="esp32", version="1.0.0", size=96 * 1024, seed=1))


@pytest.fixture
def firmware(tmp_path: Path, image_v1: bytes) -> Path:
    path = tmp_path / "app.bin"
    path.write_bytes(image_v1)
    return path


class CliResult(NamedTuple):
    returncode: int
    stdout: str
    stderr: str


@pytest.fixture
def fota_main(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> Callable[..., CliResult]:
    """``fota ARGS`` in this process (its ``main``, exit status included), ``stdin`` as its
    standard input."""

    def run(*args: str, stdin: str = "") -> CliResult:
        monkeypatch.setattr(sys, "stdin", io.StringIO(stdin))
        try:
            main(list(args))
            code = 0
        except SystemExit as exc:
            code = int(exc.code or 0)
        out, err = capsys.readouterr()
        return CliResult(code, out, err)

    return run
