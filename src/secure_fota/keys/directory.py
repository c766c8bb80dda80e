"""The key directory on disk: file names, permissions, and loading and writing per role.

``fota keys generate`` writes this layout (:mod:`secure_fota.keys.generate`); the author tool
reads the author's half; a device keeps a copy of the device's half (:func:`copy_device_keys`)
and follows key rotations in it (:func:`commit_keyset`). Every file name of the layout, the
names of rotated and retired keys included, is written here and nowhere else. Private files
are created 0600 and never overwritten unless asked to.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from cryptography.hazmat.primitives.asymmetric import rsa

from secure_fota.bounded_read import read_bounded
from secure_fota.crypto.keyring import AuthorKeys, DeviceKeys
from secure_fota.crypto.keys import (
    PrivateKey,
    PublicKey,
    Role,
    TrustedKeys,
    key_id,
    load_private_key,
    load_public_key,
    public_pem,
    secure_boot_role,
)
from secure_fota.errors import InputError, KeyMaterialError, NotFoundError
from secure_fota.formats.secure_boot import Scheme
from secure_fota.limits import MAX_ROTATIONS

__all__ = [
    "FLASH_ENCRYPTION_KEY",
    "FRESHNESS_KEY",
    "FRESHNESS_PUB",
    "FRESHNESS_PUBS",
    "KEYSET_VERSION",
    "MANIFEST_ENCRYPTION_KEY",
    "MANIFEST_ENCRYPTION_PUB",
    "MANIFEST_SIGNING_KEY",
    "MANIFEST_SIGNING_PUB",
    "MANIFEST_SIGNING_PUBS",
    "PRE_ENCRYPTION_HMAC_KEY",
    "PRE_ENCRYPTION_KEY",
    "PRE_ENCRYPTION_PUB",
    "RETIRED_DIR",
    "ROTATIONS_DIR",
    "SECURE_BOOT_SCHEME",
    "SECURE_BOOT_SIGNING_KEY",
    "SECURE_BOOT_SIGNING_PUB",
    "GeneratedFile",
    "commit_keyset",
    "copy_device_keys",
    "kept_signing_pub",
    "load_author_keys",
    "load_device_keys",
    "load_private_key_file",
    "read_key_file",
    "read_keyset_version",
    "read_rotations",
    "read_secure_boot_scheme",
    "retired_signing_key",
    "rotation_statement",
    "write_key_file",
    "write_key_files",
]

SECURE_BOOT_SIGNING_KEY: Final = "secure_boot_signing_key.pem"
#: the secure boot scheme of the signing key (``v1``, ``v2-rsa3072``, ...), one line
SECURE_BOOT_SCHEME: Final = "secure_boot_scheme"
SECURE_BOOT_SIGNING_PUB: Final = "secure_boot_signing_pub.pem"
FLASH_ENCRYPTION_KEY: Final = "flash_encryption_key.bin"
MANIFEST_SIGNING_KEY: Final = "manifest_signing_key.pem"
MANIFEST_SIGNING_PUB: Final = "manifest_signing_pub.pem"
MANIFEST_ENCRYPTION_KEY: Final = "manifest_encryption_key.pem"
MANIFEST_ENCRYPTION_PUB: Final = "manifest_encryption_pub.pem"
PRE_ENCRYPTION_KEY: Final = "pre_encryption_key.pem"
PRE_ENCRYPTION_PUB: Final = "pre_encryption_pub.pem"
#: ECIES key sets (``--pre-encryption ecies-p256``): the device's 32-byte eFuse HMAC key
#: (``espefuse burn-key BLOCK_KEYn pre_encryption_hmac_key.bin HMAC_UP``), instead of
#: ``pre_encryption_key.pem``; its P-256 key is derived from it (esp_encrypted_img >= 2.4)
PRE_ENCRYPTION_HMAC_KEY: Final = "pre_encryption_hmac_key.bin"
FRESHNESS_KEY: Final = "freshness_key.pem"
FRESHNESS_PUB: Final = "freshness_pub.pem"
#: the trusted manifest-signing keys: the current one, an old one kept (``.vN``), or the keys
#: of a set a device rotated to (``.<kid prefix>``)
MANIFEST_SIGNING_PUBS: Final = "manifest_signing_pub*.pem"
#: the trusted freshness keys
FRESHNESS_PUBS: Final = "freshness_pub*.pem"
#: the version of the manifest-signing key set the directory's public keys belong to
KEYSET_VERSION: Final = "keyset_version"
#: key-rotation statements, one file per version (``v2.jws``, ``v3.jws``, ...)
ROTATIONS_DIR: Final = "rotations"
#: replaced private manifest-signing keys (keep it offline)
RETIRED_DIR: Final = "retired"

_MAX_KEY_FILE: Final = 64 * 1024


def kept_signing_pub(version: int) -> str:
    """The author's file for the old public key of set ``version``, still trusted after a
    rotation with ``--keep-old``."""
    return f"manifest_signing_pub.v{version}.pem"


def retired_signing_key(version: int) -> str:
    """The file (in :data:`RETIRED_DIR`) of the private key that signed for set ``version``."""
    return f"manifest_signing_key.v{version}.pem"


def rotation_statement(version: int) -> str:
    """The file (in :data:`ROTATIONS_DIR`) of the statement that introduces set ``version``."""
    return f"v{version}.jws"


def _trusted_signing_pub(kid: str) -> str:
    """A device's file for a key of the set it rotated to (named by the key id)."""
    return f"manifest_signing_pub.{kid[:16]}.pem"


# -- files ---------------------------------------------------------------------------------


def read_key_file(path: Path) -> bytes:
    """Read a key file, with a clear error when it is missing, unreadable or oversized."""
    return read_bounded(path, _MAX_KEY_FILE, what="key file", error=KeyMaterialError)


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


@dataclass(frozen=True, slots=True)
class GeneratedFile:
    path: Path
    private: bool
    purpose: str


def write_key_files(
    out: Path, files: Sequence[tuple[str, bytes, bool, str]], force: bool
) -> list[GeneratedFile]:
    """Write ``(name, data, private, purpose)`` files into ``out``, all or nothing: every
    target is checked before anything is written, and files already written are removed if a
    later one fails."""
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise InputError("--out", f"cannot create directory {out} ({exc.strerror})") from None
    if not force:
        existing = [name for name, *_ in files if (out / name).exists()]
        if existing:
            raise KeyMaterialError(
                f"{out} already holds {', '.join(existing)}; "
                "keys are never overwritten without --force"
            )
    written: list[GeneratedFile] = []
    try:
        for name, data, private, purpose in files:
            write_key_file(out / name, data, private=private, force=force)
            written.append(GeneratedFile(out / name, private, purpose))
    except BaseException:
        for item in written:
            item.path.unlink(missing_ok=True)
        raise
    return written


def _warn_if_readable(path: Path) -> str | None:
    try:
        mode = path.stat().st_mode
    except OSError:
        return None
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        return f"{path} is readable by other users (chmod 600 it)"
    return None


# -- loading -------------------------------------------------------------------------------


def read_secure_boot_scheme(directory: Path) -> Scheme | None:
    """The scheme ``fota keys generate`` recorded for the secure boot key (``None`` for a key
    set made before the file existed)."""
    path = directory / SECURE_BOOT_SCHEME
    if not path.is_file():
        return None
    text = read_bounded(path, 64, what="secure boot scheme file").decode("ascii", "replace")
    try:
        return Scheme(text.strip())
    except ValueError:
        known = ", ".join(s.value for s in Scheme)
        raise KeyMaterialError(f"{path}: unknown secure boot scheme (one of {known})") from None


def load_private_key_file(role: Role, path: Path) -> PrivateKey:
    """The private key for ``role`` in the file ``path`` (a file of our own key directory)."""
    return load_private_key(role, read_key_file(path), str(path), own_key_file=True)


def load_author_keys(
    directory: Path,
    *,
    secure_boot_version: str,
    keystore: Path | None = None,
    keystore_password: str = "",
) -> AuthorKeys:
    """Load the author's keys from ``directory``.

    With ``keystore`` (a PKCS#12 file, the seed's Java KeyStore) the two private signing keys
    come from it instead of ``secure_boot_signing_key.pem`` and ``manifest_signing_key.pem``;
    the public keys still come from ``directory``.
    """
    from_keystore: dict[str, PrivateKey] = {}
    if keystore is not None:
        # asn1crypto is loaded only by authors who keep their keys in a keystore
        from secure_fota.keys.keystore import load_keystore_keys

        from_keystore = load_keystore_keys(
            keystore, keystore_password.encode(), secure_boot_version=secure_boot_version
        )
    warnings = []

    def private(purpose: str, name: str, role: Role) -> PrivateKey:
        if purpose in from_keystore:
            return from_keystore[purpose]
        path = directory / name
        key = load_private_key_file(role, path)
        warning = _warn_if_readable(path)
        if warning:
            warnings.append(warning)
        return key

    return AuthorKeys(
        secure_boot=private(
            "secure_boot", SECURE_BOOT_SIGNING_KEY, secure_boot_role(secure_boot_version)
        ),
        manifest_signing=private("manifest_signing", MANIFEST_SIGNING_KEY, Role.MANIFEST_SIGNING),
        manifest_encryption=load_public_key(
            Role.MANIFEST_ENCRYPTION,
            read_key_file(directory / MANIFEST_ENCRYPTION_PUB),
            str(directory / MANIFEST_ENCRYPTION_PUB),
        ),
        pre_encryption=load_public_key(
            Role.PRE_ENCRYPTION,
            read_key_file(directory / PRE_ENCRYPTION_PUB),
            str(directory / PRE_ENCRYPTION_PUB),
        ),
        warnings=tuple(warnings),
        rotations=_last_rotations(directory),
    )


def _last_rotations(directory: Path) -> tuple[str, ...]:
    statements = read_rotations(directory)
    if not statements:
        return ()
    return tuple(statements[-MAX_ROTATIONS:])


def _trusted_keys(directory: Path, pattern: str, role: Role) -> dict[str, PublicKey]:
    keys = {}
    for path in sorted(directory.glob(pattern)):
        key = load_public_key(role, read_key_file(path), str(path))
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

    def image_key() -> PrivateKey:
        hmac_path = directory / PRE_ENCRYPTION_HMAC_KEY
        if (directory / PRE_ENCRYPTION_KEY).exists() or not hmac_path.exists():
            key = load_private_key_file(Role.PRE_ENCRYPTION, directory / PRE_ENCRYPTION_KEY)
            if not isinstance(key, rsa.RSAPrivateKey):
                raise KeyMaterialError(
                    f"{directory / PRE_ENCRYPTION_KEY}: pre-encryption needs an RSA-3072 key "
                    f"(an ECIES device holds {PRE_ENCRYPTION_HMAC_KEY} instead)"
                )
            return key
        from secure_fota.crypto.encrypted_image import ecies_device_key

        try:
            return ecies_device_key(read_key_file(hmac_path))
        except KeyMaterialError as exc:
            raise KeyMaterialError(f"{hmac_path}: {exc}") from None

    def trusted_signing_keys() -> dict[str, PublicKey]:
        keys = _trusted_keys(directory, MANIFEST_SIGNING_PUBS, Role.MANIFEST_SIGNING)
        if not keys:
            raise NotFoundError(f"{directory / MANIFEST_SIGNING_PUB}: key file not found")
        return keys

    freshness = _trusted_keys(directory, FRESHNESS_PUBS, Role.FRESHNESS)
    return DeviceKeys(
        manifest_decryption=load_private_key_file(
            Role.MANIFEST_ENCRYPTION, directory / MANIFEST_ENCRYPTION_KEY
        ),
        image_decryption=image_key(),
        manifest_signing=trusted_signing_keys(),
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


# -- a device's own copy -------------------------------------------------------------------


def copy_device_keys(source: Path, target: Path) -> None:
    """Give a device its half of ``source`` (a key set or a device bundle), in ``target``.

    The two decryption keys (0600; an ECIES set's HMAC key instead of the image key), the
    trusted manifest-signing and freshness public keys,
    the key set version and the secure boot public key (derived from the private key when the
    set has no public file); nothing that signs.
    """
    target.mkdir(parents=True, exist_ok=True)
    image_key = PRE_ENCRYPTION_KEY
    if not (source / PRE_ENCRYPTION_KEY).exists() and (source / PRE_ENCRYPTION_HMAC_KEY).exists():
        image_key = PRE_ENCRYPTION_HMAC_KEY
    for name in (MANIFEST_ENCRYPTION_KEY, image_key):
        write_key_file(target / name, read_key_file(source / name), private=True, force=True)
    for pattern in (MANIFEST_SIGNING_PUBS, FRESHNESS_PUBS):
        for path in sorted(source.glob(pattern)):
            write_key_file(target / path.name, read_key_file(path), private=False, force=True)
    # the version of the trusted manifest-signing key set: a device provisioned after a
    # rotation must start at that version, or it cannot walk later rotation statements
    # (the first of them is signed by a retired key it never held)
    version = read_keyset_version(source)
    if version != 1:
        write_key_file(target / KEYSET_VERSION, f"{version}\n".encode(), private=False, force=True)
    public = source / SECURE_BOOT_SIGNING_PUB
    if public.exists():
        data = read_key_file(public)
    else:
        private = source / SECURE_BOOT_SIGNING_KEY
        data = public_pem(load_private_key(Role.SECURE_BOOT_V2, read_key_file(private)))
    write_key_file(target / SECURE_BOOT_SIGNING_PUB, data, private=False, force=True)


def commit_keyset(directory: Path, version: int, keys: TrustedKeys) -> None:
    """Make a device trust exactly ``keys`` (key set ``version``) from now on.

    The new keys' files are written first, then the others removed, then the version
    recorded, each step atomic: an interruption leaves the old set or a superset trusted.
    """
    from secure_fota.atomic_file import write_atomic

    wanted = {_trusted_signing_pub(kid): key for kid, key in keys.items()}
    for name, key in wanted.items():
        write_atomic(directory / name, public_pem(key))
    for stale in directory.glob(MANIFEST_SIGNING_PUBS):
        if stale.name not in wanted:
            stale.unlink()
    write_atomic(directory / KEYSET_VERSION, f"{version}\n".encode())
