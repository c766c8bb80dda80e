"""Start-up removes the spool files of uploads whose process is gone — a zombie included (a
worker killed with its service stays one until init reaps it) — and keeps those of live
processes and files that are not ours."""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

import pytest

from secure_fota.server.storage.spool import _HOST, SPOOL_SUFFIX, clean_spool_dir


def _state(pid: int) -> str:
    return Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0]


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="needs Linux /proc")
def test_leftovers_of_gone_and_zombie_processes_go_live_ones_stay(tmp_path: Path) -> None:
    zombie = subprocess.Popen(["true"])  # exits at once; not waited for: a zombie
    deadline = time.monotonic() + 10
    while _state(zombie.pid) != "Z":
        assert time.monotonic() < deadline, "the child did not exit"
        time.sleep(0.01)
    live = subprocess.Popen(["sleep", "30"])
    try:
        gone = 2**22 + 1  # above pid_max's default: no such process
        names = {
            "zombie": f"{_HOST}.{zombie.pid}.{'a' * 16}{SPOOL_SUFFIX}",
            "gone": f"{_HOST}.{gone}.{'b' * 16}{SPOOL_SUFFIX}",
            "live": f"{_HOST}.{live.pid}.{'c' * 16}{SPOOL_SUFFIX}",
            "self": f"{_HOST}.{os.getpid()}.{'d' * 16}{SPOOL_SUFFIX}",
            "other host": f"elsewhere.{gone}.{'e' * 16}{SPOOL_SUFFIX}",
            "not ours": "notes.txt",
        }
        for name in names.values():
            (tmp_path / name).write_bytes(b"x")
        assert clean_spool_dir(tmp_path, max_age=3600) == 2
        left = {path.name for path in tmp_path.iterdir()}
        assert left == {names[k] for k in ("live", "self", "other host", "not ours")}
    finally:
        live.kill()
        live.wait()
        zombie.wait()
