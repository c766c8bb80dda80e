"""``fota release|devices|rollout|audit`` against a real server over HTTPS (subprocesses):
output, --json, confirmations, and one-line errors."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from secure_fota.devtools.harness import run_fota
from tests.integration.server.conftest import Harness, harness, unique_type
from tests.integration.server.test_fleet import Event, FakeDevice, publish, send


@pytest.fixture(scope="module")
def server(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory, tls_dir: Path
) -> Iterator[Harness]:
    with harness(request, tmp_path_factory.mktemp("ops-cli"), tls=tls_dir) as h:
        yield h


def fota(server: Harness, *args: str, role: str = "admin", stdin: str | None = None) -> Any:
    assert server.server.ca is not None
    credentials = server.credentials
    env = {"OPS_TOKEN": credentials.admin_token if role == "admin" else credentials.uploader_token}
    return run_fota(
        *args,
        "--server",
        server.server.base_url,
        "--ca",
        str(server.server.ca),
        "--token-env",
        "OPS_TOKEN",
        env=env,
        stdin=stdin,
    )


def test_release_list_show_yank_unyank_delete(server: Harness):
    device_type = unique_type("cli")
    publish(server, device_type, 1)
    publish(server, device_type, 2)
    listed = fota(server, "release", "list", device_type, "--json")
    assert listed.returncode == 0, listed.stderr
    assert [r["id"] for r in json.loads(listed.stdout)] == [1, 2]
    shown = fota(server, "release", "show", f"{device_type}/2")
    assert f"{device_type}/2" in shown.stdout and "sha256" in shown.stdout
    assert " UTC" in shown.stdout

    refused = fota(server, "release", "yank", f"{device_type}/2", stdin="n\n")
    assert refused.returncode == 1
    assert not json.loads(fota(server, "release", "show", f"{device_type}/2", "--json").stdout)[
        "yanked"
    ]
    yanked = fota(server, "release", "yank", f"{device_type}/2", "--yes", "--json")
    assert yanked.returncode == 0 and json.loads(yanked.stdout)["yanked"] is True
    assert fota(server, "release", "unyank", f"{device_type}/2").returncode == 0

    as_uploader = fota(server, "release", "delete", f"{device_type}/2", "--yes", role="uploader")
    assert as_uploader.returncode == 1
    assert as_uploader.stderr.startswith("error: server answered 403")
    assert fota(server, "release", "delete", f"{device_type}/2", "--yes").returncode == 0
    missing = fota(server, "release", "show", f"{device_type}/2")
    assert missing.returncode == 1 and "404" in missing.stderr
    bad = fota(server, "release", "show", "no-slash")
    assert bad.returncode == 2 and bad.stderr.count("\n") == 1


def test_devices_rollout_and_audit(server: Harness):
    device_type = unique_type("cliroll")
    publish(server, device_type, 1)
    publish(server, device_type, 2)
    for i in range(3):
        device = FakeDevice(f"{device_type}-{i}", device_type)
        assert send(server, device.token(Event.CONFIRMED, seq=1)).status_code == 200
    listed = fota(server, "devices", "list", "--device-type", device_type, "--json")
    assert [d["device_id"] for d in json.loads(listed.stdout)] == [
        f"{device_type}-{i}" for i in range(3)
    ]
    shown = fota(server, "devices", "show", f"{device_type}-0")
    assert "confirmed" in shown.stdout and "tofu" in shown.stdout

    publish(server, device_type, 3)
    created = fota(
        server, "rollout", "create", f"{device_type}/3", "--stages", "10,100",
        "--stage-wait", "1h", "--max-failure-rate", "5%", "--json",
    )  # fmt: skip
    assert created.returncode == 0, created.stderr
    rollout = json.loads(created.stdout)
    assert (rollout["state"], rollout["stages"], rollout["stage_wait"]) == (
        "running",
        [10, 100],
        3600,
    )
    status = fota(server, "rollout", "status", str(rollout["id"]))
    assert f"{device_type}/3 running, stage 1 of 2" in status.stdout
    again = fota(server, "rollout", "start", f"{device_type}/3", "--stages", "10,100")
    assert again.returncode == 1 and "still active" in again.stderr
    wrong = fota(server, "rollout", "create", f"{device_type}/3", "--stages", "50,10")
    assert wrong.returncode == 2 and "--stages" in wrong.stderr
    assert fota(server, "rollout", "pause", str(rollout["id"])).returncode == 0
    aborted = fota(server, "rollout", "abort", str(rollout["id"]), "--yes", "--json")
    assert json.loads(aborted.stdout)["state"] == "aborted"
    assert any(
        r["id"] == rollout["id"]
        for r in json.loads(fota(server, "rollout", "list", "--json").stdout)
    )

    events = json.loads(fota(server, "audit", "list", "--json").stdout)
    actions = [e["action"] for e in events if device_type in e["target"]]
    assert {"rollout-start", "rollout-pause", "rollout-abort", "upload"} <= set(actions)
    text = fota(server, "audit", "list", "--limit", "5")
    assert len(text.stdout.splitlines()) == 5


def test_missing_token_is_one_line(server: Harness):
    result = run_fota(
        "release", "list", "x", "--server", server.server.base_url, "--token-env", "UNSET_VAR_X"
    )
    assert result.returncode == 2
    assert result.stderr == "error: --token-env: environment variable UNSET_VAR_X is not set\n"
