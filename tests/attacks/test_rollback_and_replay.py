"""Rollback, downgrade and replay: genuine, author-signed releases served out of order."""

from __future__ import annotations

from tests.attacks.conftest import Lab, refused


def test_old_release_reuploaded_under_a_higher_id(lab: Lab) -> None:
    """A leaked uploader credential re-publishes genuine release 1 as id 3 ("newest")."""
    device = lab.device(seq=1)
    lab.publish("1.1.0", 2)
    assert device.perform_update().result == "updated"
    old = lab.release(lab.image("1.0.0"), 1)
    lab.upload(old, seq=3)
    refused(device, "rollback")
    lab.assert_c_rejects(device, old.manifest, old.binary, "rollback")


def test_lower_secure_version(lab: Lab) -> None:
    """A newer seq whose image has a lower anti-rollback secure_version than the eFuse."""
    device = lab.device()
    lab.publish("2.0.0", 2, secure_version=3)
    assert device.perform_update().result == "updated"
    assert device.status()["secure_version"] == 3
    low = lab.publish("2.0.1", 3, secure_version=2)
    refused(device, "secure_version_too_low")
    lab.assert_c_rejects(device, low.manifest, low.binary, "secure_version_too_low")


def test_replay_of_the_installed_manifest(lab: Lab) -> None:
    """The installed release served again, under its own id or a higher one: "up to date",
    never reinstalled (no flash write, no reboot)."""
    device = lab.device()
    two = lab.publish("1.1.0", 2)
    assert device.perform_update().result == "updated"
    before = device.status()
    lab.upload(two, seq=7)
    for _ in range(2):
        result = device.perform_update()
        assert (result.result, result.reason) == ("up-to-date", None), result
        assert device.status() == before
    verdict = lab.c_verdict(device, two.manifest, two.binary)
    assert (verdict["accept"], verdict["reason"]) == (False, "already_installed"), verdict
