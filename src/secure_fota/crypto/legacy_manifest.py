"""The seed's 1024-byte manifest, for fleets still running the seed's device code.

Layout: RSA-4096 PKCS#1 v1.5 encryption of the 256-byte ``esp_app_desc_t`` (512 bytes),
then RSA-4096 PKCS#1 v1.5 encryption of its RSA-3072 PKCS#1 v1.5 SHA-256 signature
(512 bytes). It binds nothing but the app descriptor: no device type, no sequence number,
no image digest, no expiry. Our own manifest replaces it; this exists only for migration.
"""

from __future__ import annotations

from typing import Final

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from secure_fota.crypto.keys import ManifestEncryptionKey, PrivateKey
from secure_fota.errors import FormatError, KeyMaterialError, VerificationError

__all__ = ["LEGACY_MANIFEST_SIZE", "LEGACY_WARNING", "open_legacy_manifest", "seal_legacy_manifest"]

LEGACY_MANIFEST_SIZE: Final = 1024
LEGACY_WARNING: Final = (
    "the legacy manifest binds only the app descriptor: no device type, sequence number, "
    "image digest or expiry, so it does not stop downgrades, mix-and-match or freezes"
)
_DESC_SIZE: Final = 256


def seal_legacy_manifest(
    app_desc: bytes, signing_key: PrivateKey, encryption_key: ManifestEncryptionKey
) -> bytes:
    """The seed's manifest for a 256-byte app descriptor."""
    if len(app_desc) != _DESC_SIZE:
        raise FormatError("app descriptor", f"needs {_DESC_SIZE} bytes, got {len(app_desc)}")
    if not isinstance(signing_key, rsa.RSAPrivateKey) or signing_key.key_size != 3072:
        raise KeyMaterialError("the legacy manifest needs an RSA-3072 manifest signing key")
    if not isinstance(encryption_key, rsa.RSAPublicKey) or encryption_key.key_size != 4096:
        raise KeyMaterialError("the legacy manifest needs an RSA-4096 manifest encryption key")
    signature = signing_key.sign(app_desc, padding.PKCS1v15(), hashes.SHA256())
    return encryption_key.encrypt(app_desc, padding.PKCS1v15()) + encryption_key.encrypt(
        signature, padding.PKCS1v15()
    )


def open_legacy_manifest(
    data: bytes, decryption_key: rsa.RSAPrivateKey, signing_key: rsa.RSAPublicKey
) -> bytes:
    """Decrypt and verify a legacy manifest as the seed's device does; return the descriptor."""
    if len(data) != LEGACY_MANIFEST_SIZE:
        raise FormatError("legacy manifest", f"needs {LEGACY_MANIFEST_SIZE} bytes, got {len(data)}")
    try:
        desc = decryption_key.decrypt(data[:512], padding.PKCS1v15())
        signature = decryption_key.decrypt(data[512:], padding.PKCS1v15())
        signing_key.verify(signature, desc, padding.PKCS1v15(), hashes.SHA256())
    except (ValueError, InvalidSignature):
        raise VerificationError("legacy manifest") from None
    return desc
