"""Compromise of the manifest-signing key and recovery with `fota keys rotate`: the old key
signs a statement naming the new key set; every later manifest carries the chain; a device
drops the revoked key when it commits a release verified under the new set."""

from __future__ import annotations

import shutil
from pathlib import Path

from secure_fota.devtools.harness import fota_command
from tests.attacks.conftest import Lab, refused


def author_copy(lab: Lab) -> Path:
    keys = lab.root / "author-keys"
    shutil.copytree(lab.pki.keys, keys)
    return keys


def rotate(keys: Path, *extra: str) -> None:
    out = fota_command("keys", "rotate", "--keys", str(keys), *extra)
    assert "key set version" in out


def test_stolen_key_is_revoked_by_rotation(lab: Lab) -> None:
    keys = author_copy(lab)
    device = lab.device(keys=keys)
    stolen = lab.root / "stolen"
    shutil.copytree(keys, stolen)  # the attacker walks away with the signing key (version 1)
    rotate(keys)
    three = lab.release(lab.image("1.2.0"), 3, keys=keys)
    lab.upload(three)
    assert device.perform_update().result == "updated"
    assert device.keys.keyset_version == 2
    assert len(device.keys.manifest_signing) == 1
    evil = lab.release(lab.image("6.6.6"), 9, keys=stolen)
    lab.upload(evil)
    refused(device, "unknown_key")
    # the device's key folder now names only the new key: the C core agrees without a walk
    lab.assert_c_rejects(device, evil.manifest, evil.binary, "unknown_key")


def test_stolen_key_works_until_a_device_commits_the_new_set(lab: Lab) -> None:
    """The honest limit: revocation reaches a device when it installs a release signed under
    the new set. Until then the stolen key is still trusted (publish one soon after a
    rotation; docs/SECURITY.md)."""
    keys = author_copy(lab)
    stolen = lab.root / "stolen"
    shutil.copytree(keys, stolen)
    laggard = lab.device("laggard", keys=keys)
    rotate(keys)
    evil = lab.release(lab.image("6.6.6"), 9, keys=stolen)
    lab.upload(evil)
    assert laggard.check_for_update().result == "update-available"


def test_device_that_missed_releases_follows_the_chain(lab: Lab) -> None:
    keys = author_copy(lab)
    device = lab.device(keys=keys)  # offline from here on
    rotate(keys)
    lab.upload(lab.release(lab.image("1.1.0"), 2, keys=keys))
    rotate(keys, "--kind", "ecdsa256")
    four = lab.release(lab.image("1.3.0"), 4, keys=keys)
    lab.upload(four)
    result = device.perform_update()
    assert result.result == "updated", result
    assert device.keys.keyset_version == 3
    assert len(device.keys.manifest_signing) == 1
    assert four.claims.seq == 4


def test_c_core_walks_the_chain(lab: Lab) -> None:
    """The same walk in the C core (docs/formats.md §4.4)."""
    keys = author_copy(lab)
    device = lab.device(keys=keys)
    rotate(keys)
    rotate(keys, "--kind", "ecdsa256")
    four = lab.release(lab.image("1.3.0"), 4, keys=keys)
    verdict = lab.c_verdict(device, four.manifest, four.binary)
    assert verdict["accept"] is True, verdict
    stolen = lab.release(lab.image("6.6.6"), 5, keys=lab.pki.attacker_keys)
    lab.assert_c_rejects(device, stolen.manifest, None, "manifest_decrypt_failed")


def test_device_provisioned_after_a_rotation_follows_the_next_one(lab: Lab) -> None:
    """A device made after rotation 2 starts at key set version 2 (it used to start at 1 with
    the new key, and then could not verify statement 2, signed by the retired key, so the
    walk stopped and rotation 3 was never reached)."""
    keys = author_copy(lab)
    rotate(keys)
    device = lab.device(keys=keys)
    assert device.keys.keyset_version == 2
    rotate(keys)
    lab.upload(lab.release(lab.image("1.1.0"), 2, keys=keys))
    assert device.perform_update().result == "updated"
    assert device.keys.keyset_version == 3


def test_forged_rotation_statement(lab: Lab) -> None:
    """The attacker "rotates" from its own key to its own key: the statement is not signed by
    any key the device trusts, the walk stops, the manifest's key stays unknown."""
    device = lab.device()
    attacker = lab.root / "attacker"
    shutil.copytree(lab.pki.attacker_keys, attacker)
    for name in ("manifest_encryption_pub.pem", "pre_encryption_pub.pem"):
        shutil.copyfile(lab.pki.keys / name, attacker / name)
    rotate(attacker)
    evil = lab.release(lab.image("6.6.6"), 9, keys=attacker)
    lab.upload(evil)
    refused(device, "unknown_key")
    lab.assert_c_rejects(device, evil.manifest, evil.binary, "unknown_key")
