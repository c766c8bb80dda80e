from __future__ import annotations

import hashlib
import secrets
from dataclasses import asdict, replace

import pytest

from secure_fota.crypto.freshness import FreshnessSigner, FreshnessStatement
from secure_fota.crypto.keyring import DeviceKeys
from secure_fota.crypto.keys import generate_private_key, key_id
from secure_fota.errors import ReleaseRejected
from secure_fota.policy.verifier import check_freshness
from secure_fota.reasons import Reason
from tests.unit.test_manifest import CLAIMS, ENCRYPTION, SIGNING, TOKEN, TRUSTED

SERVER = generate_private_key("ecdsa256")
KEYS = DeviceKeys(
    manifest_decryption=ENCRYPTION,
    image_decryption=generate_private_key("rsa3072"),
    manifest_signing=TRUSTED,
    secure_boot=SIGNING.public_key(),
    freshness={key_id(SERVER): SERVER.public_key()},
)
NONCE = secrets.token_hex(16)
GOOD = FreshnessStatement(
    device_type="sensor-v2",
    seq=CLAIMS.seq,
    manifest_sha256=hashlib.sha256(TOKEN).hexdigest(),
    nonce=NONCE,
    iat=1_700_000_000,
)


def make_statement(key, statement: FreshnessStatement) -> str:
    return FreshnessSigner(key).sign(**asdict(statement))


def reason(statement: str | None, *, nonce: str = NONCE, device_type: str = "sensor-v2"):
    try:
        check_freshness(statement, TOKEN, CLAIMS, KEYS, nonce=nonce, device_type=device_type)
    except ReleaseRejected as exc:
        return exc.reason
    return None


def test_fresh_statement_is_accepted() -> None:
    assert reason(make_statement(SERVER, GOOD)) is None


@pytest.mark.parametrize(
    ("statement", "kwargs", "expected"),
    [
        (None, {}, Reason.FRESHNESS_INVALID),
        (make_statement(SERVER, GOOD), {"nonce": "0" * 32}, Reason.FRESHNESS_INVALID),
        (make_statement(SERVER, GOOD), {"device_type": "other"}, Reason.FRESHNESS_INVALID),
        (make_statement(generate_private_key("ecdsa256"), GOOD), {}, Reason.FRESHNESS_INVALID),
        (
            make_statement(SERVER, replace(GOOD, manifest_sha256="0" * 64)),
            {},
            Reason.STALE_MANIFEST,
        ),
        ("not.a.jws", {}, Reason.FRESHNESS_INVALID),
    ],
)
def test_rejections(statement, kwargs, expected) -> None:
    assert reason(statement, **kwargs) is expected


def test_statement_seq_is_informational() -> None:
    # the server's id is chosen by the uploader; the manifest digest is what binds
    assert reason(make_statement(SERVER, replace(GOOD, seq=CLAIMS.seq + 1))) is None


def test_manifest_key_cannot_stand_in_for_the_freshness_key() -> None:
    # a statement signed with a key the device trusts only for manifests is not accepted
    assert reason(make_statement(SIGNING, GOOD)) is Reason.FRESHNESS_INVALID
