"""Staged rollouts end to end: the real server (``fota server run``, TLS, its own database),
the fleet simulator with signed reports and failure injection, the rollout engine deciding.

* 240 devices, 20 % of them failing their self-test: the rollout aborts itself in stage 1,
  and no device outside stage 1 is ever offered the release;
* 100 healthy devices: the rollout advances through its stages to 100 % and completes;
* a worker killed with SIGKILL in the middle of a rollout (two workers): the rollout still
  completes, each step applied exactly once, every count consistent.
"""

from __future__ import annotations

import asyncio
import os
import signal
import ssl
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from secure_fota.device.fleet import FleetConfig, FleetReport, simulate
from secure_fota.devtools.harness import LocalServer
from secure_fota.server.fleet import in_stage
from secure_fota.wire import API_V1
from tests.e2e.conftest import DEVICE_TYPE, PASSWORD, USER, Fleet

ADMIN, ADMIN_PASSWORD = "ops-admin", "ops-admin-password-1"


@pytest.fixture
def rollout_fleet(
    request: pytest.FixtureRequest, tmp_path: Path, keys_and_tls: tuple[Path, Path]
) -> Iterator[tuple[Fleet, LocalServer]]:
    keys, tls = keys_and_tls
    server = LocalServer(
        tmp_path / "server-data",
        tls_cert=tls / "server.pem",
        tls_key=tls / "server.key",
        ca_file=tls / "ca.pem",
        env={
            "FOTA_FRESHNESS_KEY_FILE": str(keys / "freshness_key.pem"),
            "FOTA_ROLLOUT_TICK": "0.2",
        },
        workers=getattr(request, "param", 1),
    )
    server.add_user(USER, PASSWORD)
    server.start()
    server.add_user(ADMIN, ADMIN_PASSWORD, role="admin")
    try:
        yield (
            Fleet(
                root=tmp_path, keys=keys, ca=tls / "ca.pem", url=server.url, data=server.data_dir
            ),
            server,
        )
    finally:
        server.stop()


def api(fleet: Fleet, method: str, path: str, **options: Any) -> Any:
    verify = ssl.create_default_context(cafile=str(fleet.ca))
    for attempt in range(5):
        try:
            with httpx.Client(verify=verify, auth=(ADMIN, ADMIN_PASSWORD), timeout=30) as http:
                response = http.request(method, f"{fleet.url}{API_V1}{path}", **options)
            break
        except httpx.ConnectError:
            # a connection queued to a worker killed a moment ago is reset: connect again, as
            # an operator would (a request that reached a worker is never repeated)
            if attempt == 4:
                raise
            time.sleep(0.5)
    assert response.is_success, response.text
    return response.json()


def start(fleet: Fleet, seq: int, **plan: Any) -> dict[str, Any]:
    return api(fleet, "POST", "/rollouts", json={"device_type": DEVICE_TYPE, "seq": seq, **plan})


def run_fleet(
    fleet: Fleet,
    prefix: str,
    devices: int,
    duration: float,
    *,
    stop: threading.Event | None = None,
    **faults: Any,
) -> FleetReport:
    return asyncio.run(
        simulate(
            FleetConfig(
                server=fleet.url,
                device_type=DEVICE_TYPE,
                devices=devices,
                duration=duration,
                poll_interval=1.0,
                ca_file=fleet.ca,
                keys_dir=fleet.keys,
                installed_seq=1,
                device_id_prefix=prefix,
                reports=True,
                **faults,
            ),
            stop=stop,
        )
    )


def everyone_confirmed(fleet: Fleet, devices: int) -> bool:
    found = api(fleet, "GET", "/devices", params={"deviceType": DEVICE_TYPE, "limit": 500})
    confirmed = [
        d for d in found["devices"] if (d["running_seq"], d["last_event"]) == (2, "confirmed")
    ]
    return len(confirmed) == devices


def run_until(fleet: Fleet, prefix: str, devices: int, done: Any, limit: float) -> FleetReport:
    """Run the fleet (up to ``limit`` seconds) until ``done()`` holds."""
    stop = threading.Event()
    result: list[FleetReport] = []
    runner = threading.Thread(
        target=lambda: result.append(run_fleet(fleet, prefix, devices, limit, stop=stop))
    )
    runner.start()
    try:
        finished = _wait(done, limit)
    finally:
        stop.set()
        runner.join()
    assert finished, f"not done within {limit} s: {result[0].summary()}"
    return result[0]


def test_rollout_with_failing_devices_aborts_in_stage_one(
    rollout_fleet: tuple[Fleet, LocalServer],
) -> None:
    fleet, _ = rollout_fleet
    fleet.publish("1.0.0", 1)
    fleet.publish("1.1.0", 2)  # newest, and immediately held by its rollout
    rollout = start(
        fleet, 2, stages=[10, 50, 100], max_failure_rate=0.05, min_devices=10, stage_wait=2,
        silent_deadline=600,
    )  # fmt: skip
    report = run_fleet(fleet, "abort", 240, 12.0, fail_self_test=0.2)
    state = api(fleet, "GET", f"/rollouts/{rollout['id']}")
    assert state["state"] == "aborted", state
    assert state["stage"] == 1
    assert "failure rate" in state["note"]
    stage1, stage2, stage3 = state["progress"]
    assert stage1["failed"] >= 1
    assert stage2["offered"] == stage3["offered"] == 0
    outside = [i for i in range(240) if not in_stage(f"abort-{i:05d}", 10)]
    assert len(outside) > 180
    assert all(report.final_seqs[i] == 1 for i in outside)  # the rest of the fleet untouched
    # failures reported after the abort no longer count (the rollout is over)
    assert 1 <= stage1["failed"] <= report.faults.get("self-test", 0)
    assert report.errors == 0, report.error_samples
    release = api(fleet, "GET", f"/device-types/{DEVICE_TYPE}/releases/2")
    assert release["yanked"] is True


def test_clean_rollout_reaches_everyone(rollout_fleet: tuple[Fleet, LocalServer]) -> None:
    fleet, _ = rollout_fleet
    fleet.publish("1.0.0", 1)
    fleet.publish("1.1.0", 2)
    rollout = start(
        fleet, 2, stages=[10, 50, 100], max_failure_rate=0.05, min_devices=10, stage_wait=1,
        silent_deadline=600,
    )  # fmt: skip
    report = run_until(fleet, "clean", 100, lambda: everyone_confirmed(fleet, 100), 180)
    # the engine completes the last stage once it has run stage_wait with nobody pending
    _wait(lambda: api(fleet, "GET", f"/rollouts/{rollout['id']}")["state"] != "running", 10)
    state = api(fleet, "GET", f"/rollouts/{rollout['id']}")
    assert state["state"] == "completed", (state, report.summary())
    assert [s["failed"] + s["silent"] for s in state["progress"]] == [0, 0, 0], (
        state,
        report.summary(),
    )
    assert all(s["confirmed"] > 0 for s in state["progress"])
    # after the last stage the release is newest for everyone: the whole fleet runs it
    assert set(report.final_seqs.values()) == {2}
    inventory = api(fleet, "GET", "/devices", params={"deviceType": DEVICE_TYPE, "limit": 500})
    assert len(inventory["devices"]) == 100
    assert {(d["running_seq"], d["last_event"]) for d in inventory["devices"]} == {(2, "confirmed")}
    assert report.errors == 0, report.error_samples
    assert report.reports == 200  # installed + confirmed per device
    steps = [e["action"] for e in api(fleet, "GET", "/audit") if e["actor"] == "rollout-engine"]
    assert sorted(steps) == ["rollout-advance", "rollout-advance", "rollout-complete"]


def _workers(server: LocalServer) -> list[int]:
    listed = subprocess.run(
        ["ps", "-o", "pid=", "--ppid", str(server.pid)],
        capture_output=True,
        text=True,
        check=False,
    ).stdout.split()
    found = []
    for pid in map(int, listed):
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
        if b"multiprocessing" in cmdline and b"resource_tracker" not in cmdline:
            found.append(pid)
    return found


@pytest.mark.parametrize("rollout_fleet", [2], indirect=True)
def test_a_worker_killed_mid_rollout_does_not_corrupt_it(
    rollout_fleet: tuple[Fleet, LocalServer],
) -> None:
    fleet, server = rollout_fleet
    fleet.publish("1.0.0", 1)
    fleet.publish("1.1.0", 2)
    rollout = start(
        fleet, 2, stages=[10, 50, 100], max_failure_rate=0.2, min_devices=10, stage_wait=1,
        silent_deadline=600,
    )  # fmt: skip
    workers = _workers(server)
    assert len(workers) == 2, workers
    killed: list[int] = []

    def kill_then_done() -> bool:
        if not killed and api(fleet, "GET", f"/rollouts/{rollout['id']}")["stage"] >= 2:
            os.kill(workers[0], signal.SIGKILL)  # mid-rollout, while devices poll and report
            killed.append(workers[0])
        return bool(killed) and everyone_confirmed(fleet, 100)

    report = run_until(fleet, "kill", 100, kill_then_done, 180)
    assert killed
    _wait(lambda: api(fleet, "GET", f"/rollouts/{rollout['id']}")["state"] != "running", 10)
    state = api(fleet, "GET", f"/rollouts/{rollout['id']}")
    assert state["state"] == "completed", (state, report.summary())
    offered = sum(s["offered"] for s in state["progress"])
    decided = sum(s["confirmed"] + s["failed"] + s["silent"] for s in state["progress"])
    assert offered == decided > 0
    members = api(fleet, "GET", "/devices", params={"rollout": rollout["id"], "limit": 500})
    assert len(members["devices"]) == offered  # every member reported, each counted once
    steps = [e["action"] for e in api(fleet, "GET", "/audit") if e["actor"] == "rollout-engine"]
    assert sorted(steps) == ["rollout-advance", "rollout-advance", "rollout-complete"]
    assert set(report.final_seqs.values()) == {2}


def _wait(predicate: Any, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.2)
    return False
