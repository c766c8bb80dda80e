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

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Final

from cryptography.hazmat.primitives.asymmetric import rsa
from joserfc import jwe
from joserfc.errors import JoseError

from secure_fota.crypto.jws import (
    MANIFEST_HEADER,
    TrustedKeys,
    jose_key,
    open_signed,
    read_header,
    sign_compact,
)
from secure_fota.crypto.key_rotation import MAX_ROTATIONS, KeySet, advance
from secure_fota.crypto.keys import PrivateKey
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
    "seal_manifest",
]

JWE_ALG: Final = "RSA-OAEP-256"
JWE_ENC: Final = "A256GCM"
#: longest encoded JWE protected header accepted
MAX_JWE_HEADER: Final = 1024
#: the only members a manifest's JWE header may have
_JWE_HEADER: Final = frozenset({"alg", "enc", "cty", "kid"})


def seal_manifest(
    claims: ManifestClaims,
    *,
    signing_key: PrivateKey,
    encryption_key: rsa.RSAPublicKey,
    rotations: Sequence[str] = (),
) -> bytes:
    """Sign the claims, then encrypt the signed token for the fleet. Returns ASCII bytes.

    ``rotations`` are the key-rotation statements leading to ``signing_key``'s key set, oldest
    first; they travel in the JWS header's ``rot`` member.
    """
    if not isinstance(encryption_key, rsa.RSAPublicKey):
        raise KeyMaterialError("manifest encryption needs an RSA public key")
    if len(rotations) > MAX_ROTATIONS:
        raise KeyMaterialError(f"a manifest carries at most {MAX_ROTATIONS} key rotations")
    extra = {"rot": list(rotations)} if rotations else None
    signed = sign_compact(claims.to_json(), signing_key, MANIFEST_TYP, extra)
    header = {"alg": JWE_ALG, "enc": JWE_ENC, "cty": "JWT"}
    token = jwe.encrypt_compact(
        header, signed.encode("ascii"), jose_key(encryption_key), algorithms=[JWE_ALG, JWE_ENC]
    )
    return token.encode("ascii")


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


def _decrypt(token: bytes, decryption_key: rsa.RSAPrivateKey) -> bytes:
    parts = split_compact("manifest", token, 5)
    if len(parts[0]) > MAX_JWE_HEADER:
        raise _reject(Reason.MANIFEST_MALFORMED, f"JWE header is over {MAX_JWE_HEADER} characters")
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
    unknown = sorted(set(header) - _JWE_HEADER)
    if unknown:
        raise _reject(Reason.MANIFEST_MALFORMED, f"JWE header has unknown members {unknown}")
    for index, name, size in ((2, "IV", 12), (4, "tag", 16)):
        if len(b64url_decode(f"JWE {name}", parts[index])) != size:
            raise _reject(Reason.MANIFEST_MALFORMED, f"JWE {name} is not {size} bytes")
    if len(b64url_decode("JWE encrypted key", parts[1])) != decryption_key.key_size // 8:
        raise _reject(Reason.MANIFEST_DECRYPT_FAILED, "JWE encrypted key does not fit our key")
    b64url_decode("JWE ciphertext", parts[3])
    try:
        opened = jwe.decrypt_compact(token, jose_key(decryption_key), algorithms=[JWE_ALG, JWE_ENC])
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
    decryption_key: rsa.RSAPrivateKey,
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
