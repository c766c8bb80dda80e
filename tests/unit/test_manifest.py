from __future__ import annotations

import base64
import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from joserfc import jwe
from joserfc.jwk import RSAKey

from secure_fota.crypto.jws import jose_key, sign_compact
from secure_fota.crypto.keys import generate_private_key, key_id
from secure_fota.crypto.manifest import open_manifest, seal_manifest
from secure_fota.errors import FormatError, VerificationError
from secure_fota.formats.manifest import MANIFEST_TYP, ManifestClaims
from secure_fota.reasons import Reason

SIGNING = generate_private_key("rsa3072")
EC_SIGNING = generate_private_key("ecdsa256")
ENCRYPTION = generate_private_key("rsa4096")
TRUSTED = {key_id(SIGNING): SIGNING.public_key(), key_id(EC_SIGNING): EC_SIGNING.public_key()}

BASE = {
    "fmt": 1,
    "fw_name": "fw",
    "device_type": "sensor-v2",
    "seq": 7,
    "version": "1.2.3",
    "project": "demo",
    "idf_ver": "v5.2.2",
    "secure_version": 1,
    "chip_id": 0,
    "app_elf_sha256": "ab" * 32,
    "image_size": 1000,
    "image_sha256": "cd" * 32,
    "enc_size": 1512,
    "enc_sha256": "ef" * 32,
    "secure_boot": "v1",
    "iat": 1_700_000_000,
}
CLAIMS = ManifestClaims.from_dict(BASE)
TOKEN = seal_manifest(CLAIMS, signing_key=SIGNING, encryption_key=ENCRYPTION.public_key())


def opened(token: bytes):
    return open_manifest(token, decryption_key=ENCRYPTION, trusted=TRUSTED)


def reason_of(token: bytes) -> Reason:
    try:
        opened(token)
    except FormatError as exc:
        assert exc.reason is not None
        return exc.reason
    except VerificationError as exc:
        return Reason.MANIFEST_DECRYPT_FAILED if "decryption" in exc.check else Reason.BAD_SIGNATURE
    raise AssertionError("accepted")


def encrypt(payload: bytes, header: dict | None = None) -> bytes:
    protected = header or {"alg": "RSA-OAEP-256", "enc": "A256GCM", "cty": "JWT"}
    key = RSAKey(ENCRYPTION.public_key(), ENCRYPTION.public_key())
    return jwe.encrypt_compact(
        protected, payload, key, algorithms=[protected["alg"], protected["enc"]]
    ).encode()


def test_round_trip_ps256_and_es256() -> None:
    result = opened(TOKEN)
    assert result.claims == CLAIMS
    assert result.alg == "PS256"
    assert result.kid == key_id(SIGNING)
    es = seal_manifest(CLAIMS, signing_key=EC_SIGNING, encryption_key=ENCRYPTION.public_key())
    assert opened(es).alg == "ES256"


def test_claims_json_is_canonical() -> None:
    assert json.loads(CLAIMS.to_json()) == BASE
    assert CLAIMS.to_json() == ManifestClaims.from_dict(json.loads(CLAIMS.to_json())).to_json()


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"fmt": 2}, Reason.UNSUPPORTED_FORMAT),
        ({"fmt": "1"}, Reason.INVALID_CLAIMS),
        ({"seq": 0}, Reason.INVALID_CLAIMS),
        ({"seq": 2**31}, Reason.INVALID_CLAIMS),
        ({"seq": 7.5}, Reason.INVALID_CLAIMS),
        ({"seq": True}, Reason.INVALID_CLAIMS),
        ({"device_type": "../etc"}, Reason.INVALID_CLAIMS),
        ({"device_type": "x" * 65}, Reason.INVALID_CLAIMS),
        ({"version": "v" * 32}, Reason.INVALID_CLAIMS),
        ({"version": "a\nb"}, Reason.INVALID_CLAIMS),
        ({"image_sha256": "CD" * 32}, Reason.INVALID_CLAIMS),
        ({"enc_size": 1513}, Reason.INVALID_CLAIMS),
        ({"secure_boot": "v3"}, Reason.INVALID_CLAIMS),
        ({"exp": 1_600_000_000}, Reason.INVALID_CLAIMS),
        ({"chip_id": 70000}, Reason.INVALID_CLAIMS),
    ],
)
def test_claim_validation(change: dict, reason: Reason) -> None:
    with pytest.raises(FormatError) as info:
        ManifestClaims.from_dict({**BASE, **change})
    assert info.value.reason is reason


@pytest.mark.parametrize("missing", sorted(BASE))
def test_every_claim_is_required(missing: str) -> None:
    claims = dict(BASE)
    del claims[missing]
    with pytest.raises(FormatError):
        ManifestClaims.from_dict(claims)


def test_unknown_claims_are_ignored() -> None:
    assert ManifestClaims.from_dict({**BASE, "future": [1, 2]}) == CLAIMS


def test_second_library_decrypts_and_verifies_our_manifest() -> None:
    from jwcrypto import jwe as cjwe
    from jwcrypto import jwk, jws

    from secure_fota.crypto.keys import private_pem, public_pem

    envelope = cjwe.JWE()
    envelope.deserialize(TOKEN.decode(), key=jwk.JWK.from_pem(private_pem(ENCRYPTION)))
    assert json.loads(envelope.objects["protected"]) == {
        "alg": "RSA-OAEP-256",
        "enc": "A256GCM",
        "cty": "JWT",
    }
    signed = jws.JWS()
    signed.deserialize(envelope.payload.decode())
    signed.verify(jwk.JWK.from_pem(public_pem(SIGNING)), alg="PS256")
    assert json.loads(signed.payload) == BASE
    header = json.loads(signed.objects["protected"])
    assert header == {"alg": "PS256", "kid": key_id(SIGNING), "typ": MANIFEST_TYP}


def test_manifest_made_by_second_library_is_accepted() -> None:
    from jwcrypto import jwe as cjwe
    from jwcrypto import jwk, jws

    from secure_fota.crypto.keys import private_pem, public_pem

    signer = jws.JWS(CLAIMS.to_json())
    signer.add_signature(
        jwk.JWK.from_pem(private_pem(SIGNING)),
        protected={"alg": "PS256", "kid": key_id(SIGNING), "typ": MANIFEST_TYP},
    )
    outer = cjwe.JWE(
        signer.serialize(compact=True).encode(),
        protected={"alg": "RSA-OAEP-256", "enc": "A256GCM", "cty": "JWT"},
    )
    outer.add_recipient(jwk.JWK.from_pem(public_pem(ENCRYPTION)))
    assert opened(outer.serialize(compact=True).encode()).claims == CLAIMS


def test_envelope_rejections_have_their_reasons() -> None:
    parts = TOKEN.split(b".")
    assert reason_of(b"x" * 20000) is Reason.MANIFEST_TOO_LARGE
    assert reason_of(b"a.b.c") is Reason.MANIFEST_MALFORMED
    assert reason_of(b"!!." + b".".join(parts[1:])) is Reason.MANIFEST_MALFORMED
    assert reason_of(TOKEN + b"\n") is Reason.MANIFEST_MALFORMED
    tampered_ct = bytearray(parts[3])
    tampered_ct[10] = ord("A") if tampered_ct[10] != ord("A") else ord("B")
    assert (
        reason_of(b".".join([*parts[:3], bytes(tampered_ct), parts[4]]))
        is Reason.MANIFEST_DECRYPT_FAILED
    )
    tampered_tag = bytearray(parts[4])
    tampered_tag[0] = ord("A") if tampered_tag[0] != ord("A") else ord("B")
    assert reason_of(b".".join([*parts[:4], bytes(tampered_tag)])) is Reason.MANIFEST_DECRYPT_FAILED
    other = generate_private_key("rsa4096")
    foreign = seal_manifest(CLAIMS, signing_key=SIGNING, encryption_key=other.public_key())
    assert reason_of(foreign) is Reason.MANIFEST_DECRYPT_FAILED


def test_wrong_algorithms_are_refused() -> None:
    header = {"alg": "RSA-OAEP", "enc": "A256GCM", "cty": "JWT"}
    inner = sign_compact(CLAIMS.to_json(), SIGNING, MANIFEST_TYP).encode()
    assert reason_of(encrypt(inner, header)) is Reason.UNSUPPORTED_ALGORITHM
    header = {"alg": "RSA-OAEP-256", "enc": "A128GCM", "cty": "JWT"}
    assert reason_of(encrypt(inner, header)) is Reason.UNSUPPORTED_ALGORITHM
    none_alg = (
        base64.urlsafe_b64encode(
            json.dumps({"alg": "none", "kid": key_id(SIGNING), "typ": MANIFEST_TYP}).encode()
        ).rstrip(b"=")
        + b"."
        + base64.urlsafe_b64encode(CLAIMS.to_json()).rstrip(b"=")
        + b"."
    )
    assert reason_of(encrypt(none_alg)) is Reason.UNSUPPORTED_ALGORITHM


def test_signature_rejections() -> None:
    stranger = generate_private_key("rsa3072")
    assert (
        reason_of(encrypt(sign_compact(CLAIMS.to_json(), stranger, MANIFEST_TYP).encode()))
        is Reason.UNKNOWN_KEY
    )
    good = sign_compact(CLAIMS.to_json(), SIGNING, MANIFEST_TYP)
    head, _payload, sig = good.split(".")
    forged_payload = (
        base64.urlsafe_b64encode(ManifestClaims.from_dict({**BASE, "seq": 8}).to_json())
        .rstrip(b"=")
        .decode()
    )
    assert reason_of(encrypt(f"{head}.{forged_payload}.{sig}".encode())) is Reason.BAD_SIGNATURE
    wrong_typ = sign_compact(CLAIMS.to_json(), SIGNING, "JWT")
    assert reason_of(encrypt(wrong_typ.encode())) is Reason.MANIFEST_MALFORMED


def test_claims_that_are_not_an_object() -> None:
    token = encrypt(sign_compact(b"[1,2]", SIGNING, MANIFEST_TYP).encode())
    assert reason_of(token) is Reason.INVALID_CLAIMS
    dup = b'{"fmt":1,"fmt":1}'
    assert (
        reason_of(encrypt(sign_compact(dup, SIGNING, MANIFEST_TYP).encode()))
        is Reason.INVALID_CLAIMS
    )


@settings(max_examples=150, deadline=None)
@given(cut=st.integers(0, len(TOKEN) - 1))
def test_every_truncation_is_refused(cut: int) -> None:
    with pytest.raises((FormatError, VerificationError)):
        opened(TOKEN[:cut])


@settings(max_examples=150, deadline=None)
@given(position=st.integers(0, len(TOKEN) - 1), value=st.integers(0, 255))
def test_every_single_byte_change_is_refused(position: int, value: int) -> None:
    data = bytearray(TOKEN)
    if data[position] == value:
        return
    data[position] = value
    try:
        result = opened(bytes(data))
    except (FormatError, VerificationError):
        return
    # base64url has four spellings of the last character's padding bits; anything else that
    # still opens must decode to exactly the same claims
    assert result.claims == CLAIMS


# -- ECDH-ES+A256KW (fota keys generate --manifest-encryption ec-p256) -------------------------

EC_ENCRYPTION = generate_private_key("ecdsa256")
EC_TOKEN = seal_manifest(CLAIMS, signing_key=SIGNING, encryption_key=EC_ENCRYPTION.public_key())


def ec_reason_of(token: bytes) -> Reason:
    try:
        open_manifest(token, decryption_key=EC_ENCRYPTION, trusted=TRUSTED)
    except FormatError as exc:
        assert exc.reason is not None
        return exc.reason
    except VerificationError:
        return Reason.MANIFEST_DECRYPT_FAILED
    raise AssertionError("accepted")


def _ec_header(token: bytes) -> dict:
    part = token.split(b".")[0]
    return json.loads(base64.urlsafe_b64decode(part + b"=" * (-len(part) % 4)))


def test_ec_manifest_round_trip_and_header() -> None:
    header = _ec_header(EC_TOKEN)
    assert {k: header[k] for k in ("alg", "enc", "cty")} == {
        "alg": "ECDH-ES+A256KW",
        "enc": "A256GCM",
        "cty": "JWT",
    }
    assert set(header) == {"alg", "enc", "cty", "epk"}
    assert set(header["epk"]) == {"kty", "crv", "x", "y"}
    assert len(base64.urlsafe_b64decode(EC_TOKEN.split(b".")[1] + b"====")) == 40
    result = open_manifest(EC_TOKEN, decryption_key=EC_ENCRYPTION, trusted=TRUSTED)
    assert result.claims == CLAIMS


def test_the_device_key_decides_the_jwe_algorithm() -> None:
    assert ec_reason_of(TOKEN) is Reason.UNSUPPORTED_ALGORITHM
    assert reason_of(EC_TOKEN) is Reason.UNSUPPORTED_ALGORITHM


def test_second_library_decrypts_our_ec_manifest() -> None:
    from jwcrypto import jwe as cjwe
    from jwcrypto import jwk

    from secure_fota.crypto.keys import private_pem

    envelope = cjwe.JWE()
    envelope.deserialize(EC_TOKEN.decode(), key=jwk.JWK.from_pem(private_pem(EC_ENCRYPTION)))
    assert json.loads(envelope.objects["protected"])["alg"] == "ECDH-ES+A256KW"
    assert envelope.payload.decode().count(".") == 2


def test_ec_manifest_made_by_second_library_is_accepted() -> None:
    from jwcrypto import jwe as cjwe
    from jwcrypto import jwk

    from secure_fota.crypto.keys import public_pem

    signed = sign_compact(CLAIMS.to_json(), SIGNING, MANIFEST_TYP)
    outer = cjwe.JWE(
        signed.encode(), protected={"alg": "ECDH-ES+A256KW", "enc": "A256GCM", "cty": "JWT"}
    )
    outer.add_recipient(jwk.JWK.from_pem(public_pem(EC_ENCRYPTION)))
    token = outer.serialize(compact=True).encode()
    assert open_manifest(token, decryption_key=EC_ENCRYPTION, trusted=TRUSTED).claims == CLAIMS


def _with_epk(epk: object, extra: dict | None = None) -> bytes:
    """EC_TOKEN with its header's epk replaced (the AAD changes, but every check on the epk
    runs before decryption)."""
    header = _ec_header(EC_TOKEN)
    if epk is None:
        del header["epk"]
    else:
        header["epk"] = epk
    header |= extra or {}
    encoded = base64.urlsafe_b64encode(json.dumps(header).encode()).rstrip(b"=")
    return b".".join([encoded, *EC_TOKEN.split(b".")[1:]])


def test_ec_epk_is_checked_before_any_key_agreement() -> None:
    epk = _ec_header(EC_TOKEN)["epk"]
    p256 = 2**256 - 2**224 + 2**192 + 2**96 - 1
    y = int.from_bytes(base64.urlsafe_b64decode(epk["y"] + "=="), "big")
    off = base64.urlsafe_b64encode(((y + 1) % 2**256).to_bytes(32, "big")).rstrip(b"=").decode()
    as_p = base64.urlsafe_b64encode(p256.to_bytes(32, "big")).rstrip(b"=").decode()
    failed = Reason.MANIFEST_DECRYPT_FAILED
    assert ec_reason_of(_with_epk(epk | {"y": off})) is failed
    assert ec_reason_of(_with_epk(epk | {"x": as_p})) is failed
    assert ec_reason_of(_with_epk(None)) is failed
    assert ec_reason_of(_with_epk("P-256")) is failed
    assert ec_reason_of(_with_epk(epk | {"d": epk["x"]})) is failed
    assert ec_reason_of(_with_epk(epk | {"crv": "P-384"})) is failed
    assert ec_reason_of(_with_epk(epk | {"kty": "OKP"})) is failed
    assert ec_reason_of(_with_epk(epk | {"x": epk["x"][1:]})) is failed
    assert ec_reason_of(_with_epk(epk, {"apu": "QQ"})) is Reason.MANIFEST_MALFORMED
    parts = EC_TOKEN.split(b".")
    short = base64.urlsafe_b64encode(b"\0" * 32).rstrip(b"=")
    assert ec_reason_of(b".".join([parts[0], short, *parts[2:]])) is failed


def test_keys_generate_records_the_manifest_encryption(tmp_path) -> None:
    from secure_fota.keys.directory import load_author_keys, load_device_keys
    from secure_fota.keys.generate import generate_key_set

    generate_key_set(tmp_path, manifest_encryption="ec-p256")
    author = load_author_keys(tmp_path, secure_boot_version="v1")
    device = load_device_keys(tmp_path)
    token = seal_manifest(
        CLAIMS, signing_key=author.manifest_signing, encryption_key=author.manifest_encryption
    )
    assert _ec_header(token)["alg"] == "ECDH-ES+A256KW"
    trusted = device.manifest_signing
    assert open_manifest(token, decryption_key=device.manifest_decryption, trusted=trusted)


# -- the author's writer (crypto.jose_writer: cryptography alone) --------------------------------


def test_release_path_imports_no_jose_library() -> None:
    """``fota author release`` seals with crypto.jose_writer; joserfc's import (and its eager
    cryptography.x509) would cost about a sixth of the run (docs/PERFORMANCE.md §1)."""
    import subprocess
    import sys

    code = (
        "import sys, secure_fota.cli.main, secure_fota.cli.author, secure_fota.author.release, "
        "secure_fota.keys.directory; "
        "bad = sorted(m for m in sys.modules if m.startswith(('joserfc', 'jwcrypto', "
        "'cryptography.x509', 'rich', 'httpx'))); print(bad); sys.exit(1 if bad else 0)"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stdout + done.stderr


@pytest.mark.parametrize("signer", ["rsa", "ec"])
@pytest.mark.parametrize("encryption", ["rsa", "ec"])
def test_written_manifests_open_with_both_libraries(signer: str, encryption: str) -> None:
    from jwcrypto import jwe as cjwe
    from jwcrypto import jwk, jws

    from secure_fota.crypto.keys import private_pem, public_pem

    signing = SIGNING if signer == "rsa" else EC_SIGNING
    enc_key = ENCRYPTION if encryption == "rsa" else EC_ENCRYPTION
    rotations = ("a.b.c",) if signer == "ec" else ()
    token = seal_manifest(
        CLAIMS, signing_key=signing, encryption_key=enc_key.public_key(), rotations=rotations
    )
    # jwcrypto
    envelope = cjwe.JWE()
    envelope.deserialize(token.decode(), key=jwk.JWK.from_pem(private_pem(enc_key)))
    signed = jws.JWS()
    signed.deserialize(envelope.payload.decode())
    alg = "PS256" if signer == "rsa" else "ES256"
    signed.verify(jwk.JWK.from_pem(public_pem(signing)), alg=alg)
    assert json.loads(signed.payload) == BASE
    header = json.loads(signed.objects["protected"])
    assert header == {"alg": alg, "kid": key_id(signing), "typ": MANIFEST_TYP} | (
        {"rot": ["a.b.c"]} if rotations else {}
    )
    # joserfc (our reader), both layers
    outer = jwe.decrypt_compact(token, jose_key(enc_key), algorithms=[_alg(enc_key), "A256GCM"])
    assert outer.plaintext == envelope.payload
    if not rotations:
        opened_ = open_manifest(token, decryption_key=enc_key, trusted=TRUSTED)
        assert opened_.claims == CLAIMS and opened_.alg == alg


def _alg(key: object) -> str:
    from cryptography.hazmat.primitives.asymmetric import rsa

    return "RSA-OAEP-256" if isinstance(key, rsa.RSAPrivateKey) else "ECDH-ES+A256KW"
