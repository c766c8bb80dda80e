"""The manifest envelope: claims signed (JWS compact) and then encrypted (JWE compact).

* inner JWS: header ``{"alg": "PS256"|"ES256", "kid": <hex SHA-256 of the signer's SPKI>,
  "typ": "fota-manifest+jwt"}``, payload the claims as JSON;
* outer JWE: header ``{"alg": "RSA-OAEP-256", "enc": "A256GCM", "cty": "JWT"}``, encrypted
  for the fleet's manifest-encryption key.

Opening runs the checks in a fixed order, each failure with its own :class:`Reason`, before
any claim is believed: size, structure, algorithms, decryption, key id, signature, claims.
The C core runs the same order (docs/formats.md).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

from cryptography.hazmat.primitives.asymmetric import ec, rsa
from joserfc import jwe, jws
from joserfc.errors import JoseError
from joserfc.jwk import ECKey, RSAKey

from secure_fota.crypto.keys import PrivateKey, PublicKey, key_id
from secure_fota.errors import FormatError, KeyMaterialError, VerificationError
from secure_fota.formats.jose_compact import b64url_decode, parse_json_object, split_compact
from secure_fota.formats.manifest import MANIFEST_TYP, ManifestClaims
from secure_fota.limits import MAX_MANIFEST_SIZE
from secure_fota.reasons import Reason

__all__ = [
    "JWE_ALG",
    "JWE_ENC",
    "OpenedManifest",
    "TrustedKeys",
    "open_manifest",
    "open_signed",
    "seal_manifest",
    "sign_compact",
]

JWE_ALG: Final = "RSA-OAEP-256"
JWE_ENC: Final = "A256GCM"
SIGNING_ALGS: Final = ("PS256", "ES256")

#: trusted verification keys by kid
TrustedKeys = Mapping[str, PublicKey]


def _jose_key(key: PrivateKey | PublicKey) -> RSAKey | ECKey:
    if isinstance(key, rsa.RSAPrivateKey | rsa.RSAPublicKey):
        return RSAKey(key, key)
    return ECKey(key, key)


def signing_alg(key: PrivateKey | PublicKey) -> str:
    """PS256 for RSA keys, ES256 for P-256 keys."""
    if isinstance(key, rsa.RSAPrivateKey | rsa.RSAPublicKey):
        return "PS256"
    if isinstance(key, ec.EllipticCurvePrivateKey | ec.EllipticCurvePublicKey) and (
        key.curve.name == "secp256r1"
    ):
        return "ES256"
    raise KeyMaterialError("manifest signing needs an RSA or EC P-256 key")


def sign_compact(payload: bytes, key: PrivateKey, typ: str) -> str:
    """A JWS compact serialisation of ``payload`` with ``kid`` and explicit ``typ``."""
    alg = signing_alg(key)
    header = {"alg": alg, "kid": key_id(key), "typ": typ}
    return jws.serialize_compact(header, payload, _jose_key(key), algorithms=[alg])


def seal_manifest(
    claims: ManifestClaims, *, signing_key: PrivateKey, encryption_key: rsa.RSAPublicKey
) -> bytes:
    """Sign the claims, then encrypt the signed token for the fleet. Returns ASCII bytes."""
    if not isinstance(encryption_key, rsa.RSAPublicKey):
        raise KeyMaterialError("manifest encryption needs an RSA public key")
    signed = sign_compact(claims.to_json(), signing_key, MANIFEST_TYP)
    header = {"alg": JWE_ALG, "enc": JWE_ENC, "cty": "JWT"}
    token = jwe.encrypt_compact(
        header, signed.encode("ascii"), _jose_key(encryption_key), algorithms=[JWE_ALG, JWE_ENC]
    )
    return token.encode("ascii")


@dataclass(frozen=True, slots=True)
class OpenedManifest:
    """A decrypted, signature-checked manifest."""

    claims: ManifestClaims
    kid: str
    alg: str
    raw_claims: dict[str, Any]


def _reject(reason: Reason, message: str) -> FormatError:
    return FormatError("manifest", message, reason=reason)


def _decrypt(token: bytes, decryption_key: rsa.RSAPrivateKey) -> bytes:
    parts = split_compact("manifest", token, 5)
    header = parse_json_object("manifest JWE header", b64url_decode("JWE header", parts[0]))
    if header.get("alg") != JWE_ALG or header.get("enc") != JWE_ENC:
        raise _reject(
            Reason.UNSUPPORTED_ALGORITHM,
            f"JWE uses alg={header.get('alg')!r} enc={header.get('enc')!r}, "
            f"expected {JWE_ALG} and {JWE_ENC}",
        )
    if "zip" in header or "crit" in header:
        raise _reject(Reason.UNSUPPORTED_ALGORITHM, "JWE header uses 'zip' or 'crit'")
    if header.get("cty") != "JWT":
        raise _reject(Reason.MANIFEST_MALFORMED, "JWE header cty is not 'JWT'")
    for index, name, size in ((2, "IV", 12), (4, "tag", 16)):
        if len(b64url_decode(f"JWE {name}", parts[index])) != size:
            raise _reject(Reason.MANIFEST_MALFORMED, f"JWE {name} is not {size} bytes")
    if len(b64url_decode("JWE encrypted key", parts[1])) != decryption_key.key_size // 8:
        raise _reject(Reason.MANIFEST_DECRYPT_FAILED, "JWE encrypted key does not fit our key")
    b64url_decode("JWE ciphertext", parts[3])
    try:
        opened = jwe.decrypt_compact(
            token, _jose_key(decryption_key), algorithms=[JWE_ALG, JWE_ENC]
        )
    except (JoseError, ValueError) as exc:
        raise VerificationError("manifest decryption") from exc
    if opened.plaintext is None:
        raise VerificationError("manifest decryption")
    return opened.plaintext


def open_signed(
    token: bytes | str, trusted: TrustedKeys, typ: str, what: str = "manifest"
) -> tuple[bytes, str, str]:
    """Verify a JWS compact token against keys chosen by ``kid``; return (payload, kid, alg).

    Structural problems raise :class:`FormatError` with a reason; a bad signature raises
    :class:`VerificationError`.
    """
    parts = split_compact(what, token, 3)
    header = parse_json_object(f"{what} JWS header", b64url_decode("JWS header", parts[0]))
    alg = header.get("alg")
    if alg not in SIGNING_ALGS or "crit" in header:
        raise FormatError(
            what,
            f"JWS alg {alg!r} is not one of {', '.join(SIGNING_ALGS)}",
            reason=Reason.UNSUPPORTED_ALGORITHM,
        )
    if header.get("typ") != typ:
        raise FormatError(what, f"JWS typ is not {typ!r}", reason=Reason.MANIFEST_MALFORMED)
    kid = header.get("kid")
    key = trusted.get(kid) if isinstance(kid, str) else None
    if key is None or not isinstance(kid, str):
        raise FormatError(what, f"signed by unknown key {kid!r}", reason=Reason.UNKNOWN_KEY)
    payload = b64url_decode("JWS payload", parts[1])
    b64url_decode("JWS signature", parts[2])
    try:
        if signing_alg(key) != alg:
            raise VerificationError(f"{what} signature")
        jws.deserialize_compact(token, _jose_key(key), algorithms=[alg])
    except (JoseError, ValueError, KeyMaterialError) as exc:
        raise VerificationError(f"{what} signature") from exc
    return payload, kid, alg


def open_manifest(
    token: bytes, *, decryption_key: rsa.RSAPrivateKey, trusted: TrustedKeys
) -> OpenedManifest:
    """Decrypt and verify a manifest, returning its validated claims.

    Raises :class:`FormatError` (with ``reason``) or :class:`VerificationError` (mapped by the
    caller to ``manifest_decrypt_failed`` or ``bad_signature``).
    """
    if len(token) > MAX_MANIFEST_SIZE:
        raise _reject(
            Reason.MANIFEST_TOO_LARGE,
            f"{len(token)} bytes is larger than the {MAX_MANIFEST_SIZE}-byte limit",
        )
    signed = _decrypt(token, decryption_key)
    payload, kid, alg = open_signed(signed, trusted, MANIFEST_TYP)
    raw = parse_json_object("manifest claims", payload, reason=Reason.INVALID_CLAIMS)
    return OpenedManifest(claims=ManifestClaims.from_dict(raw), kid=kid, alg=alg, raw_claims=raw)
