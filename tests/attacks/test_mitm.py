"""A man in the middle on the network: without the server's TLS key the device does not even
talk to it; with it (a stolen key, a hostile CDN) it is reduced to the server's powers, which
the signed, encrypted, fresh artifacts already contain (see test_freeze, test_endless_data)."""

from __future__ import annotations

from pathlib import Path

import pytest

from secure_fota.device.updater import Device
from secure_fota.errors import TransportError
from tests.attacks.conftest import Lab
from tests.attacks.infra import Mitm


def intercepted(lab: Lab, cert: Path, key: Path) -> None:
    device = lab.device()
    lab.publish("1.1.0", 2)
    before = device.status()
    with Mitm(lab.server.url, lab.pki.ca_file, cert, key) as mitm:
        with pytest.raises(TransportError, match=r"CERTIFICATE_VERIFY_FAILED|certificate"):
            device.check_for_update(lab.client_via(mitm.url, device))
        with pytest.raises(TransportError):
            device.perform_update(client=lab.client_via(mitm.url, device))
    assert mitm.requests == []  # not one request (let alone a credential) reached it
    assert device.status() == before
    assert device.perform_update().result == "updated"  # the real server still works


def test_certificate_from_another_ca(lab: Lab) -> None:
    cert, key = lab.pki.rogue_ca.issue(lab.root / "rogue", ["127.0.0.1", "localhost"])
    intercepted(lab, cert, key)


def test_certificate_for_another_host_from_the_trusted_ca(lab: Lab) -> None:
    """The seed skipped the host-name check: any certificate of its CA was accepted."""
    cert, key = lab.pki.ca.issue(lab.root / "other-host", ["updates.example.net"])
    intercepted(lab, cert, key)


def test_expired_certificate_from_the_trusted_ca(lab: Lab) -> None:
    """Certificate validity is checked against the device's clock (docs/SECURITY.md: an
    ESP32 needs SNTP time before TLS can judge this)."""
    cert, key = lab.pki.ca.issue(lab.root / "expired", ["127.0.0.1"], expired=True)
    intercepted(lab, cert, key)


def test_device_sends_no_credential(lab: Lab) -> None:
    """The seed's devices carried the uploader's Basic-auth account; ours carry nothing that
    lets anyone upload (a MITM with the server's key sees every device request)."""
    lab.publish("1.1.0", 2)
    device = lab.device()
    with Mitm(lab.server.url, lab.pki.ca_file, lab.pki.server_cert, lab.pki.server_key) as mitm:
        assert device.perform_update(client=lab.client_via(mitm.url, device)).result == "updated"
    assert len(mitm.requests) >= 2
    for request in mitm.requests:
        assert request.header("authorization") is None, request
        # GETs, and the device's signed reports (a public key and a signature, no secret)
        assert request.method == "GET" or (
            request.method == "POST" and request.target == "/api/v1/reports"
        ), request
    stored = b"".join(p.read_bytes() for p in device.state.path.rglob("*") if p.is_file())
    assert b"uploader-password" not in stored and b"Bearer" not in stored


def test_eavesdropper_learns_nothing_from_the_artifacts(lab: Lab) -> None:
    """What crosses the network (and sits on the server): no byte of the firmware in clear,
    not even its version or project name (the manifest is a JWE, the image esp_encrypted_img)."""
    lab.publish("9.8.7-secret", 2)
    device = lab.device()
    # the artifacts only: reports tell the server (by design) which version a device runs
    device.state.report_key.unlink()
    device = Device(device.state.path)
    with Mitm(lab.server.url, lab.pki.ca_file, lab.pki.server_cert, lab.pki.server_key) as mitm:
        seen: list[bytes] = []
        original = mitm.handler

        async def tap(request, forward):
            response = await original(request, forward)
            seen.append(await response.read())
            return response

        mitm.handler = tap
        assert device.perform_update(client=lab.client_via(mitm.url, device)).result == "updated"
    wire = b"".join(seen) + b"".join(
        p.read_bytes() for p in lab.server.data.rglob("*") if p.is_file()
    )
    plain = device.flash.read_partition(device.running.slot)
    assert len(wire) > len(plain)
    for secret in (b"9.8.7-secret", b"attack\0", plain[4096:4160], plain[-4160:-4096]):
        assert secret not in wire
