"""What an attacker can build without the author's keys: JWS tokens with any header, signed by
any key (or by none), sealed for the fleet with its public manifest-encryption key."""

from __future__ import annotations

import base64
import json
from typing import Any

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa, utils
from joserfc import jwe

from secure_fota.crypto.jws import jose_key
from secure_fota.crypto.keys import PrivateKey, key_id


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def raw_jws(header: dict[str, Any], payload: bytes, key: PrivateKey | None) -> str:
    """A JWS compact token; ``key`` None gives an empty signature (``alg: none`` style)."""
    signing_input = f"{b64(json.dumps(header).encode())}.{b64(payload)}".encode()
    if key is None:
        signature = b""
    elif isinstance(key, rsa.RSAPrivateKey):
        signature = key.sign(
            signing_input, padding.PSS(padding.MGF1(hashes.SHA256()), 32), hashes.SHA256()
        )
    else:
        assert isinstance(key, ec.EllipticCurvePrivateKey)
        r, s = utils.decode_dss_signature(key.sign(signing_input, ec.ECDSA(hashes.SHA256())))
        size = (key.curve.key_size + 7) // 8
        signature = r.to_bytes(size, "big") + s.to_bytes(size, "big")
    return f"{signing_input.decode()}.{b64(signature)}"


def seal_for_fleet(signed: str, encryption_pub: rsa.RSAPublicKey) -> bytes:
    """Encrypt a JWS for the fleet: anyone can, the manifest-encryption key is public."""
    header = {"alg": "RSA-OAEP-256", "enc": "A256GCM", "cty": "JWT"}
    token = jwe.encrypt_compact(
        header, signed.encode(), jose_key(encryption_pub), algorithms=["RSA-OAEP-256", "A256GCM"]
    )
    return token.encode()


def forged_manifest(
    claims: dict[str, Any],
    signer: PrivateKey | None,
    encryption_pub: rsa.RSAPublicKey,
    *,
    kid: str | None = None,
    alg: str | None = None,
    extra: dict[str, Any] | None = None,
) -> bytes:
    """Claims of the attacker's choosing, signed by ``signer`` under the header's ``kid``."""
    if alg is None:
        alg = "PS256" if isinstance(signer, rsa.RSAPrivateKey) else "ES256"
    header: dict[str, Any] = {"alg": alg, "typ": "fota-manifest+jwt", **(extra or {})}
    header["kid"] = kid if kid is not None else (key_id(signer) if signer else "none")
    payload = json.dumps(claims, sort_keys=True, separators=(",", ":")).encode()
    return seal_for_fleet(raw_jws(header, payload, signer), encryption_pub)
