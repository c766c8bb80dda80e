"""Device reports (docs/formats.md §11): signing, verification, and every payload rule."""

from __future__ import annotations

import json
from dataclasses import replace
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from secure_fota.crypto.jws import sign_compact
from secure_fota.crypto.report import (
    REPORT_TYP,
    Event,
    Report,
    ReportSigner,
    open_report,
    public_key_text,
)
from secure_fota.errors import FormatError, KeyMaterialError, VerificationError


@pytest.fixture(scope="module")
def key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def report(key: ec.EllipticCurvePrivateKey, **changes: Any) -> Report:
    base = Report(
        device_id="dev-1",
        device_type="sensor",
        event=Event.CONFIRMED,
        reason=None,
        detail="",
        seq=2,
        secure_version=1,
        version="1.1.0",
        release=2,
        counter=7,
        pub=public_key_text(key),
    )
    return replace(base, **changes)


def raw(key: ec.EllipticCurvePrivateKey, payload: dict[str, Any]) -> str:
    return sign_compact(json.dumps(payload).encode(), key, REPORT_TYP)


def test_round_trip(key: ec.EllipticCurvePrivateKey) -> None:
    token = ReportSigner(key).sign(report(key))
    opened, _ = open_report(token)
    assert opened == report(key)
    assert open_report(token, registered=public_key_text(key))[0] == opened


def test_another_registered_key_is_refused(key: ec.EllipticCurvePrivateKey) -> None:
    other = ec.generate_private_key(ec.SECP256R1())
    token = ReportSigner(key).sign(report(key))
    with pytest.raises(VerificationError):
        open_report(token, registered=public_key_text(other))


def test_a_signature_by_another_key_is_refused(key: ec.EllipticCurvePrivateKey) -> None:
    other = ec.generate_private_key(ec.SECP256R1())
    # the payload names key's public half but other signs: the kid does not match
    with pytest.raises((FormatError, VerificationError)):
        open_report(sign_compact(report(key).to_json(), other, REPORT_TYP))
    # same kid, wrong signature bytes
    token = ReportSigner(key).sign(report(key))
    forged = ReportSigner(key).sign(report(key, counter=8))
    head, body, _ = token.split(".")
    with pytest.raises(VerificationError):
        open_report(f"{head}.{body}.{forged.split('.')[2]}")


def test_signer_refuses_a_report_naming_another_key(key: ec.EllipticCurvePrivateKey) -> None:
    other = ec.generate_private_key(ec.SECP256R1())
    with pytest.raises(KeyMaterialError):
        ReportSigner(key).sign(report(other))


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"event": "exploded"}, "event"),
        ({"device_id": "../x"}, "device_id"),
        ({"device_type": ""}, "device_type"),
        ({"counter": 0}, "counter"),
        ({"counter": 2**53}, "counter"),
        ({"counter": True}, "counter"),
        ({"seq": -1}, "seq"),
        ({"seq": 2**31}, "seq"),
        ({"secure_version": 256}, "secure_version"),
        ({"version": "x" * 32}, "version"),
        ({"detail": "x" * 201}, "detail"),
        ({"detail": "tab\there"}, "detail"),
        ({"reason": "made_up"}, "reason"),
        ({"event": "rejected", "reason": None}, "needs a reason"),
        ({"extra": 1}, "unknown"),
    ],
)
def test_payload_rules(
    key: ec.EllipticCurvePrivateKey, change: dict[str, Any], message: str
) -> None:
    payload = json.loads(report(key).to_json())
    payload.update(change)
    with pytest.raises(FormatError, match=message):
        open_report(raw(key, payload))


def test_missing_member_and_oversize(key: ec.EllipticCurvePrivateKey) -> None:
    payload = json.loads(report(key).to_json())
    del payload["counter"]
    with pytest.raises(FormatError, match="missing"):
        open_report(raw(key, payload))
    with pytest.raises(FormatError, match="larger"):
        open_report("a" * 5000)


def test_a_non_p256_key_is_refused(key: ec.EllipticCurvePrivateKey) -> None:
    p384 = ec.generate_private_key(ec.SECP384R1())
    with pytest.raises(KeyMaterialError):
        ReportSigner(p384)  # type: ignore[arg-type]
    payload = json.loads(report(key).to_json())
    payload["pub"] = public_key_text(p384)
    with pytest.raises(FormatError, match="P-256"):
        open_report(raw(key, payload))
