"""The reference follows the letter of docs/formats.md §4.3 step 2 and §4.4 (key rotation).

These pin the points where the text was made precise to match the reference: when the shape
of ``rot`` is checked, which statements stop the walk although their version is old, and how
the id of a listed key is computed.
"""

from __future__ import annotations

import base64
import json

import pytest
from cryptography.hazmat.primitives import serialization
from joserfc import jwe, jws

from secure_fota.crypto.jws import jose_key
from secure_fota.crypto.key_rotation import KeySet, advance, make_rotation
from secure_fota.crypto.keyring import DeviceKeys
from secure_fota.crypto.keys import generate_private_key, key_id
from secure_fota.errors import ReleaseRejected
from secure_fota.formats.manifest import MANIFEST_TYP
from secure_fota.policy.verifier import open_checked
from secure_fota.reasons import Reason

K1, K2, K3 = (generate_private_key("ecdsa256") for _ in range(3))
V2 = KeySet(2, {key_id(K2): K2.public_key()})
S3 = make_rotation(K2, 3, [K3.public_key()])


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _der(key: object, form: serialization.PublicFormat) -> bytes:
    return key.public_bytes(serialization.Encoding.DER, form)  # type: ignore[attr-defined]


def _unsigned(payload: dict[str, object]) -> str:
    """A statement whose payload is readable but whose header and signature are garbage."""
    return "x." + _b64(json.dumps(payload).encode()) + ".y"


def _spki(key: object) -> str:
    return _b64(_der(key, serialization.PublicFormat.SubjectPublicKeyInfo))


def test_old_version_statements_are_skipped() -> None:
    old = _unsigned({"version": 2, "keys": [_spki(K1.public_key())]})
    assert advance(V2, [old, S3]).version == 3


@pytest.mark.parametrize(
    "statement",
    [
        _unsigned({"version": 2, "keys": []}),  # version 2 is old, but the payload is not valid
        _unsigned({"version": 2, "keys": [_spki(K1.public_key())], "pad": "A" * 9000}),  # > 8192
        "x.e30.y.z",  # not three parts
    ],
)
def test_unreadable_or_overlong_statements_stop_the_walk(statement: str) -> None:
    assert advance(V2, [statement, S3]).version == 2


@pytest.mark.parametrize(
    "oid",
    [
        ("2a8648ce3d0201", "2a8648ce3d0209"),  # an unknown key type
        ("2a8648ce3d030107", "2a8648ce3d030108"),  # an unknown curve
    ],
)
def test_unknown_key_algorithms_stop_the_walk(oid: tuple[str, str]) -> None:
    """cryptography raises UnsupportedAlgorithm (not ValueError) for these: still unreadable."""
    spki = _der(K1.public_key(), serialization.PublicFormat.SubjectPublicKeyInfo)
    odd = spki.replace(bytes.fromhex(oid[0]), bytes.fromhex(oid[1]))
    for version in (2, 3):  # read before verifying: an old version too
        statement = _unsigned({"version": version, "keys": [_b64(odd)]})
        assert advance(V2, [statement, S3]).version == 2


def test_listed_key_id_is_that_of_the_canonical_der() -> None:
    point = K3.public_key().public_bytes(
        serialization.Encoding.X962, serialization.PublicFormat.CompressedPoint
    )
    algorithm = bytes.fromhex("301306072a8648ce3d020106082a8648ce3d030107")
    bits = b"\x03" + bytes([len(point) + 1]) + b"\x00" + point
    compressed = b"\x30" + bytes([len(algorithm) + len(bits)]) + algorithm + bits
    statement = jws.serialize_compact(
        {"alg": "ES256", "kid": key_id(K2), "typ": "fota-keys+jwt"},
        json.dumps({"version": 3, "keys": [_b64(compressed)]}).encode(),
        jose_key(K2),
        algorithms=["ES256"],
    )
    assert set(advance(V2, [statement]).keys) == {key_id(K3)}


def test_rot_shape_is_checked_before_the_algorithm() -> None:
    decryption = generate_private_key("rsa3072")
    header = {"alg": "RS256", "kid": key_id(K1), "typ": MANIFEST_TYP, "rot": "not a list"}
    signed = ".".join([_b64(json.dumps(header).encode()), _b64(b"{}"), _b64(b"sig")])
    token = jwe.encrypt_compact(
        {"alg": "RSA-OAEP-256", "enc": "A256GCM", "cty": "JWT"},
        signed.encode(),
        jose_key(decryption.public_key()),
        algorithms=["RSA-OAEP-256", "A256GCM"],
    ).encode()
    keys = DeviceKeys(
        manifest_decryption=decryption,  # type: ignore[arg-type]
        image_decryption=decryption,  # type: ignore[arg-type]
        manifest_signing={key_id(K1): K1.public_key()},
        secure_boot=K1.public_key(),
    )
    with pytest.raises(ReleaseRejected) as info:
        open_checked(token, keys)
    assert info.value.reason is Reason.MANIFEST_MALFORMED
