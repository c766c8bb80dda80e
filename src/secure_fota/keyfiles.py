"""The key directory on disk: file names, permissions, and loading per role.

``fota keys generate`` writes this layout; the author tool reads the author's half, the
device tools read the device's half. Private files are created 0600 and never overwritten
unless asked to.
"""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Final

from cryptography.hazmat.primitives.asymmetric import rsa

from secure_fota.crypto.keys import (
    PrivateKey,
    PublicKey,
    Role,
    key_id,
    load_private_key,
    load_public_key,
)
from secure_fota.errors import KeyMaterialError, NotFoundError

if TYPE_CHECKING:
    # the device's side (policy, manifest opening, joserfc) is not loaded on the author's path
    from secure_fota.policy.verifier import DeviceKeys

__all__ = [
    "FLASH_ENCRYPTION_KEY",
    "FRESHNESS_KEY",
    "FRESHNESS_PUB",
    "KEYSET_VERSION",
    "MANIFEST_ENCRYPTION_KEY",
    "MANIFEST_ENCRYPTION_PUB",
    "MANIFEST_SIGNING_KEY",
    "MANIFEST_SIGNING_PUB",
    "PRE_ENCRYPTION_KEY",
    "PRE_ENCRYPTION_PUB",
    "ROTATIONS_DIR",
    "SECURE_BOOT_SIGNING_KEY",
    "SECURE_BOOT_SIGNING_PUB",
    "AuthorKeys",
    "load_author_keys",
    "load_device_keys",
    "read_key_file",
    "read_keyset_version",
    "read_rotations",
    "write_key_file",
]

SECURE_BOOT_SIGNING_KEY: Final = "secure_boot_signing_key.pem"
SECURE_BOOT_SIGNING_PUB: Final = "secure_boot_signing_pub.pem"
FLASH_ENCRYPTION_KEY: Final = "flash_encryption_key.bin"
MANIFEST_SIGNING_KEY: Final = "manifest_signing_key.pem"
MANIFEST_SIGNING_PUB: Final = "manifest_signing_pub.pem"
MANIFEST_ENCRYPTION_KEY: Final = "manifest_encryption_key.pem"
MANIFEST_ENCRYPTION_PUB: Final = "manifest_encryption_pub.pem"
PRE_ENCRYPTION_KEY: Final = "pre_encryption_key.pem"
PRE_ENCRYPTION_PUB: Final = "pre_encryption_pub.pem"
FRESHNESS_KEY: Final = "freshness_key.pem"
FRESHNESS_PUB: Final = "freshness_pub.pem"
#: the version of the manifest-signing key set the directory's public keys belong to
KEYSET_VERSION: Final = "keyset_version"
#: key-rotation statements, one file per version (``v2.jws``, ``v3.jws``, ...)
ROTATIONS_DIR: Final = "rotations"

_MAX_KEY_FILE: Final = 64 * 1024


def read_key_file(path: Path) -> bytes:
    """Read a key file, with a clear error when it is missing, unreadable or oversized."""
    try:
        with path.open("rb") as handle:
            data = handle.read(_MAX_KEY_FILE + 1)
    except FileNotFoundError:
        raise NotFoundError(f"{path}: key file not found") from None
    except OSError as exc:
        raise KeyMaterialError(f"{path}: cannot read key file ({exc.strerror})") from None
    if len(data) > _MAX_KEY_FILE:
        raise KeyMaterialError(f"{path}: larger than {_MAX_KEY_FILE} bytes, not a key file")
    return data


def write_key_file(path: Path, data: bytes, *, private: bool, force: bool) -> None:
    """Create ``path`` (0600 if private) with ``data``; refuse to overwrite unless ``force``."""
    mode = 0o600 if private else 0o644
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL
    if force and path.exists():
        path.unlink()
    try:
        fd = os.open(path, flags, mode)
    except FileExistsError:
        raise KeyMaterialError(
            f"{path} already exists; keys are never overwritten without --force"
        ) from None
    with os.fdopen(fd, "wb") as handle:
        os.fchmod(handle.fileno(), mode)
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())


def _warn_if_readable(path: Path) -> str | None:
    try:
        mode = path.stat().st_mode
    except OSError:
        return None
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        return f"{path} is readable by other users (chmod 600 it)"
    return None


@dataclass(frozen=True, slots=True)
class AuthorKeys:
    """What ``fota author release`` signs and encrypts with."""

    secure_boot: PrivateKey
    manifest_signing: PrivateKey
    manifest_encryption: rsa.RSAPublicKey
    pre_encryption: rsa.RSAPublicKey
    warnings: tuple[str, ...] = ()
    #: key-rotation statements leading to ``manifest_signing``'s key set, oldest first
    rotations: tuple[str, ...] = ()


def _rsa_public(role: Role, path: Path) -> rsa.RSAPublicKey:
    key = load_public_key(role, read_key_file(path), str(path))
    if not isinstance(key, rsa.RSAPublicKey):
        raise KeyMaterialError(f"{path}: {role.value} needs an RSA key")
    return key


def load_author_keys(
    directory: Path,
    *,
    secure_boot_version: str,
    private_overrides: dict[str, PrivateKey] | None = None,
) -> AuthorKeys:
    """Load the author's keys from ``directory``.

    ``private_overrides`` (from a PKCS#12 keystore) replaces the private key files
    ``secure_boot_signing_key.pem`` and ``manifest_signing_key.pem`` by file name.
    """
    overrides = private_overrides or {}
    warnings = []

    def private(name: str, role: Role) -> PrivateKey:
        if name in overrides:
            return overrides[name]
        path = directory / name
        pem = read_key_file(path)
        warning = _warn_if_readable(path)
        if warning:
            warnings.append(warning)
        return load_private_key(role, pem, str(path), own_key_file=True)

    sb_role = Role.SECURE_BOOT_V1 if secure_boot_version == "v1" else Role.SECURE_BOOT_V2
    return AuthorKeys(
        secure_boot=private(SECURE_BOOT_SIGNING_KEY, sb_role),
        manifest_signing=private(MANIFEST_SIGNING_KEY, Role.MANIFEST_SIGNING),
        manifest_encryption=_rsa_public(
            Role.MANIFEST_ENCRYPTION, directory / MANIFEST_ENCRYPTION_PUB
        ),
        pre_encryption=_rsa_public(Role.PRE_ENCRYPTION, directory / PRE_ENCRYPTION_PUB),
        warnings=tuple(warnings),
        rotations=_last_rotations(directory),
    )


def _last_rotations(directory: Path) -> tuple[str, ...]:
    statements = read_rotations(directory)
    if not statements:
        return ()
    from secure_fota.crypto.key_rotation import MAX_ROTATIONS

    return tuple(statements[-MAX_ROTATIONS:])


def _trusted_signing_keys(directory: Path) -> dict[str, PublicKey]:
    """``manifest_signing_pub.pem`` plus any ``manifest_signing_pub.*.pem`` (rotation)."""
    paths = sorted(directory.glob("manifest_signing_pub*.pem"))
    if not paths:
        raise NotFoundError(f"{directory / MANIFEST_SIGNING_PUB}: key file not found")
    keys = {}
    for path in paths:
        key = load_public_key(Role.MANIFEST_SIGNING, read_key_file(path), str(path))
        keys[key_id(key)] = key
    return keys


def _secure_boot_public(directory: Path) -> PublicKey:
    path = directory / SECURE_BOOT_SIGNING_PUB
    if not path.exists():
        path = directory / SECURE_BOOT_SIGNING_KEY
    # every V1 key (EC P-256) is also a valid V2 key, so the V2 role admits both
    return load_public_key(Role.SECURE_BOOT_V2, read_key_file(path), str(path))


def load_device_keys(directory: Path) -> DeviceKeys:
    """Load what a device holds from a key directory (author's layout or a device bundle)."""
    from secure_fota.policy.verifier import DeviceKeys

    def rsa_private(name: str, role: Role) -> rsa.RSAPrivateKey:
        path = directory / name
        key = load_private_key(role, read_key_file(path), str(path), own_key_file=True)
        if not isinstance(key, rsa.RSAPrivateKey):
            raise KeyMaterialError(f"{path}: {role.value} needs an RSA key")
        return key

    freshness: dict[str, PublicKey] = {}
    for path in sorted(directory.glob("freshness_pub*.pem")):
        key = load_public_key(Role.FRESHNESS, read_key_file(path), str(path))
        freshness[key_id(key)] = key
    return DeviceKeys(
        manifest_decryption=rsa_private(MANIFEST_ENCRYPTION_KEY, Role.MANIFEST_ENCRYPTION),
        image_decryption=rsa_private(PRE_ENCRYPTION_KEY, Role.PRE_ENCRYPTION),
        manifest_signing=_trusted_signing_keys(directory),
        secure_boot=_secure_boot_public(directory),
        freshness=freshness,
        keyset_version=read_keyset_version(directory),
    )


def read_keyset_version(directory: Path) -> int:
    """The key set version recorded in ``directory`` (1 when none is recorded)."""
    path = directory / KEYSET_VERSION
    if not path.exists():
        return 1
    text = path.read_text().strip()
    if not text.isdigit() or not 1 <= int(text) <= 2**31 - 1:
        raise KeyMaterialError(f"{path} does not hold a key set version")
    return int(text)


def read_rotations(directory: Path) -> list[str]:
    """The key-rotation statements of a key directory, oldest first."""
    folder = directory / ROTATIONS_DIR
    statements = [p.read_text().strip() for p in folder.glob("v*.jws")] if folder.is_dir() else []
    if not statements:
        return []
    from secure_fota.crypto.key_rotation import rotation_version

    return sorted(statements, key=rotation_version)
