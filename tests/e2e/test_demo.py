"""`fota demo` (what `make demo` runs): it runs the real commands it prints, every printed
command is complete (no `...`), and `--keep` keeps the workspace the commands ran in."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from secure_fota.devtools.harness import fota_argv


def test_demo_prints_the_commands_it_runs_and_keeps_its_workspace(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("FOTA_")}
    env.update(TMPDIR=str(tmp_path), COLUMNS="80")
    done = subprocess.run(
        fota_argv("demo", "--keep"),
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
        check=False,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    commands = [line.strip()[2:] for line in done.stdout.splitlines() if line.strip()[:2] == "$ "]
    assert len(commands) >= 8
    for command in commands:
        assert command.startswith("fota "), command
        assert "..." not in command, command
    assert any(c.startswith("fota author publish app-1.1.0.bin --seq 2 ") for c in commands)
    assert "demo complete" in done.stdout and "3 attacks refused" in done.stdout
    (workspace,) = tmp_path.glob("fota-demo-*")  # kept, and what the commands worked on
    assert (workspace / "releases" / "sensor-app-2.manifest").is_file()
    assert (workspace / "device" / "device.json").is_file()
    assert f"workspace kept in {workspace}" in done.stdout
