"""A leaked uploader credential (but not the author's keys). Its upload attempts that reach
devices are in test_arbitrary_firmware (own keys: unknown_key), test_rollback_and_replay (old
release re-uploaded: rollback) and test_wrong_target; here, what the server itself refuses."""

from __future__ import annotations

from tests.attacks.conftest import Lab, refused
from tests.attacks.infra import UPLOADER


def test_published_release_cannot_be_overwritten(lab: Lab) -> None:
    genuine = lab.publish("1.1.0", 2)
    evil = lab.release(lab.image("6.6.6"), 2, keys=lab.pki.attacker_keys)
    answer = lab.upload_bytes(evil.manifest.read_bytes(), evil.binary.read_bytes(), 2)
    assert answer.status_code == 409, answer.text
    with lab.server.http() as http:
        served = http.get("/update/newest/manifest", params={"deviceType": lab.device_type})
    assert served.content == genuine.manifest.read_bytes()
    device = lab.device()
    assert device.perform_update().result == "updated"


def test_uploader_cannot_yank_or_delete(lab: Lab) -> None:
    """Withholding the newest release (a freeze lever) needs the admin role."""
    lab.publish("1.1.0", 2)
    base = f"/api/v1/device-types/{lab.device_type}/releases/2"
    with lab.server.http() as http:
        auth = (UPLOADER, "uploader-password-123")
        assert http.post(f"{base}/yank", auth=auth).status_code == 403
        assert http.delete(base, auth=auth).status_code == 403
        newest = http.get("/update/newest/manifest", params={"deviceType": lab.device_type})
    assert newest.headers["x-fota-release"] == "2"


def test_password_guessing_is_throttled(lab: Lab) -> None:
    """The seed stored one plaintext password; ours are Argon2id hashes behind a lock-out.
    (A user of its own: locking the shared uploader would hold up the other tests.)"""
    victim = f"victim-{lab.device_type[-6:]}"
    with lab.server.http() as http:
        statuses = [
            http.get("/api/v1/device-types", auth=(victim, f"guess-{i:04d}-xxxxxx")).status_code
            for i in range(12)
        ]
    assert statuses[:10] == [401] * 10
    assert statuses[-1] == 429


def test_highest_id_holds_back_later_releases_until_an_admin_removes_it(lab: Lab) -> None:
    """The server cannot read the (encrypted) manifest, so it cannot check that an upload's id
    is its manifest's seq. An uploader who re-uploads a genuine old release as id 2^31-1
    makes it "newest" for good: devices refuse it (rollback) but no later release can be
    newer. It is a freeze, not an installation: bounded by exp for devices with a clock, and
    undone by an admin (yank or delete), after which devices update normally."""
    device = lab.device()
    lab.publish("1.1.0", 2, expires_in=3600)
    assert device.perform_update().result == "updated"
    old = lab.release(lab.image("1.0.0"), 1)
    lab.upload(old, seq=2**31 - 1)
    three = lab.publish("1.2.0", 3)
    refused(device, "rollback")  # release 3 is hidden behind "newest" = 2^31-1
    assert (
        lab.admin("POST", f"/api/v1/device-types/{lab.device_type}/releases/{2**31 - 1}/yank")
    ).status_code == 200
    assert device.perform_update().result == "updated"
    assert device.status()["seq"] == three.claims.seq
