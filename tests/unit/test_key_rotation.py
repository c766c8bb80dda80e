"""Rotation of the manifest-signing key, signed by the old key, walked by devices."""

from __future__ import annotations

import shutil
import time
from pathlib import Path

import pytest

from secure_fota.author.release import ReleaseRequest, build_release
from secure_fota.crypto.key_rotation import KeySet, advance, make_rotation
from secure_fota.crypto.keys import generate_private_key, key_id
from secure_fota.errors import ReleaseRejected
from secure_fota.formats.app_image_builder import ImageSpec, build_app_image
from secure_fota.keys.directory import load_author_keys, load_device_keys
from secure_fota.keys.generate import generate_key_set, rotate_signing_key
from secure_fota.policy.verifier import open_checked
from secure_fota.reasons import Reason

K1, K2, K3 = (generate_private_key("rsa3072") for _ in range(3))
STRANGER = generate_private_key("ecdsa256")
V1 = KeySet(1, {key_id(K1): K1.public_key()})
S2 = make_rotation(K1, 2, [K2.public_key()])
S3 = make_rotation(K2, 3, [K3.public_key(), K2.public_key()])


def test_chain_is_walked_from_any_version() -> None:
    assert set(advance(V1, [S2, S3]).keys) == {key_id(K3), key_id(K2)}
    assert advance(V1, [S2, S3]).version == 3
    at_two = KeySet(2, {key_id(K2): K2.public_key()})
    assert advance(at_two, [S2, S3]).version == 3  # S2 is skipped, not re-verified


@pytest.mark.parametrize(
    "chain",
    [
        [make_rotation(STRANGER, 2, [STRANGER.public_key()])],  # not signed by a trusted key
        [make_rotation(K1, 3, [K2.public_key()])],  # skips version 2
        [S3],  # signed by K2, which version 1 does not trust
        ["not.a.statement"],
    ],
)
def test_untrusted_chains_stop_the_walk(chain: list[str]) -> None:
    assert advance(V1, chain) == V1


@pytest.fixture
def fleet(tmp_path: Path):
    keys = tmp_path / "keys"
    generate_key_set(keys)
    device = tmp_path / "device-keys"
    shutil.copytree(keys, device)  # what devices provisioned today hold (key set version 1)
    image = tmp_path / "app.bin"
    image.write_bytes(build_app_image(ImageSpec(size=8192)))
    return keys, device, image, tmp_path


def _release(keys: Path, image: Path, out: Path, seq: int) -> bytes:
    out.mkdir(exist_ok=True)
    files = build_release(
        ReleaseRequest(firmware=image, seq=seq, device_type="t", fw_name="fw", out_dir=out),
        load_author_keys(keys, secure_boot_version="v1"),
        now=int(time.time()),
    )
    return files.manifest.read_bytes()


def test_devices_follow_two_rotations(fleet) -> None:
    keys, device, image, tmp = fleet
    rotate_signing_key(keys)
    rotate_signing_key(keys, kind="ecdsa256")
    manifest = _release(keys, image, tmp / "out", 3)
    opened = open_checked(manifest, load_device_keys(device))
    assert opened.keyset.version == 3
    assert opened.alg == "ES256"
    assert set(opened.keyset.keys) == {opened.kid}  # the first two keys are revoked


def test_revoked_key_is_refused_after_commit(fleet) -> None:
    keys, _device, image, tmp = fleet
    old_manifest = _release(keys, image, tmp / "old", 1)  # signed by the first key
    rotate_signing_key(keys)
    # a device that committed version 2 trusts only the new key
    rotated = load_device_keys(keys)
    assert rotated.keyset_version == 2
    with pytest.raises(ReleaseRejected) as info:
        open_checked(old_manifest, rotated)
    assert info.value.reason is Reason.UNKNOWN_KEY
    # with --keep-old the old key stays trusted
    rotate_signing_key(keys, keep_old=True)
    assert len(load_device_keys(keys).manifest_signing) == 2


def test_forged_rotation_does_not_help_an_attacker(fleet) -> None:
    keys, device, image, tmp = fleet
    attacker = tmp / "attacker"
    shutil.copytree(keys, attacker)
    (attacker / "manifest_signing_key.pem").unlink()
    generate_key_set(tmp / "attacker-keys")
    shutil.copy(tmp / "attacker-keys" / "manifest_signing_key.pem", attacker)
    # the attacker rotates "from" its own key: the statement is not signed by a trusted key
    rotate_signing_key(attacker)
    manifest = _release(attacker, image, tmp / "out", 9)
    with pytest.raises(ReleaseRejected) as info:
        open_checked(manifest, load_device_keys(device))
    assert info.value.reason is Reason.UNKNOWN_KEY
