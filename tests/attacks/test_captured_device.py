"""A physically captured device whose flash was read out (flash encryption off, or a
hardware attack): what its fleet keys give an attacker, and what they do not."""

from __future__ import annotations

from secure_fota.crypto.encrypted_image import decrypt_image
from secure_fota.crypto.keys import key_id
from secure_fota.keys.directory import load_device_keys
from secure_fota.policy.verifier import open_checked
from tests.attacks.conftest import Lab, refused
from tests.attacks.forge import forged_manifest


def test_what_a_device_holds(lab: Lab) -> None:
    device = lab.device()
    private = sorted(
        p.name for p in device.state.keys.iterdir() if b"PRIVATE KEY" in p.read_bytes()
    )
    assert private == ["manifest_encryption_key.pem", "pre_encryption_key.pem"]
    author = {p.read_bytes() for p in lab.pki.keys.glob("*_key.pem")} - {
        (lab.pki.keys / name).read_bytes() for name in private
    }
    held = {p.read_bytes() for p in device.state.keys.iterdir()}
    assert not author & held  # no signing key (secure boot, manifest, freshness) on a device


def test_captured_keys_read_releases(lab: Lab) -> None:
    """Confidentiality of this fleet's releases is lost (documented): the attacker opens
    every manifest and decrypts every image."""
    device = lab.device()
    files = lab.publish("1.1.0", 2)
    stolen = load_device_keys(device.state.keys)
    assert open_checked(files.manifest.read_bytes(), stolen).claims.seq == 2
    plain = decrypt_image(files.binary.read_bytes(), stolen.image_decryption)
    assert len(plain) == files.claims.image_size


def test_captured_keys_cannot_sign(lab: Lab) -> None:
    """The only private keys on a device are RSA decryption keys. Signing a manifest with one
    gives unknown_key (not a trusted kid) or bad_signature (under a trusted kid)."""
    device = lab.device()
    genuine = lab.release(lab.image("1.1.0"), 2)
    stolen = load_device_keys(device.state.keys)
    fleet_pub = stolen.manifest_decryption.public_key()
    claims = {**genuine.claims.to_dict(), "seq": 80}
    own_kid = forged_manifest(claims, stolen.manifest_decryption, fleet_pub)
    trusted_kid = forged_manifest(
        {**claims, "seq": 81},
        stolen.image_decryption,
        fleet_pub,
        kid=next(iter(stolen.manifest_signing)),
    )
    assert key_id(stolen.manifest_decryption) not in stolen.manifest_signing
    binary = genuine.binary.read_bytes()
    assert lab.upload_bytes(own_kid, binary, 80).status_code == 200
    refused(device, "unknown_key")
    lab.assert_c_rejects(device, own_kid, None, "unknown_key")
    assert lab.upload_bytes(trusted_kid, binary, 81).status_code == 200
    refused(device, "bad_signature")
    lab.assert_c_rejects(device, trusted_kid, None, "bad_signature")
