"""Genuine releases for other devices: another device type, another chip."""

from __future__ import annotations

from tests.attacks.conftest import Lab, refused


def test_release_for_another_device_type(lab: Lab) -> None:
    device = lab.device()
    foreign = lab.release(lab.image("1.1.0"), 2, device_type="irrigation-pump")
    lab.upload(foreign)  # uploaded under this fleet's device type
    refused(device, "wrong_device_type")
    lab.assert_c_rejects(device, foreign.manifest, foreign.binary, "wrong_device_type")


def test_release_for_another_chip(lab: Lab) -> None:
    """An ESP32-S3 image (Secure Boot V2, same P-256 key) offered to an ESP32."""
    device = lab.device()
    keys = lab.author_keys(secure_boot="v2-ecdsa256")
    other = lab.release(lab.image("1.1.0", chip="esp32s3"), 2, keys=keys, secure_boot="v2")
    assert other.claims.chip_id == 9
    lab.upload(other)
    refused(device, "wrong_chip")
    lab.assert_c_rejects(device, other.manifest, other.binary, "wrong_chip")
