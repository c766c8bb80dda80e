"""Arbitrary firmware: whoever controls the server or holds an uploader credential tries to
make devices run code the author never signed (docs/SECURITY.md, "arbitrary firmware")."""

from __future__ import annotations

from dataclasses import replace

from secure_fota.crypto.encrypted_image import encrypt_image
from secure_fota.crypto.keys import key_id
from secure_fota.crypto.secure_boot import sign_image
from secure_fota.formats.secure_boot import Scheme
from tests.attacks.conftest import Lab, refused
from tests.attacks.forge import forged_manifest


def test_release_signed_with_the_attackers_own_keys(lab: Lab) -> None:
    """A complete release made with the attacker's key set, encrypted for the fleet (its
    encryption keys are public) and uploaded with a leaked uploader credential."""
    device = lab.device()
    fleet = lab.author_keys()
    attacker = lab.author_keys(lab.pki.attacker_keys)
    keys = replace(
        attacker,
        manifest_encryption=fleet.manifest_encryption,
        pre_encryption=fleet.pre_encryption,
    )
    files = lab.release(lab.image("6.6.6"), 50, keys=keys)
    lab.upload(files)
    refused(device, "unknown_key")
    lab.assert_c_rejects(device, files.manifest, files.binary, "unknown_key")


def test_attackers_key_under_the_authors_key_id(lab: Lab) -> None:
    """The JWS header names the author's key, the signature is the attacker's."""
    device = lab.device()
    genuine = lab.release(lab.image("1.1.0"), 2)
    fleet = lab.author_keys()
    attacker = lab.author_keys(lab.pki.attacker_keys)
    claims = {**genuine.claims.to_dict(), "seq": 60}
    manifest = forged_manifest(
        claims,
        attacker.manifest_signing,
        fleet.manifest_encryption,
        kid=key_id(fleet.manifest_signing),
        alg="PS256",
    )
    assert lab.upload_bytes(manifest, genuine.binary.read_bytes(), 60).status_code == 200
    refused(device, "bad_signature")
    lab.assert_c_rejects(device, manifest, None, "bad_signature")


def test_unsigned_manifest(lab: Lab) -> None:
    """``alg: none`` and an empty signature, the classic JOSE bypass."""
    device = lab.device()
    genuine = lab.release(lab.image("1.1.0"), 2)
    fleet = lab.author_keys()
    manifest = forged_manifest(
        {**genuine.claims.to_dict(), "seq": 61},
        None,
        fleet.manifest_encryption,
        kid=key_id(fleet.manifest_signing),
        alg="none",
    )
    assert lab.upload_bytes(manifest, genuine.binary.read_bytes(), 61).status_code == 200
    refused(device, "unsupported_algorithm")
    lab.assert_c_rejects(device, manifest, None, "unsupported_algorithm")


def test_manifest_encrypted_for_another_fleet(lab: Lab) -> None:
    """An attacker who does not even use the fleet's encryption key: nothing opens."""
    device = lab.device()
    files = lab.release(lab.image("6.6.6"), 51, keys=lab.pki.attacker_keys)
    lab.upload(files)
    refused(device, "manifest_decrypt_failed")
    lab.assert_c_rejects(device, files.manifest, files.binary, "manifest_decrypt_failed")


def test_image_signed_with_a_rogue_secure_boot_key(lab: Lab) -> None:
    """The manifest-signing key alone is stolen: the image inside is signed for secure boot by
    the attacker. The device decrypts and parses it, and refuses before touching the flash."""
    device = lab.device()
    stolen = replace(
        lab.author_keys(), secure_boot=lab.author_keys(lab.pki.attacker_keys).secure_boot
    )
    files = lab.release(lab.image("6.6.6"), 52, keys=stolen)
    lab.upload(files)
    refused(device, "secure_boot_signature_invalid")
    lab.assert_c_rejects(device, files.manifest, files.binary, "secure_boot_signature_invalid")


def test_attackers_image_under_a_genuine_manifest(lab: Lab) -> None:
    """The seed's hole: pre-encryption uses a public key, so anyone can make a well-formed,
    GCM-authenticated image. Here it is signed for secure boot by the attacker and swapped
    in for a genuine release's binary."""
    device = lab.device()
    files = lab.release(lab.image("1.1.0"), 2)
    attacker = lab.author_keys(lab.pki.attacker_keys)
    evil = sign_image(lab.image("6.6.6").read_bytes(), attacker.secure_boot, Scheme.V1)
    files.binary.write_bytes(encrypt_image(evil, lab.author_keys().pre_encryption))
    lab.upload(files)
    refused(device, "enc_digest_mismatch")
    lab.assert_c_rejects(device, files.manifest, files.binary, "enc_digest_mismatch")
