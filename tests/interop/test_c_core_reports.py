"""Device reports signed by the ESP32 C core (``secure_ota_host report``, docs/formats.md §11),
checked independently of the C code: by the Python reference's ``open_report``, by a second JOSE
library (jwcrypto), and byte for byte against Python's own payload and header and an RFC 6979
signature made by ``cryptography`` with the key the C blob holds. The members' bounds are
compared both ways: what C refuses to sign, the reference refuses to read, and the limits
themselves pass in both.
"""

from __future__ import annotations

import base64
import json
import os
import subprocess
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature
from jwcrypto import jwk, jws

from secure_fota.crypto.keys import key_id
from secure_fota.crypto.report import (
    REPORT_TYP,
    Event,
    Report,
    ReportSigner,
    open_report,
    parse_payload,
    public_key_text,
)
from secure_fota.errors import FormatError

REPO = Path(__file__).resolve().parents[2]
HOST_TOOL = Path(os.environ.get("SECURE_OTA_HOST", REPO / "build/esp32-host/secure_ota_host"))
BLOB_SIZE = 44

pytestmark = pytest.mark.skipif(
    not HOST_TOOL.exists(), reason=f"{HOST_TOOL} is not built (run `make host-test`)"
)


def b64url(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def new_key(directory: Path) -> tuple[Path, dict[str, str]]:
    path = directory / "report_key.bin"
    done = subprocess.run(
        [str(HOST_TOOL), "report-key", str(path)], capture_output=True, timeout=60, check=True
    )
    return path, json.loads(done.stdout)


def private_key(blob_file: Path) -> ec.EllipticCurvePrivateKey:
    """The key a blob holds, read by its documented layout (so_core.h), not by the C code."""
    blob = blob_file.read_bytes()
    assert len(blob) == BLOB_SIZE and blob[:8] == b"SORK\x01\x00\x00\x00"
    return ec.derive_private_key(int.from_bytes(blob[8:40], "big"), ec.SECP256R1())


def c_sign(key: Path, **members: Any) -> subprocess.CompletedProcess[str]:
    args = [str(HOST_TOOL), "report", "--key", str(key)]
    for name, value in members.items():
        if value is not None:
            args += ["--" + name.replace("_", "-"), str(value)]
    return subprocess.run(args, check=False, capture_output=True, text=True, timeout=60)


def sample(**changes: Any) -> dict[str, Any]:
    members: dict[str, Any] = {
        "device_id": "esp32-a1b2c3d4e5f6",
        "device_type": "sensor",
        "event": "rejected",
        "reason": "rollback",
        "detail": 'a "quoted" \\ detail',
        "seq": 7,
        "secure_version": 2,
        "version": "v1.2.3-dirty",
        "release": 9,
        "counter": 41,
    }
    members.update(changes)
    return members


def as_report(members: dict[str, Any], pub: str) -> Report:
    return Report(
        device_id=members["device_id"],
        device_type=members["device_type"],
        event=Event(members["event"]),
        reason=members.get("reason"),
        detail=members.get("detail") or "",
        seq=members["seq"],
        secure_version=members["secure_version"],
        version=members["version"],
        release=members["release"],
        counter=members["counter"],
        pub=pub,
    )


def test_key_blob_holds_the_key_the_tool_names(tmp_path: Path) -> None:
    path, named = new_key(tmp_path)
    assert path.stat().st_mode & 0o777 == 0o600
    key = private_key(path)
    assert public_key_text(key) == named["pub"]
    assert key_id(key) == named["kid"]


@pytest.mark.parametrize(
    "changes",
    [
        {},
        {"event": "confirmed", "reason": None, "detail": None, "seq": 9},
        {"event": "failed", "reason": None, "detail": "write failed: ESP_ERR_FLASH_OP_FAIL"},
        {"event": "rolled_back", "reason": None, "release": 9, "seq": 7},
        {"event": "installed", "reason": None, "counter": 2**53 - 1, "seq": 2**31 - 1},
        {"event": "rejected", "reason": "redirect_refused", "detail": "~" * 200},
    ],
)
def test_c_signed_report_opens_with_the_reference_and_jwcrypto(
    tmp_path: Path, changes: dict[str, Any]
) -> None:
    path, named = new_key(tmp_path)
    members = sample(**changes)
    done = c_sign(path, **members)
    assert done.returncode == 0, done.stderr
    token = done.stdout.strip()
    assert len(token) <= 4096

    # the reference: signature, kid = key id of pub, every member
    report, public = open_report(token)
    assert report == as_report(members, named["pub"])
    assert key_id(public) == named["kid"]

    # a second JOSE implementation, given only the public key
    pem = public.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    checked = jws.JWS()
    checked.deserialize(token, jwk.JWK.from_pem(pem), alg="ES256")
    assert checked.jose_header == {"alg": "ES256", "kid": named["kid"], "typ": REPORT_TYP}
    assert json.loads(checked.payload) == json.loads(report.to_json())

    # byte for byte: header and payload as Python writes them ...
    header, payload, signature = token.split(".")
    python_token = ReportSigner(private_key(path)).sign(report)
    assert python_token.split(".")[:2] == [header, payload]
    assert b64url(payload) == report.to_json()
    # ... and the signature is RFC 6979's for this key and input (cryptography computes it)
    der = private_key(path).sign(
        f"{header}.{payload}".encode(), ec.ECDSA(hashes.SHA256(), deterministic_signing=True)
    )
    r, s = decode_dss_signature(der)
    assert b64url(signature) == r.to_bytes(32, "big") + s.to_bytes(32, "big")


OUT_OF_BOUNDS = [
    ("device_id", ""),
    ("device_id", "a..b"),
    ("device_id", "-leading-dash"),
    ("device_id", "x" * 65),
    ("device_id", "has space"),
    ("device_type", "a/b"),
    ("reason", "no_such_reason"),
    ("detail", "d" * 201),
    ("detail", "tab\there"),
    ("detail", "caf\u00e9"),
    ("version", "v" * 32),
    ("version", "1.0\n"),
    ("seq", 2**31),
    ("release", 2**31),
    ("secure_version", 256),
    ("counter", 0),
    ("counter", 2**53),
]


@pytest.mark.parametrize(("member", "value"), OUT_OF_BOUNDS)
def test_c_refuses_what_the_reference_refuses(tmp_path: Path, member: str, value: Any) -> None:
    path, named = new_key(tmp_path)
    done = c_sign(path, **sample(**{member: value}))
    assert done.returncode == 4, done.stdout
    assert f"report: {member} is out of its bounds" in done.stderr
    # the reference would refuse the same member in a report it receives
    data = json.loads(as_report(sample(), named["pub"]).to_json())
    data[member] = value
    with pytest.raises(FormatError):
        parse_payload(json.dumps(data).encode())


def test_rejected_needs_a_reason_in_both(tmp_path: Path) -> None:
    path, named = new_key(tmp_path)
    done = c_sign(path, **sample(reason=None))
    assert done.returncode == 4 and "reason is out of its bounds" in done.stderr
    data = json.loads(as_report(sample(), named["pub"]).to_json())
    data["reason"] = None
    with pytest.raises(FormatError):
        parse_payload(json.dumps(data).encode())


def test_wrong_key_files_are_refused(tmp_path: Path) -> None:
    path, _ = new_key(tmp_path)
    blob = bytearray(path.read_bytes())
    for name, data in {
        "flipped": bytes(blob[:20]) + bytes([blob[20] ^ 1]) + bytes(blob[21:]),
        "short": bytes(blob[:-1]),
        "long": bytes(blob) + b"\0",
        "pem": ec.generate_private_key(ec.SECP256R1()).private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        ),
    }.items():
        bad = tmp_path / f"{name}.bin"
        bad.write_bytes(data)
        done = c_sign(bad, **sample())
        assert done.returncode == 1, name
        assert "not a report key blob" in done.stderr, name
