"""Key loading, checking, generation and identification (PEM in, typed keys out; no file I/O).

Every loader checks the type and size the role requires, because a wrong key produces a
release that fails only on the device (Espressif's own encryption tool silently writes a
broken file when given a 2048-bit key).
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from enum import StrEnum
from typing import Final

from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from secure_fota.errors import KeyMaterialError
from secure_fota.formats.secure_boot import Scheme

__all__ = [
    "ManifestDecryptionKey",
    "ManifestEncryptionKey",
    "PrivateKey",
    "PublicKey",
    "Role",
    "TrustedKeys",
    "check_private_key",
    "check_public_key",
    "generate_private_key",
    "key_id",
    "load_private_key",
    "load_public_key",
    "private_pem",
    "public_pem",
    "secure_boot_role",
    "secure_boot_scheme_of",
]

PrivateKey = rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey
PublicKey = rsa.RSAPublicKey | ec.EllipticCurvePublicKey
#: the fleet's manifest-encryption key: RSA-3072/4096 (RSA-OAEP-256) or P-256 (ECDH-ES+A256KW)
ManifestEncryptionKey = rsa.RSAPublicKey | ec.EllipticCurvePublicKey
ManifestDecryptionKey = rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey
#: trusted verification keys by kid
TrustedKeys = Mapping[str, PublicKey]

_MAX_PEM: Final = 64 * 1024


class Role(StrEnum):
    """What a key is for; each role admits specific key types and sizes."""

    SECURE_BOOT_V1 = "secure boot V1 signing"
    SECURE_BOOT_V2 = "secure boot V2 signing"
    MANIFEST_SIGNING = "manifest signing"
    MANIFEST_ENCRYPTION = "manifest encryption"
    PRE_ENCRYPTION = "pre-encryption"
    FRESHNESS = "freshness signing"
    DEVICE_REPORT = "device report signing"


def _describe(key: PrivateKey | PublicKey) -> str:
    if isinstance(key, rsa.RSAPrivateKey | rsa.RSAPublicKey):
        return f"RSA-{key.key_size}"
    return f"EC {key.curve.name}"


def _allowed(role: Role, key: PrivateKey | PublicKey) -> bool:
    is_rsa = isinstance(key, rsa.RSAPrivateKey | rsa.RSAPublicKey)
    curve = None if is_rsa else key.curve.name  # type: ignore[union-attr]
    size = key.key_size
    if role is Role.SECURE_BOOT_V1:
        return curve == "secp256r1"
    if role is Role.SECURE_BOOT_V2:
        return (is_rsa and size == 3072) or curve in ("secp256r1", "secp384r1")
    if role is Role.MANIFEST_SIGNING:
        return (is_rsa and size in (3072, 4096)) or curve == "secp256r1"
    if role is Role.MANIFEST_ENCRYPTION:
        return (is_rsa and size in (3072, 4096)) or curve == "secp256r1"
    if role is Role.PRE_ENCRYPTION:
        return (is_rsa and size == 3072) or curve == "secp256r1"
    return curve == "secp256r1"  # Role.FRESHNESS, Role.DEVICE_REPORT


_EXPECTED: Final = {
    Role.SECURE_BOOT_V1: "an EC P-256 key",
    Role.SECURE_BOOT_V2: "an RSA-3072, EC P-256 or EC P-384 key",
    Role.MANIFEST_SIGNING: "an RSA-3072/4096 or EC P-256 key",
    Role.MANIFEST_ENCRYPTION: "an RSA-3072/4096 key (RSA-4096 recommended) or an EC P-256 key",
    Role.PRE_ENCRYPTION: "an RSA-3072 key or an EC P-256 key (esp_encrypted_img's two schemes)",
    Role.FRESHNESS: "an EC P-256 key",
    Role.DEVICE_REPORT: "an EC P-256 key",
}


def check_private_key(role: Role, key: object, source: str = "key") -> PrivateKey:
    """Return ``key`` if it is a private key fit for ``role``, else raise KeyMaterialError."""
    if not isinstance(key, rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey):
        raise KeyMaterialError(f"{source}: {role.value} needs {_EXPECTED[role]}")
    if not _allowed(role, key):
        raise KeyMaterialError(
            f"{source}: {role.value} needs {_EXPECTED[role]}, got {_describe(key)}"
        )
    return key


def check_public_key(role: Role, key: object, source: str = "key") -> PublicKey:
    """Return ``key`` if it is a public key fit for ``role``, else raise KeyMaterialError."""
    if not isinstance(key, rsa.RSAPublicKey | ec.EllipticCurvePublicKey):
        raise KeyMaterialError(f"{source}: {role.value} needs {_EXPECTED[role]} (public)")
    if not _allowed(role, key):
        raise KeyMaterialError(
            f"{source}: {role.value} needs {_EXPECTED[role]}, got {_describe(key)}"
        )
    return key


def load_private_key(
    role: Role,
    pem: bytes,
    source: str = "key",
    password: bytes | None = None,
    *,
    own_key_file: bool = False,
) -> PrivateKey:
    """Load a PEM private key (PKCS#8 or traditional) and check it fits ``role``.

    ``own_key_file`` skips OpenSSL's RSA consistency check (about 50 ms per RSA-3072 key),
    which guards against maliciously crafted keys; pass it only for key files of our own
    key directory, which only their owner can write.
    """
    if len(pem) > _MAX_PEM:
        raise KeyMaterialError(f"{source}: larger than {_MAX_PEM} bytes, not a key file")
    try:
        key = serialization.load_pem_private_key(
            pem, password=password, unsafe_skip_rsa_key_validation=own_key_file
        )
    except (ValueError, TypeError) as exc:
        hint = "wrong password or " if password else ""
        raise KeyMaterialError(
            f"{source}: cannot load a PEM private key ({hint}not a PEM key: {exc})"
        ) from None
    except UnsupportedAlgorithm as exc:
        raise KeyMaterialError(f"{source}: unsupported private key ({exc})") from None
    return check_private_key(role, key, source)


def load_public_key(role: Role, pem: bytes, source: str = "key") -> PublicKey:
    """Load a PEM public key, or the public half of a PEM private key, for ``role``."""
    if len(pem) > _MAX_PEM:
        raise KeyMaterialError(f"{source}: larger than {_MAX_PEM} bytes, not a key file")
    if b"PRIVATE KEY" in pem:
        return load_private_key(role, pem, source).public_key()
    try:
        key = serialization.load_pem_public_key(pem)
    except (ValueError, TypeError) as exc:
        raise KeyMaterialError(f"{source}: cannot load a PEM public key ({exc})") from None
    except UnsupportedAlgorithm as exc:
        raise KeyMaterialError(f"{source}: unsupported public key ({exc})") from None
    return check_public_key(role, key, source)


def generate_private_key(kind: str) -> PrivateKey:
    """Generate ``rsa3072``, ``rsa4096``, ``ecdsa256`` or ``ecdsa384`` keys."""
    if kind == "rsa3072":
        return rsa.generate_private_key(public_exponent=65537, key_size=3072)
    if kind == "rsa4096":
        return rsa.generate_private_key(public_exponent=65537, key_size=4096)
    if kind == "ecdsa256":
        return ec.generate_private_key(ec.SECP256R1())
    if kind == "ecdsa384":
        return ec.generate_private_key(ec.SECP384R1())
    raise KeyMaterialError(f"unknown key kind {kind!r}")


def private_pem(key: PrivateKey, password: bytes | None = None) -> bytes:
    """PEM of a private key, encrypted with ``password`` when one is given.

    EC keys use the traditional ``EC PRIVATE KEY`` form, the only one espsecure reads for
    Secure Boot V1 (and what ``espsecure generate-signing-key`` writes); RSA keys use PKCS#8.
    """
    encryption: serialization.KeySerializationEncryption = (
        serialization.BestAvailableEncryption(password)
        if password
        else serialization.NoEncryption()
    )
    form = (
        serialization.PrivateFormat.TraditionalOpenSSL
        if isinstance(key, ec.EllipticCurvePrivateKey)
        else serialization.PrivateFormat.PKCS8
    )
    return key.private_bytes(serialization.Encoding.PEM, form, encryption)


def public_pem(key: PrivateKey | PublicKey) -> bytes:
    """SubjectPublicKeyInfo PEM of a key (or of a private key's public half)."""
    public = (
        key.public_key() if isinstance(key, rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey) else key
    )
    return public.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def key_id(key: PrivateKey | PublicKey) -> str:
    """The key id used in JWS ``kid`` headers: SHA-256 of the DER SubjectPublicKeyInfo, hex."""
    public = (
        key.public_key() if isinstance(key, rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey) else key
    )
    der = public.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return hashlib.sha256(der).hexdigest()


def secure_boot_role(version: str) -> Role:
    """The key role of secure boot ``version`` ``"v1"`` or ``"v2"``."""
    return Role.SECURE_BOOT_V1 if version == "v1" else Role.SECURE_BOOT_V2


def secure_boot_scheme_of(key: PrivateKey | PublicKey, version: str) -> Scheme:
    """The secure-boot scheme a key signs with, for ``version`` ``"v1"`` or ``"v2"``."""
    if version == "v1":
        if isinstance(key, ec.EllipticCurvePrivateKey | ec.EllipticCurvePublicKey) and (
            key.curve.name == "secp256r1"
        ):
            return Scheme.V1
        raise KeyMaterialError(f"secure boot V1 needs an EC P-256 key, got {_describe(key)}")
    if version != "v2":
        raise KeyMaterialError(f"unknown secure boot version {version!r} (use v1 or v2)")
    if isinstance(key, rsa.RSAPrivateKey | rsa.RSAPublicKey):
        if key.key_size == 3072:
            return Scheme.V2_RSA3072
    elif key.curve.name == "secp256r1":
        return Scheme.V2_ECDSA256
    elif key.curve.name == "secp384r1":
        return Scheme.V2_ECDSA384
    raise KeyMaterialError(
        f"secure boot V2 needs an RSA-3072, EC P-256 or EC P-384 key, got {_describe(key)}"
    )
