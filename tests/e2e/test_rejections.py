"""Every refused release leaves the device exactly as it was (issue: reference device)."""

from __future__ import annotations

import time
from collections.abc import Callable

import pytest

from secure_fota.author.release import ReleaseFiles
from secure_fota.device.updater import Device
from tests.e2e.conftest import Fleet


def refused(device: Device, reason: str, *, update: bool = True) -> None:
    before = device.status()
    result = device.perform_update() if update else device.check_for_update()
    assert result.result == "rejected", result
    assert result.reason is not None and result.reason.value == reason, result
    assert device.status() == before
    assert not device.state.download_file.exists()


def tamper(files: ReleaseFiles, which: str, position: int) -> None:
    path = files.manifest if which == "manifest" else files.binary
    data = bytearray(path.read_bytes())
    if which == "manifest":
        # stay inside the base64url alphabet: change one character of the JWE ciphertext
        fourth = data.index(b".", data.index(b".", data.index(b".") + 1) + 1) + 1
        index = fourth + position
        data[index] = ord("A") if data[index] != ord("A") else ord("B")
    else:
        data[position] ^= 0x01
    path.write_bytes(bytes(data))


def test_replayed_old_manifest(fleet: Fleet) -> None:
    device = fleet.device()
    fleet.publish("1.1.0", 2)
    assert device.perform_update().result == "updated"
    old = fleet.release(fleet.image("1.0.0"), 1, out=fleet.root / "old")
    fleet.upload(old, seq=3)  # a stolen uploader credential re-publishes release 1 as "newest"
    refused(device, "rollback")


def test_swapped_binary_from_another_release(fleet: Fleet) -> None:
    device = fleet.device()
    two = fleet.release(fleet.image("1.1.0"), 2, out=fleet.root / "two")
    three = fleet.release(fleet.image("1.2.0"), 3, out=fleet.root / "three")
    three.binary.write_bytes(two.binary.read_bytes())  # genuine binary, wrong release
    fleet.upload(three)
    refused(device, "enc_digest_mismatch")


@pytest.mark.parametrize(
    ("which", "position", "reason"),
    [
        ("manifest", 40, "manifest_decrypt_failed"),
        ("binary", 10, "enc_digest_mismatch"),  # inside the wrapped AES key
        ("binary", 600, "enc_digest_mismatch"),  # ciphertext
        ("binary", -1, "enc_digest_mismatch"),  # last byte
    ],
)
def test_tampered_byte(fleet: Fleet, which: str, position: int, reason: str) -> None:
    device = fleet.device()
    files = fleet.release(fleet.image("1.1.0"), 2)
    tamper(files, which, position)
    fleet.upload(files)
    refused(device, reason)


def test_release_for_another_device_type(fleet: Fleet) -> None:
    device = fleet.device()
    foreign = fleet.release(fleet.image("1.1.0"), 2, device_type="irrigation-pump")
    fleet.upload(foreign)  # uploaded under this fleet's device type
    refused(device, "wrong_device_type")


def test_lower_secure_version(fleet: Fleet) -> None:
    device = fleet.device()
    fleet.publish("2.0.0", 2, secure_version=3)
    assert device.perform_update().result == "updated"
    fleet.publish("2.0.1", 3, secure_version=2)  # newer seq, but below the eFuse value
    refused(device, "secure_version_too_low")


def test_expired_manifest(fleet: Fleet) -> None:
    fleet.publish("1.1.0", 2, expires_in=60)
    device = fleet.device()
    device.clock = lambda: int(time.time()) + 3600
    refused(device, "expired")


def test_missing_freshness_statement(fleet: Fleet, monkeypatch: pytest.MonkeyPatch) -> None:
    """A response whose freshness statement was stripped on the way is refused."""
    fleet.publish("1.1.0", 2)
    device = fleet.device()
    from secure_fota.device import transport

    original: Callable[..., transport.ManifestAnswer] = transport.ServerClient.newest_manifest

    def stripped(
        self: transport.ServerClient, *args: object, **kwargs: object
    ) -> transport.ManifestAnswer:
        answer = original(self, *args, **kwargs)
        return transport.ManifestAnswer(
            answer.status, answer.body, answer.etag, None, answer.release_id
        )

    monkeypatch.setattr(transport.ServerClient, "newest_manifest", stripped)
    refused(device, "freshness_invalid", update=False)
