"""Generation of the key set (seed steps 0.1 to 0.5) and rotation of the manifest-signing key.

Generation is all-or-nothing (:func:`~secure_fota.keys.directory.write_key_files`).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from secure_fota.crypto.keys import (
    PrivateKey,
    Role,
    generate_private_key,
    key_id,
    load_private_key,
    private_pem,
    public_pem,
)
from secure_fota.errors import InputError
from secure_fota.keys.directory import (
    FLASH_ENCRYPTION_KEY,
    FRESHNESS_KEY,
    FRESHNESS_PUB,
    KEYSET_VERSION,
    MANIFEST_ENCRYPTION_KEY,
    MANIFEST_ENCRYPTION_PUB,
    MANIFEST_SIGNING_KEY,
    MANIFEST_SIGNING_PUB,
    MANIFEST_SIGNING_PUBS,
    PRE_ENCRYPTION_HMAC_KEY,
    PRE_ENCRYPTION_KEY,
    PRE_ENCRYPTION_PUB,
    RETIRED_DIR,
    ROTATIONS_DIR,
    SECURE_BOOT_SCHEME,
    SECURE_BOOT_SIGNING_KEY,
    SECURE_BOOT_SIGNING_PUB,
    GeneratedFile,
    kept_signing_pub,
    read_key_file,
    read_keyset_version,
    retired_signing_key,
    rotation_statement,
    write_key_file,
    write_key_files,
)

__all__ = [
    "MANIFEST_ENCRYPTION_KINDS",
    "MANIFEST_SIGNING_KINDS",
    "PRE_ENCRYPTION_KINDS",
    "SECURE_BOOT_SCHEMES",
    "Rotation",
    "generate_key_set",
    "rotate_signing_key",
]

#: ``--secure-boot`` choices and the key each needs
SECURE_BOOT_SCHEMES: Final = {
    "v1": "ecdsa256",
    "v2-rsa3072": "rsa3072",
    "v2-ecdsa256": "ecdsa256",
    "v2-ecdsa384": "ecdsa384",
}
MANIFEST_SIGNING_KINDS: Final = {"rsa3072": "rsa3072", "ecdsa256": "ecdsa256"}
#: ``--manifest-encryption`` choices: the outer JWE's RSA-OAEP-256 or ECDH-ES+A256KW (the key
#: file's type records the choice; devices accept only their own key's algorithm)
MANIFEST_ENCRYPTION_KINDS: Final = {"rsa4096": "rsa4096", "ec-p256": "ecdsa256"}
#: ``--pre-encryption`` choices: esp_encrypted_img's RSA-3072 scheme, or its ECIES-P256 scheme
#: (>= 2.4; chips with an HMAC peripheral: the device key is derived from an eFuse HMAC key)
PRE_ENCRYPTION_KINDS: Final = ("rsa3072", "ecies-p256")


def generate_key_set(
    out: Path,
    *,
    secure_boot: str = "v1",
    manifest_signing: str = "rsa3072",
    manifest_encryption: str = "rsa4096",
    pre_encryption: str = "rsa3072",
    force: bool = False,
    generate: Callable[[str], PrivateKey] = generate_private_key,
) -> list[GeneratedFile]:
    """Create the whole key set in ``out``; return what was written."""
    if secure_boot not in SECURE_BOOT_SCHEMES:
        raise InputError("--secure-boot", f"must be one of {', '.join(SECURE_BOOT_SCHEMES)}")
    if manifest_signing not in MANIFEST_SIGNING_KINDS:
        raise InputError("--manifest-signing", "must be rsa3072 or ecdsa256")
    if manifest_encryption not in MANIFEST_ENCRYPTION_KINDS:
        raise InputError("--manifest-encryption", "must be rsa4096 or ec-p256")
    if pre_encryption not in PRE_ENCRYPTION_KINDS:
        raise InputError("--pre-encryption", "must be rsa3072 or ecies-p256")
    secure_boot_key = generate(SECURE_BOOT_SCHEMES[secure_boot])
    signing = generate(MANIFEST_SIGNING_KINDS[manifest_signing])
    encryption = generate(MANIFEST_ENCRYPTION_KINDS[manifest_encryption])
    pre_files = _pre_encryption_files(pre_encryption, generate)
    freshness = generate("ecdsa256")
    files = [
        (
            SECURE_BOOT_SIGNING_KEY,
            private_pem(secure_boot_key),
            True,
            f"secure boot {secure_boot} signing key (author; its digest goes to eFuse)",
        ),
        (
            SECURE_BOOT_SIGNING_PUB,
            public_pem(secure_boot_key),
            False,
            "secure boot public key (device bootloader)",
        ),
        (
            SECURE_BOOT_SCHEME,
            f"{secure_boot}\n".encode(),
            False,
            "secure boot scheme of that key (fota author release reads it)",
        ),
        (
            FLASH_ENCRYPTION_KEY,
            os.urandom(32),
            True,
            "flash encryption key (burn with espefuse, keep offline)",
        ),
        (MANIFEST_SIGNING_KEY, private_pem(signing), True, "manifest signing key (author)"),
        (MANIFEST_SIGNING_PUB, public_pem(signing), False, "manifest signing public key (device)"),
        (
            MANIFEST_ENCRYPTION_KEY,
            private_pem(encryption),
            True,
            f"manifest decryption key, {manifest_encryption} (device flash, encrypted)",
        ),
        (
            MANIFEST_ENCRYPTION_PUB,
            public_pem(encryption),
            False,
            "manifest encryption public key (author)",
        ),
        *pre_files,
        (
            FRESHNESS_KEY,
            private_pem(freshness),
            True,
            "freshness statement signing key (update server, online)",
        ),
        (FRESHNESS_PUB, public_pem(freshness), False, "freshness public key (device)"),
    ]
    return write_key_files(out, files, force)


def _pre_encryption_files(
    kind: str, generate: Callable[[str], PrivateKey]
) -> list[tuple[str, bytes, bool, str]]:
    if kind == "rsa3072":
        pre = generate("rsa3072")
        return [
            (
                PRE_ENCRYPTION_KEY,
                private_pem(pre),
                True,
                "image decryption key (device flash, encrypted)",
            ),
            (PRE_ENCRYPTION_PUB, public_pem(pre), False, "image encryption public key (author)"),
        ]
    from secure_fota.crypto.encrypted_image import ECIES_HMAC_KEY_SIZE, ecies_device_key
    from secure_fota.errors import KeyMaterialError

    while True:  # about 1 in 2**32 HMAC keys derives no valid scalar: draw again
        hmac_key = os.urandom(ECIES_HMAC_KEY_SIZE)
        try:
            device = ecies_device_key(hmac_key)
        except KeyMaterialError:
            continue
        break
    return [
        (
            PRE_ENCRYPTION_HMAC_KEY,
            hmac_key,
            True,
            "image key: eFuse HMAC key (espefuse burn-key ... HMAC_UP; keep offline)",
        ),
        (
            PRE_ENCRYPTION_PUB,
            public_pem(device),
            False,
            "image encryption public key, ECIES-P256 (author)",
        ),
    ]


@dataclass(frozen=True, slots=True)
class Rotation:
    version: int
    statement: Path
    new_kid: str
    kept_old: bool


def rotate_signing_key(
    directory: Path,
    *,
    kind: str = "rsa3072",
    keep_old: bool = False,
    generate: Callable[[str], PrivateKey] = generate_private_key,
) -> Rotation:
    """Replace the manifest-signing key; the old key signs a statement naming the new set.

    Writes ``rotations/vN.jws``, moves the old private key to ``retired/``, installs the new
    key as ``manifest_signing_key.pem`` / ``manifest_signing_pub.pem`` (plus the old public key
    as ``manifest_signing_pub.vM.pem`` with ``keep_old``) and records the set version. Every
    later release carries the statements, so devices that missed releases still follow.
    """
    from secure_fota.crypto.key_rotation import make_rotation

    if kind not in MANIFEST_SIGNING_KINDS:
        raise InputError("--kind", "must be rsa3072 or ecdsa256")
    old_path = directory / MANIFEST_SIGNING_KEY
    old = load_private_key(Role.MANIFEST_SIGNING, read_key_file(old_path), str(old_path))
    version = read_keyset_version(directory)
    new = generate(MANIFEST_SIGNING_KINDS[kind])
    trusted = [new.public_key(), *([old.public_key()] if keep_old else [])]
    statement = make_rotation(old, version + 1, trusted)

    rotations = directory / ROTATIONS_DIR
    retired = directory / RETIRED_DIR
    rotations.mkdir(exist_ok=True)
    retired.mkdir(exist_ok=True)
    statement_path = rotations / rotation_statement(version + 1)
    write_key_file(statement_path, statement.encode() + b"\n", private=False, force=False)
    write_key_file(
        retired / retired_signing_key(version), private_pem(old), private=True, force=True
    )
    for stale in directory.glob(MANIFEST_SIGNING_PUBS):
        stale.unlink()
    if keep_old:
        write_key_file(
            directory / kept_signing_pub(version), public_pem(old), private=False, force=True
        )
    write_key_file(old_path, private_pem(new), private=True, force=True)
    write_key_file(directory / MANIFEST_SIGNING_PUB, public_pem(new), private=False, force=True)
    write_key_file(
        directory / KEYSET_VERSION, f"{version + 1}\n".encode(), private=False, force=True
    )
    return Rotation(
        version=version + 1, statement=statement_path, new_kid=key_id(new), kept_old=keep_old
    )
