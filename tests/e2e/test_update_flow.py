"""The whole update flow through the real server over TLS, with the reference device."""

from __future__ import annotations

import pytest

from secure_fota.device.flash import FaultInjector, PowerLoss
from secure_fota.errors import TransportError
from tests.e2e.conftest import Fleet


@pytest.mark.parametrize("fleet", ["uvicorn", "granian"], indirect=True)
def test_full_update(fleet: Fleet) -> None:
    device = fleet.device()
    assert device.check_for_update().result == "up-to-date"  # nothing on the server yet
    fleet.publish("1.0.0", 1)
    assert device.check_for_update().result == "up-to-date"  # the factory release
    fleet.publish("1.1.0", 2)
    check = device.check_for_update()
    assert check.result == "update-available"
    assert check.claims is not None and check.claims.seq == 2
    result = device.perform_update()
    assert result.result == "updated", result
    status = device.status()
    assert (status["seq"], status["version"], status["running_slot"]) == (2, "1.1.0", "ota_0")
    assert status["slots"]["ota_0"]["state"] == "valid"
    # a second update lands in the other slot; the device reboots into it
    fleet.publish("1.2.0", 3)
    assert device.perform_update().result == "updated"
    assert device.status()["running_slot"] == "ota_1"
    assert device.check_for_update().result == "up-to-date"


@pytest.mark.parametrize("fleet", ["uvicorn", "granian"], indirect=True)
def test_interrupted_download_resumes_with_a_range_request(fleet: Fleet) -> None:
    fleet.publish("1.1.0", 2)
    device = fleet.device()
    with pytest.raises(TransportError, match="connection lost"):
        device.perform_update(interrupt_after=20_000)
    partial = device.state.download_file
    assert partial.stat().st_size == 20_000
    assert device.status()["seq"] == 1
    result = device.perform_update()
    assert result.result == "updated"
    assert device.last_resume_offset == 20_000
    assert not partial.exists()


def test_failed_self_test_rolls_back(fleet: Fleet) -> None:
    fleet.publish("1.1.0", 2)
    device = fleet.device(self_test=lambda _boot: False)
    result = device.perform_update()
    assert result.result == "rolled-back"
    status = device.status()
    assert (status["seq"], status["version"], status["running_slot"]) == (1, "1.0.0", "factory")
    assert status["slots"]["ota_0"]["state"] == "invalid"
    assert status["secure_version"] == 0


def test_secure_version_is_burned_only_after_confirmation(fleet: Fleet) -> None:
    fleet.publish("2.0.0", 2, secure_version=2)
    device = fleet.device()
    assert device.status()["secure_version"] == 0
    assert device.perform_update().result == "updated"
    assert device.status()["secure_version"] == 2


def test_power_loss_at_every_write_step_leaves_a_bootable_device(fleet: Fleet) -> None:
    fleet.publish("1.1.0", 2, secure_version=1)
    probe = FaultInjector()
    assert fleet.device("probe", faults=probe).perform_update().result == "updated"
    steps = list(probe.steps)
    assert len(steps) >= 6, steps
    for fail_at in range(1, len(steps) + 1):
        name = f"cut-{fail_at}"
        with pytest.raises(PowerLoss):
            fleet.device(name, faults=FaultInjector(fail_at)).perform_update()
        rebooted = fleet.device(name)  # power comes back: the bootloader picks a valid image
        status = rebooted.status()
        assert status["seq"] in (1, 2), (steps[fail_at - 1], status)
        assert status["version"] == {1: "1.0.0", 2: "1.1.0"}[status["seq"]]
        # and the device can always finish the update afterwards
        if status["seq"] == 1:
            assert rebooted.perform_update().result == "updated", steps[fail_at - 1]
        assert rebooted.status()["seq"] == 2
        assert rebooted.status()["secure_version"] == 1
