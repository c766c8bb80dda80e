"""The manifest envelope: claims signed (JWS compact) and then encrypted (JWE compact).

* inner JWS: header ``{"alg": "PS256"|"ES256", "kid": <hex SHA-256 of the signer's SPKI>,
  "typ": "fota-manifest+jwt"}``, payload the claims as JSON;
* outer JWE: header ``{"alg": "RSA-OAEP-256", "enc": "A256GCM", "cty": "JWT"}``, encrypted
  for the fleet's manifest-encryption key; with an EC P-256 key (``fota keys generate
  --manifest-encryption ec-p256``) ``{"alg": "ECDH-ES+A256KW", "enc": "A256GCM", "cty": "JWT",
  "epk": {...}}`` instead. The device's key decides which ``alg`` it accepts.

Opening runs the checks in a fixed order, each failure with its own :class:`Reason`, before
any claim is believed: size, structure, algorithms, decryption, key id, signature, claims.
The C core runs the same order (docs/formats.md). Sealing (:func:`seal_manifest`, re-exported
here) lives in :mod:`secure_fota.crypto.manifest_seal`, which does not import joserfc.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Final

from cryptography.hazmat.primitives.asymmetric import ec, rsa
from joserfc import jwe
from joserfc.errors import JoseError

from secure_fota.crypto.jose_writer import JWE_ALG_EC, JWE_ALG_RSA, JWE_ENC, jwe_alg
from secure_fota.crypto.jws import (
    MANIFEST_HEADER,
    TrustedKeys,
    jose_key,
    open_signed,
    read_header,
    sign_compact,
)
from secure_fota.crypto.key_rotation import KeySet, advance
from secure_fota.crypto.keys import ManifestDecryptionKey
from secure_fota.crypto.manifest_seal import seal_manifest
from secure_fota.errors import FormatError, VerificationError
from secure_fota.formats.jose_compact import b64url_decode, parse_json_object, split_compact
from secure_fota.formats.manifest import MANIFEST_TYP, ManifestClaims
from secure_fota.limits import MAX_MANIFEST_SIZE, MAX_ROTATIONS
from secure_fota.reasons import Reason

__all__ = [
    "JWE_ALG",
    "JWE_ALG_EC",
    "JWE_ENC",
    "OpenedManifest",
    "TrustedKeys",
    "jwe_alg",
    "open_manifest",
    "seal_manifest",
    "sign_compact",
]

#: the outer JWE's key management with an RSA / an EC P-256 manifest-encryption key
JWE_ALG: Final = JWE_ALG_RSA
#: longest encoded JWE protected header accepted
MAX_JWE_HEADER: Final = 1024
#: the only members a manifest's JWE header may have (``epk`` only with ECDH-ES+A256KW)
_JWE_HEADER: Final = frozenset({"alg", "enc", "cty", "kid"})
_JWE_HEADER_EC: Final = _JWE_HEADER | {"epk"}
#: the members of an ``epk`` (an uncompressed P-256 point), exactly
_EPK_MEMBERS: Final = frozenset({"kty", "crv", "x", "y"})
#: bytes of an A256KW-wrapped 32-byte content key
_WRAPPED_CEK: Final = 40


@dataclass(frozen=True, slots=True)
class OpenedManifest:
    """A decrypted, signature-checked manifest."""

    claims: ManifestClaims
    kid: str
    alg: str
    raw_claims: dict[str, Any]
    #: the key set after walking the header's rotation statements (commit it on install)
    keyset: KeySet


def _reject(reason: Reason, message: str) -> FormatError:
    return FormatError("manifest", message, reason=reason)


def _check_epk(epk: object) -> None:
    """An ``epk`` is exactly ``{"kty": "EC", "crv": "P-256", "x", "y"}`` with 32-byte
    coordinates of a point on the curve (an off-curve point would leak the device's key)."""
    failed = Reason.MANIFEST_DECRYPT_FAILED
    if not isinstance(epk, dict) or set(epk) != _EPK_MEMBERS:
        raise _reject(failed, "JWE epk is not an EC public key of exactly kty, crv, x and y")
    if epk["kty"] != "EC" or epk["crv"] != "P-256":
        raise _reject(failed, "JWE epk is not a P-256 key")
    coordinates = []
    for name in ("x", "y"):
        value = epk[name]
        raw = (
            b64url_decode(f"JWE epk {name}", value, reason=failed)
            if isinstance(value, str)
            else b""
        )
        if len(raw) != 32:
            raise _reject(failed, f"JWE epk {name} is not 32 bytes of base64url")
        coordinates.append(raw)
    try:
        ec.EllipticCurvePublicKey.from_encoded_point(
            ec.SECP256R1(), b"\x04" + coordinates[0] + coordinates[1]
        )
    except ValueError:
        raise _reject(failed, "JWE epk is not a point on P-256") from None


def _decrypt(token: bytes, decryption_key: ManifestDecryptionKey) -> bytes:
    parts = split_compact("manifest", token, 5)
    if len(parts[0]) > MAX_JWE_HEADER:
        raise _reject(Reason.MANIFEST_MALFORMED, f"JWE header is over {MAX_JWE_HEADER} characters")
    header = parse_json_object("manifest JWE header", b64url_decode("JWE header", parts[0]))
    alg = jwe_alg(decryption_key)
    if header.get("alg") != alg or header.get("enc") != JWE_ENC:
        raise _reject(
            Reason.UNSUPPORTED_ALGORITHM,
            f"JWE uses alg={header.get('alg')!r} enc={header.get('enc')!r}, "
            f"expected {alg} and {JWE_ENC}",
        )
    if "zip" in header or "crit" in header:
        raise _reject(Reason.UNSUPPORTED_ALGORITHM, "JWE header uses 'zip' or 'crit'")
    if header.get("cty") != "JWT":
        raise _reject(Reason.MANIFEST_MALFORMED, "JWE header cty is not 'JWT'")
    unknown = sorted(set(header) - (_JWE_HEADER_EC if alg == JWE_ALG_EC else _JWE_HEADER))
    if unknown:
        raise _reject(Reason.MANIFEST_MALFORMED, f"JWE header has unknown members {unknown}")
    for index, name, size in ((2, "IV", 12), (4, "tag", 16)):
        if len(b64url_decode(f"JWE {name}", parts[index])) != size:
            raise _reject(Reason.MANIFEST_MALFORMED, f"JWE {name} is not {size} bytes")
    wrapped = len(b64url_decode("JWE encrypted key", parts[1]))
    if isinstance(decryption_key, rsa.RSAPrivateKey):
        if wrapped != decryption_key.key_size // 8:
            raise _reject(Reason.MANIFEST_DECRYPT_FAILED, "JWE encrypted key does not fit our key")
    else:
        if wrapped != _WRAPPED_CEK:
            raise _reject(Reason.MANIFEST_DECRYPT_FAILED, "JWE encrypted key is not 40 bytes")
        _check_epk(header.get("epk"))
    b64url_decode("JWE ciphertext", parts[3])
    try:
        opened = jwe.decrypt_compact(token, jose_key(decryption_key), algorithms=[alg, JWE_ENC])
    except (JoseError, ValueError) as exc:
        raise VerificationError("manifest decryption") from exc
    if opened.plaintext is None:
        raise VerificationError("manifest decryption")
    return opened.plaintext


def _keyset_for(signed: bytes, keyset: KeySet) -> KeySet:
    """Walk the ``rot`` chain of a manifest's JWS header from the device's key set."""
    _, header = read_header(signed, "manifest")
    if "rot" not in header:
        return keyset
    chain = header["rot"]
    if (
        not isinstance(chain, list)
        or not 1 <= len(chain) <= MAX_ROTATIONS
        or not all(isinstance(item, str) for item in chain)
    ):
        raise _reject(Reason.MANIFEST_MALFORMED, f"rot must list 1 to {MAX_ROTATIONS} statements")
    return advance(keyset, chain)


def open_manifest(
    token: bytes,
    *,
    decryption_key: ManifestDecryptionKey,
    trusted: TrustedKeys,
    keyset_version: int = 1,
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
    keyset = _keyset_for(signed, KeySet(version=keyset_version, keys=trusted))
    payload, kid, alg = open_signed(signed, keyset.keys, MANIFEST_TYP, allowed=MANIFEST_HEADER)
    raw = parse_json_object("manifest claims", payload, reason=Reason.INVALID_CLAIMS)
    return OpenedManifest(
        claims=ManifestClaims.from_dict(raw), kid=kid, alg=alg, raw_claims=raw, keyset=keyset
    )
