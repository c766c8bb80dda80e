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


# -- explicit answers (issue 14: a statement means exactly what its answer says) --------------
def raw_statement(payload: dict) -> str:
    import json

    from secure_fota.crypto.freshness import FRESHNESS_TYP
    from secure_fota.crypto.jws import CompactSigner

    return CompactSigner(SERVER, FRESHNESS_TYP).sign(json.dumps(payload).encode())


NEWEST = {
    "answer": "newest",
    "device_type": "sensor-v2",
    "seq": CLAIMS.seq,
    "manifest_sha256": GOOD.manifest_sha256,
    "nonce": NONCE,
    "iat": 1_700_000_000,
}


def nothing_new(statement: str | None, *, device_id: str | None = None) -> Reason | None:
    from secure_fota.policy.verifier import check_nothing_new

    try:
        check_nothing_new(
            statement, KEYS, nonce=NONCE, device_type="sensor-v2", device_id=device_id
        )
    except ReleaseRejected as exc:
        return exc.reason
    return None


def test_hand_made_newest_is_accepted() -> None:
    assert reason(raw_statement(NEWEST)) is None


@pytest.mark.parametrize(
    ("payload", "expected"),
    [
        ({k: v for k, v in NEWEST.items() if k != "answer"}, Reason.FRESHNESS_INVALID),
        (NEWEST | {"answer": "maybe"}, Reason.FRESHNESS_INVALID),
        (NEWEST | {"answer": "NEWEST"}, Reason.FRESHNESS_INVALID),
        (NEWEST | {"extra": 1}, Reason.FRESHNESS_INVALID),
        ({k: v for k, v in NEWEST.items() if k != "seq"}, Reason.FRESHNESS_INVALID),
        ({k: v for k, v in NEWEST.items() if k != "manifest_sha256"}, Reason.FRESHNESS_INVALID),
        (NEWEST | {"device_id": "dev-1"}, Reason.FRESHNESS_INVALID),  # for another device
        (NEWEST | {"device_id": "../x"}, Reason.FRESHNESS_INVALID),
        ({"answer": "none", "device_type": "sensor-v2", "nonce": NONCE, "iat": 1},
         Reason.STALE_MANIFEST),  # "no release" next to a served manifest
    ],
)  # fmt: skip
def test_answer_rules_on_a_manifest(payload: dict, expected: Reason) -> None:
    assert reason(raw_statement(payload)) is expected


def test_nothing_new_needs_a_none_answer_for_this_poll() -> None:
    signer = FreshnessSigner(SERVER)
    assert nothing_new(signer.sign_none(device_type="sensor-v2", nonce=NONCE)) is None
    assert nothing_new(None) is Reason.FRESHNESS_INVALID
    assert nothing_new(signer.sign_none(device_type="sensor-v2", nonce="1" * 32)) is (
        Reason.FRESHNESS_INVALID
    )
    assert nothing_new(signer.sign_none(device_type="other", nonce=NONCE)) is (
        Reason.FRESHNESS_INVALID
    )
    assert nothing_new(make_statement(SERVER, GOOD)) is Reason.STALE_MANIFEST
    none = {"answer": "none", "device_type": "sensor-v2", "nonce": NONCE, "iat": 1}
    assert nothing_new(raw_statement(none | {"seq": 1})) is Reason.FRESHNESS_INVALID
    with_id = signer.sign_none(device_type="sensor-v2", nonce=NONCE, device_id="dev-1")
    assert nothing_new(with_id) is Reason.FRESHNESS_INVALID
    assert nothing_new(with_id, device_id="dev-1") is None
    assert nothing_new(with_id, device_id="dev-10") is Reason.FRESHNESS_INVALID
    # a device that sent its id refuses a statement naming no device: it may answer a poll
    # stripped of the id on the way (docs/formats.md §7 step 2)
    assert (
        nothing_new(signer.sign_none(device_type="sensor-v2", nonce=NONCE), device_id="dev-1")
        is Reason.FRESHNESS_INVALID
    )


def test_check_manifest_passes_the_device_id_to_the_freshness_check() -> None:
    # the device's own id (the one its poll sent) is what a statement may name (§7 step 2)
    from secure_fota.policy.decision import DeviceFacts
    from secure_fota.policy.verifier import check_manifest

    facts = DeviceFacts(
        device_type="sensor-v2", chip_id=CLAIMS.chip_id, installed_seq=0, secure_version=0
    )

    def verdict(statement: str, device_id: str | None) -> Reason | None:
        try:
            check_manifest(
                TOKEN, KEYS, facts, now=None, freshness=(statement, NONCE), device_id=device_id
            )
        except ReleaseRejected as exc:
            return exc.reason
        return None

    named = make_statement(SERVER, replace(GOOD, device_id="dev-1"))
    assert verdict(named, "dev-1") is None
    assert verdict(named, "dev-2") is Reason.FRESHNESS_INVALID
    assert verdict(named, None) is Reason.FRESHNESS_INVALID
    assert verdict(make_statement(SERVER, GOOD), "dev-1") is Reason.FRESHNESS_INVALID
    assert verdict(make_statement(SERVER, GOOD), None) is None
