"""JWS and JWE compact *writing* with ``cryptography`` alone, for the author's release path.

Reading stays with joserfc (:mod:`secure_fota.crypto.jws`, :mod:`secure_fota.crypto.manifest`),
and the tests check every token written here with both joserfc and jwcrypto. Why a writer of our
own: importing joserfc costs ``fota author release`` about a sixth of its whole run (its PEM
support imports ``cryptography.x509`` eagerly), and nothing else can be left out of that run;
figures in docs/PERFORMANCE.md §1. The writer knows exactly what the formats need (RFC 7515,
RFC 7516, RFC 7518): PS256 and ES256 signatures; RSA-OAEP-256 or ECDH-ES+A256KW with A256GCM.
"""

from __future__ import annotations

import base64
import json
import os
from collections.abc import Mapping
from typing import Any, Final

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa, utils
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.concatkdf import ConcatKDFHash
from cryptography.hazmat.primitives.keywrap import aes_key_wrap

from secure_fota.crypto.keys import ManifestEncryptionKey, PrivateKey, PublicKey, key_id
from secure_fota.errors import KeyMaterialError

__all__ = ["JWE_ALG_EC", "JWE_ALG_RSA", "JWE_ENC", "jwe_alg", "seal_jwe", "sign_jws", "signing_alg"]

JWE_ALG_RSA: Final = "RSA-OAEP-256"
JWE_ALG_EC: Final = "ECDH-ES+A256KW"
JWE_ENC: Final = "A256GCM"


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _header(header: Mapping[str, Any]) -> str:
    return _b64(json.dumps(header, separators=(",", ":"), ensure_ascii=False).encode("utf-8"))


def _is_p256(key: PrivateKey | PublicKey) -> bool:
    return isinstance(key, ec.EllipticCurvePrivateKey | ec.EllipticCurvePublicKey) and (
        key.curve.name == "secp256r1"
    )


def signing_alg(key: PrivateKey | PublicKey) -> str:
    """PS256 for RSA keys, ES256 for P-256 keys."""
    if isinstance(key, rsa.RSAPrivateKey | rsa.RSAPublicKey):
        return "PS256"
    if _is_p256(key):
        return "ES256"
    raise KeyMaterialError("signing needs an RSA or EC P-256 key")


def jwe_alg(key: ManifestEncryptionKey | PrivateKey) -> str:
    """The outer JWE's ``alg`` for a manifest-encryption key: RSA-OAEP-256 or ECDH-ES+A256KW."""
    if isinstance(key, rsa.RSAPublicKey | rsa.RSAPrivateKey):
        return JWE_ALG_RSA
    if _is_p256(key):
        return JWE_ALG_EC
    raise KeyMaterialError("manifest encryption needs an RSA-3072/4096 or EC P-256 key")


def sign_jws(
    payload: bytes, key: PrivateKey, typ: str, extra: Mapping[str, Any] | None = None
) -> str:
    """A JWS compact serialisation with header ``{"alg", "kid", "typ", **extra}``: PS256
    (RSASSA-PSS, SHA-256, MGF1-SHA-256, 32-byte salt) or ES256 (r || s, 32 bytes each)."""
    alg = signing_alg(key)
    signing_input = f"{_header({'alg': alg, 'kid': key_id(key), 'typ': typ, **(extra or {})})}"
    signing_input += "." + _b64(payload)
    data = signing_input.encode("ascii")
    if isinstance(key, rsa.RSAPrivateKey):
        pss = padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=32)
        signature = key.sign(data, pss, hashes.SHA256())
    else:
        r, s = utils.decode_dss_signature(key.sign(data, ec.ECDSA(hashes.SHA256())))
        signature = r.to_bytes(32, "big") + s.to_bytes(32, "big")
    return signing_input + "." + _b64(signature)


def _ecdh_es_a256kw(key: ec.EllipticCurvePublicKey, cek: bytes) -> tuple[dict[str, str], bytes]:
    """The ``epk`` member and the wrapped CEK (RFC 7518 §4.6: Concat KDF, no apu/apv)."""
    ephemeral = ec.generate_private_key(ec.SECP256R1())
    point = ephemeral.public_key().public_numbers()
    epk = {
        "kty": "EC",
        "crv": "P-256",
        "x": _b64(point.x.to_bytes(32, "big")),
        "y": _b64(point.y.to_bytes(32, "big")),
    }
    alg = JWE_ALG_EC.encode("ascii")
    other_info = len(alg).to_bytes(4, "big") + alg + bytes(8) + (256).to_bytes(4, "big")
    kek = ConcatKDFHash(hashes.SHA256(), 32, other_info).derive(ephemeral.exchange(ec.ECDH(), key))
    return epk, aes_key_wrap(kek, cek)


def seal_jwe(plaintext: bytes, key: ManifestEncryptionKey, cty: str) -> str:
    """A JWE compact serialisation for ``key`` with header ``{"alg", "enc", "cty"}`` (and
    ``epk``): A256GCM with a random 32-byte CEK and 12-byte IV, AAD the encoded header."""
    alg = jwe_alg(key)
    header: dict[str, Any] = {"alg": alg, "enc": JWE_ENC, "cty": cty}
    cek = os.urandom(32)
    if isinstance(key, rsa.RSAPublicKey):
        oaep = padding.OAEP(
            mgf=padding.MGF1(hashes.SHA256()), algorithm=hashes.SHA256(), label=None
        )
        wrapped = key.encrypt(cek, oaep)
    else:
        header["epk"], wrapped = _ecdh_es_a256kw(key, cek)
    protected = _header(header)
    iv = os.urandom(12)
    sealed = AESGCM(cek).encrypt(iv, plaintext, protected.encode("ascii"))
    parts = (protected, _b64(wrapped), _b64(iv), _b64(sealed[:-16]), _b64(sealed[-16:]))
    return ".".join(parts)
