"""The two bundles of keys a release is made and checked with, as typed values (no files).

:class:`AuthorKeys` is what ``fota author release`` signs and encrypts with; :class:`DeviceKeys`
is what a device holds (never an author's private signing key). :mod:`secure_fota.keys` loads
both from a key directory; :mod:`secure_fota.policy` checks releases with :class:`DeviceKeys`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from secure_fota.crypto.keys import (
    ManifestDecryptionKey,
    ManifestEncryptionKey,
    PrivateKey,
    PublicKey,
    TrustedKeys,
)

__all__ = ["AuthorKeys", "DeviceKeys"]


@dataclass(frozen=True, slots=True)
class AuthorKeys:
    """What ``fota author release`` signs and encrypts with."""

    secure_boot: PrivateKey
    manifest_signing: PrivateKey
    manifest_encryption: ManifestEncryptionKey
    #: RSA-3072 or (ECIES, esp_encrypted_img >= 2.4) EC P-256
    pre_encryption: PublicKey
    warnings: tuple[str, ...] = ()
    #: key-rotation statements leading to ``manifest_signing``'s key set, oldest first
    rotations: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class DeviceKeys:
    """The keys a device holds (never an author's private signing keys)."""

    manifest_decryption: ManifestDecryptionKey
    #: RSA-3072, or the P-256 key an ECIES device derives from its eFuse HMAC key
    image_decryption: PrivateKey
    manifest_signing: TrustedKeys
    secure_boot: PublicKey
    freshness: TrustedKeys = field(default_factory=dict)
    #: version of the manifest-signing key set (1 at provisioning; rotations raise it)
    keyset_version: int = 1
