"""The README's tour, run as written: keys, TLS, server, users and tokens, a release, verify,
upload and publish, a device's init/check/update/status, and the fleet simulator.

The commands are the ``sh`` blocks between ``<!-- tour:begin`` and ``<!-- tour:end -->`` in
README.md, run by bash (``set -euo pipefail``) in an empty temporary folder on 127.0.0.1. Two
things differ from a reader's terminal, both said in the README: a free port replaces 8443, and
the committed ESP32 hello-world image is ``build/app.bin``.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO, shared_fixture

README = REPO / "README.md"
TOUR = re.compile(r"<!-- tour:begin[^>]*-->(?P<body>.*?)<!-- tour:end -->", re.S)
SH_BLOCK = re.compile(r"```sh\n(?P<code>.*?)```", re.S)
DEFAULT_PORT = "8443"

pytestmark = pytest.mark.skipif(shutil.which("curl") is None, reason="the tour uses curl")


def tour_script(readme: str) -> str:
    """The tour's commands, in order, as one bash script."""
    match = TOUR.search(readme)
    assert match, "README.md has no <!-- tour:begin --> ... <!-- tour:end --> section"
    blocks = [m["code"] for m in SH_BLOCK.finditer(match["body"])]
    assert blocks, "the tour section has no sh blocks"
    return "\n".join(blocks)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def test_tour_covers_every_part() -> None:
    script = tour_script(README.read_text())
    for command in (
        "fota keys generate",
        "fota keys tls",
        "fota server run",
        "fota server user add",
        "fota server token create",
        "fota author release",
        "fota author verify",
        "fota author upload",
        "fota author publish",
        "fota device init",
        "fota device check",
        "fota device update",
        "fota device status",
        "fota fleet simulate",
    ):
        assert command in script, f"the tour lost `{command}`"
    assert script.count(DEFAULT_PORT) >= 3


def _json_lines(text: str) -> list[dict[str, object]]:
    found = []
    for line in text.splitlines():
        if line.startswith("{"):
            try:
                found.append(json.loads(line))
            except json.JSONDecodeError:
                continue
    return found


def test_readme_tour_runs_as_written(tmp_path: Path) -> None:
    port = str(_free_port())
    script = tour_script(README.read_text()).replace(DEFAULT_PORT, port)
    (tmp_path / "tour.sh").write_text("set -euo pipefail\n" + script + "\nwait\n")
    (tmp_path / "build").mkdir()
    shutil.copyfile(
        shared_fixture("firmware", "esp32_hello_world_idf5.2.2.bin"), tmp_path / "build/app.bin"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("FOTA_")}
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    out_file, err_file = tmp_path / "tour.out", tmp_path / "tour.err"
    with out_file.open("w") as out, err_file.open("w") as err:
        process = subprocess.Popen(
            ["bash", "tour.sh"],
            cwd=tmp_path,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=err,
            start_new_session=True,  # the tour's background server is in this process group
        )
        try:
            process.wait(timeout=240)
        finally:
            # whatever the tour left running (its server, if it failed half way)
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait()
    stdout, stderr = out_file.read_text(), err_file.read_text()
    assert process.returncode == 0, f"the tour failed:\n{stdout[-3000:]}\n{stderr[-3000:]}"
    assert "Traceback" not in stderr
    assert "WARNING: no freshness key" not in stderr
    results = _json_lines(stdout)
    check = next(r for r in results if r.get("result") == "update-available")
    assert check["claims"]["seq"] == 43  # type: ignore[index]
    assert any(r.get("result") == "updated" for r in results)
    status = next(r for r in results if "running_slot" in r)
    assert status["seq"] == 43 and status["device_type"] == "greenhouse-sensor"
    assert (tmp_path / "dist/sensor-app-42.manifest").is_file()
    assert re.search(r"200 devices, .* 0 errors", stdout), stdout[-2000:]
