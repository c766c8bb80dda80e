"""Fleet operations through real HTTPS on SQLite, PostgreSQL and MariaDB: signed reports
(trust on first use, operator keys, replay), the inventory, staged rollouts decided per
device, their automatic abort and completion, and the audit log."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from secure_fota.crypto.report import Event, Report, ReportSigner
from secure_fota.server.fleet import in_stage
from secure_fota.wire import API_V1, REPORT_CONTENT_TYPE
from tests.integration.server.conftest import (
    DATABASES,
    Harness,
    fake_release,
    harness,
    seed_upload,
    unique_type,
    wait_until,
)


@pytest.fixture(scope="module", params=DATABASES)
def fleet(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory, tls_dir: Path
) -> Iterator[Harness]:
    directory = tmp_path_factory.mktemp(f"fleet-{request.param}")
    with harness(request, directory, database=request.param, tls=tls_dir, rollout_tick=0.1) as h:
        yield h


class FakeDevice:
    """A device that only reports (its own key, its own counter)."""

    def __init__(self, device_id: str, device_type: str) -> None:
        self.device_id = device_id
        self.device_type = device_type
        self.signer = ReportSigner(ec.generate_private_key(ec.SECP256R1()))
        self.counter = 0

    def token(self, event: Event, *, seq: int = 1, release: int = 0, **extra: Any) -> str:
        self.counter = extra.pop("counter", self.counter + 1)
        return self.signer.sign(
            Report(
                device_id=self.device_id,
                device_type=self.device_type,
                event=event,
                reason=extra.pop("reason", None),
                detail=extra.pop("detail", ""),
                seq=seq,
                secure_version=0,
                version="1.0.0",
                release=release,
                counter=self.counter,
                pub=extra.pop("pub", self.signer.pub),
            )
        )


def send(fleet: Harness, token: str) -> Any:
    return fleet.http.post(
        API_V1 + "/reports",
        content=token.encode(),
        headers={"content-type": REPORT_CONTENT_TYPE},
    )


def publish(fleet: Harness, device_type: str, seq: int) -> None:
    manifest, binary = fake_release(seq)
    response = seed_upload(
        fleet.http,
        fleet.credentials.uploader,
        seq=seq,
        device_type=device_type,
        manifest=manifest,
        binary=binary,
    )
    assert response.status_code == 200, response.text


def poll(fleet: Harness, device_type: str, device_id: str | None) -> int | None:
    params = {"deviceType": device_type}
    if device_id is not None:
        params["deviceId"] = device_id
    response = fleet.http.get("/update/newest/manifest", params=params)
    if response.status_code == 404:
        return None
    assert response.status_code == 200, response.text
    return int(response.headers["x-fota-release"])


def test_first_report_registers_the_device_and_the_inventory_shows_it(fleet: Harness):
    device = FakeDevice(unique_type("dev"), unique_type("type"))
    response = send(fleet, device.token(Event.CONFIRMED, seq=3, release=3))
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["key_source"] == "tofu"
    assert body["running_seq"] == 3
    assert body["last_event"] == "confirmed"

    shown = fleet.http.get(f"{API_V1}/devices/{device.device_id}", headers=fleet.credentials.admin)
    assert shown.status_code == 200
    assert shown.json()["device_type"] == device.device_type
    listed = fleet.http.get(
        f"{API_V1}/devices",
        params={"deviceType": device.device_type},
        headers=fleet.credentials.uploader,
    ).json()
    assert [d["device_id"] for d in listed["devices"]] == [device.device_id]
    assert fleet.http.get(f"{API_V1}/devices").status_code == 401


def test_replayed_report_is_refused(fleet: Harness):
    device = FakeDevice(unique_type("dev"), "sensor")
    first = device.token(Event.CHECKING)
    assert send(fleet, first).status_code == 200
    assert send(fleet, first).status_code == 409  # the same report again
    older = device.token(Event.FAILED, detail="x", counter=1)
    assert send(fleet, older).status_code == 409
    assert send(fleet, device.token(Event.CHECKING, counter=5)).status_code == 200


def test_another_key_for_a_known_device_is_refused(fleet: Harness):
    device = FakeDevice(unique_type("dev"), "sensor")
    assert send(fleet, device.token(Event.CHECKING)).status_code == 200
    impostor = FakeDevice(device.device_id, "sensor")
    impostor.counter = 100
    response = send(fleet, impostor.token(Event.CONFIRMED, seq=9, release=9))
    assert response.status_code == 403, response.text
    shown = fleet.http.get(f"{API_V1}/devices/{device.device_id}", headers=fleet.credentials.admin)
    assert shown.json()["running_seq"] == 1


def test_a_report_signed_by_another_key_than_it_names_is_refused(fleet: Harness):
    device = FakeDevice(unique_type("dev"), "sensor")
    other = FakeDevice(device.device_id, "sensor")
    token = device.token(Event.CHECKING)
    header, payload, _ = token.split(".")
    forged = f"{header}.{payload}.{other.token(Event.CHECKING).split('.')[2]}"
    assert send(fleet, forged).status_code == 403
    assert send(fleet, "not.a.report").status_code == 422
    assert send(fleet, "x" * 10_000).status_code == 413


def test_operator_registered_key_is_not_replaced_on_first_use(fleet: Harness):
    device = FakeDevice(unique_type("dev"), "sensor")
    registered = fleet.http.put(
        f"{API_V1}/devices/{device.device_id}",
        json={"device_type": "sensor", "public_key": device.signer.pub},
        headers=fleet.credentials.admin,
    )
    assert registered.status_code == 200, registered.text
    assert registered.json()["key_source"] == "operator"
    impostor = FakeDevice(device.device_id, "sensor")
    assert send(fleet, impostor.token(Event.CHECKING)).status_code == 403
    assert send(fleet, device.token(Event.CHECKING)).status_code == 200


def test_device_ids_differ_by_case(fleet: Harness):
    name = unique_type("Case")
    upper, lower = FakeDevice(name, "sensor"), FakeDevice(name.lower(), "sensor")
    assert send(fleet, upper.token(Event.CHECKING)).status_code == 200
    assert send(fleet, lower.token(Event.CHECKING)).status_code == 200  # a different device
    shown = fleet.http.get(f"{API_V1}/devices/{name}", headers=fleet.credentials.admin)
    assert shown.json()["device_id"] == name


def test_inventory_pages(fleet: Harness):
    device_type = unique_type("paged")
    ids = sorted(f"{device_type}-{i:02d}" for i in range(7))
    for device_id in ids:
        assert (
            send(fleet, FakeDevice(device_id, device_type).token(Event.CHECKING)).status_code == 200
        )
    seen: list[str] = []
    after = None
    while True:
        params: dict[str, Any] = {"deviceType": device_type, "limit": 3}
        if after:
            params["after"] = after
        page = fleet.http.get(
            f"{API_V1}/devices", params=params, headers=fleet.credentials.admin
        ).json()
        seen += [d["device_id"] for d in page["devices"]]
        after = page["next"]
        if after is None:
            break
    assert seen == ids


def start_rollout(fleet: Harness, device_type: str, seq: int, **plan: Any) -> dict[str, Any]:
    response = fleet.http.post(
        f"{API_V1}/rollouts",
        json={"device_type": device_type, "seq": seq, **plan},
        headers=fleet.credentials.admin,
    )
    assert response.status_code == 201, response.text
    return response.json()


def rollout(fleet: Harness, rollout_id: int) -> dict[str, Any]:
    response = fleet.http.get(f"{API_V1}/rollouts/{rollout_id}", headers=fleet.credentials.admin)
    assert response.status_code == 200, response.text
    return response.json()


def test_rollout_offers_its_release_only_to_its_stage_and_aborts_on_failures(fleet: Harness):
    device_type = unique_type("roll")
    publish(fleet, device_type, 1)
    publish(fleet, device_type, 2)  # already newest for everyone: a rollout must refuse it
    refused = fleet.http.post(
        f"{API_V1}/rollouts",
        json={"device_type": device_type, "seq": 1, "stages": [10, 100]},
        headers=fleet.credentials.admin,
    )
    assert refused.status_code == 409
    publish(fleet, device_type, 3)
    created = start_rollout(
        fleet, device_type, 3, stages=[20, 100], max_failure_rate=0.1, min_devices=5,
        stage_wait=3600,
    )  # fmt: skip
    assert created["state"] == "running"
    assert created["stage"] == 1
    time.sleep(0.2)  # cache_ttl

    ids = [f"{device_type}-{i}" for i in range(60)]
    inside = [d for d in ids if in_stage(d, 20)]
    outside = [d for d in ids if not in_stage(d, 20)]
    assert inside and outside
    for device_id in ids:
        assert poll(fleet, device_type, device_id) == (3 if device_id in inside else 2)
    assert poll(fleet, device_type, None) == 2  # a seed device without an id

    progress = rollout(fleet, created["id"])["progress"]
    assert progress[0]["offered"] == len(inside)
    assert progress[0]["pending"] == len(inside)

    # one confirmation, then failures past 10 % of max(offered, min_devices)
    devices = {d: FakeDevice(d, device_type) for d in inside}
    assert send(fleet, devices[inside[0]].token(Event.CONFIRMED, seq=3)).status_code == 200
    for device_id in inside[1:]:
        token = devices[device_id].token(Event.ROLLED_BACK, seq=2, release=3)
        assert send(fleet, token).status_code == 200
        if rollout(fleet, created["id"])["state"] == "aborted":
            break
    state = rollout(fleet, created["id"])
    assert state["state"] == "aborted", state
    assert "failure rate" in state["note"]
    assert state["stage"] == 1
    time.sleep(0.2)
    assert all(poll(fleet, device_type, d) == 2 for d in inside)  # nobody is offered 3 now
    release = fleet.http.get(
        f"{API_V1}/device-types/{device_type}/releases/3", headers=fleet.credentials.admin
    ).json()
    assert release["yanked"] is True
    actions = [
        e["action"]
        for e in fleet.http.get(f"{API_V1}/audit", headers=fleet.credentials.admin).json()
        if device_type in e["target"]
    ]
    assert "rollout-abort" in actions and "rollout-start" in actions and "upload" in actions


def test_clean_rollout_advances_to_completion(fleet: Harness):
    device_type = unique_type("clean")
    publish(fleet, device_type, 1)
    publish(fleet, device_type, 2)
    created = start_rollout(
        fleet, device_type, 2, stages=[50, 100], max_failure_rate=0.05, min_devices=2,
        stage_wait=0, silent_deadline=3600,
    )  # fmt: skip
    time.sleep(0.2)
    ids = [f"{device_type}-{i}" for i in range(30)]
    devices = {d: FakeDevice(d, device_type) for d in ids}
    updated: set[str] = set()

    def round_of_polls() -> None:
        for device_id in ids:
            if device_id not in updated and poll(fleet, device_type, device_id) == 2:
                token = devices[device_id].token(Event.CONFIRMED, seq=2)
                assert send(fleet, token).status_code == 200
                updated.add(device_id)

    round_of_polls()
    assert wait_until(lambda: rollout(fleet, created["id"])["stage"] == 2, timeout=10)
    time.sleep(0.2)
    round_of_polls()
    assert updated == set(ids)
    assert wait_until(lambda: rollout(fleet, created["id"])["state"] == "completed", timeout=10)
    time.sleep(0.2)
    assert poll(fleet, device_type, None) == 2  # no longer held: newest for everyone


def test_pause_resume_abort_by_an_admin(fleet: Harness):
    device_type = unique_type("ctl")
    publish(fleet, device_type, 1)
    created = start_rollout(fleet, device_type, 1, stages=[100], stage_wait=3600)
    base = f"{API_V1}/rollouts/{created['id']}"
    assert fleet.http.post(base + "/pause", headers=fleet.credentials.uploader).status_code == 403
    assert (
        fleet.http.post(base + "/pause", headers=fleet.credentials.admin).json()["state"]
        == "paused"
    )
    assert fleet.http.post(base + "/pause", headers=fleet.credentials.admin).status_code == 409
    assert (
        fleet.http.post(base + "/resume", headers=fleet.credentials.admin).json()["state"]
        == "running"
    )
    assert (
        fleet.http.post(base + "/abort", headers=fleet.credentials.admin).json()["state"]
        == "aborted"
    )
    assert fleet.http.post(base + "/explode", headers=fleet.credentials.admin).status_code == 422
    assert (
        fleet.http.get(f"{API_V1}/rollouts/999999", headers=fleet.credentials.admin).status_code
        == 404
    )


def test_a_held_upload_is_never_newest_until_its_rollout_offers_it(fleet: Harness):
    from tests.integration.server.conftest import upload_files

    device_type = unique_type("held")
    publish(fleet, device_type, 1)
    manifest, binary = fake_release(2)
    response = fleet.http.post(
        "/uploadFile",
        params={"hold": "1"},
        headers=fleet.credentials.uploader,
        data={"id": "2", "deviceType": device_type, "fwName": "app"},
        files=upload_files(manifest, binary),
    )
    assert response.status_code == 200, response.text
    time.sleep(0.2)
    assert poll(fleet, device_type, None) == 1
    assert poll(fleet, device_type, "any-device") == 1
    shown = fleet.http.get(
        f"{API_V1}/device-types/{device_type}/releases/2", headers=fleet.credentials.admin
    ).json()
    assert shown["held"] is True
    start_rollout(fleet, device_type, 2, stages=[100], stage_wait=3600)
    time.sleep(0.2)
    assert poll(fleet, device_type, "any-device") == 2
    assert poll(fleet, device_type, None) == 1  # no id: not in any stage


def test_devices_silent_past_the_deadline_count_as_failed(fleet: Harness):
    device_type = unique_type("silent")
    publish(fleet, device_type, 1)
    publish(fleet, device_type, 2)
    created = start_rollout(
        fleet, device_type, 2, stages=[100], max_failure_rate=0.1, min_devices=5,
        stage_wait=0, silent_deadline=1,
    )  # fmt: skip
    time.sleep(0.2)
    assert poll(fleet, device_type, f"{device_type}-quiet") == 2  # offered, never reports
    assert rollout(fleet, created["id"])["progress"][0]["pending"] == 1
    assert wait_until(lambda: rollout(fleet, created["id"])["state"] == "aborted", timeout=10)
    state = rollout(fleet, created["id"])
    assert state["progress"][0]["silent"] == 1
    assert "failure rate 1/5" in state["note"]
