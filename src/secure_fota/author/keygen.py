"""Generation of the key set (seed steps 0.1 to 0.5) and of a development TLS CA.

All-or-nothing: every target is checked before anything is written, and files already
written are removed if a later one fails.
"""

from __future__ import annotations

import datetime
import ipaddress
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from secure_fota.crypto.keys import PrivateKey, generate_private_key, private_pem, public_pem
from secure_fota.errors import InputError, KeyMaterialError
from secure_fota.keyfiles import (
    FLASH_ENCRYPTION_KEY,
    FRESHNESS_KEY,
    FRESHNESS_PUB,
    MANIFEST_ENCRYPTION_KEY,
    MANIFEST_ENCRYPTION_PUB,
    MANIFEST_SIGNING_KEY,
    MANIFEST_SIGNING_PUB,
    PRE_ENCRYPTION_KEY,
    PRE_ENCRYPTION_PUB,
    SECURE_BOOT_SIGNING_KEY,
    SECURE_BOOT_SIGNING_PUB,
    write_key_file,
)

__all__ = [
    "SECURE_BOOT_SCHEMES",
    "GeneratedFile",
    "Rotation",
    "generate_key_set",
    "generate_tls",
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


@dataclass(frozen=True, slots=True)
class GeneratedFile:
    path: Path
    private: bool
    purpose: str


def _write_all(
    out: Path, files: Sequence[tuple[str, bytes, bool, str]], force: bool
) -> list[GeneratedFile]:
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


def generate_key_set(
    out: Path,
    *,
    secure_boot: str = "v1",
    manifest_signing: str = "rsa3072",
    force: bool = False,
    generate: Callable[[str], PrivateKey] = generate_private_key,
) -> list[GeneratedFile]:
    """Create the whole key set in ``out``; return what was written."""
    if secure_boot not in SECURE_BOOT_SCHEMES:
        raise InputError("--secure-boot", f"must be one of {', '.join(SECURE_BOOT_SCHEMES)}")
    if manifest_signing not in MANIFEST_SIGNING_KINDS:
        raise InputError("--manifest-signing", "must be rsa3072 or ecdsa256")
    secure_boot_key = generate(SECURE_BOOT_SCHEMES[secure_boot])
    signing = generate(MANIFEST_SIGNING_KINDS[manifest_signing])
    encryption = generate("rsa4096")
    pre = generate("rsa3072")
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
            "manifest decryption key (device flash, encrypted)",
        ),
        (
            MANIFEST_ENCRYPTION_PUB,
            public_pem(encryption),
            False,
            "manifest encryption public key (author)",
        ),
        (
            PRE_ENCRYPTION_KEY,
            private_pem(pre),
            True,
            "image decryption key (device flash, encrypted)",
        ),
        (PRE_ENCRYPTION_PUB, public_pem(pre), False, "image encryption public key (author)"),
        (
            FRESHNESS_KEY,
            private_pem(freshness),
            True,
            "freshness statement signing key (update server, online)",
        ),
        (FRESHNESS_PUB, public_pem(freshness), False, "freshness public key (device)"),
    ]
    return _write_all(out, files, force)


def _host_names(hosts: Sequence[str]) -> list[object]:
    from cryptography import x509

    names: list[object] = []
    for host in hosts:
        if not host or len(host) > 253 or any(c.isspace() or ord(c) < 0x20 for c in host):
            raise InputError("--host", f"{host!r} is not a host name or IP address")
        try:
            names.append(x509.IPAddress(ipaddress.ip_address(host)))
        except ValueError:
            names.append(x509.DNSName(host))
    return names


def generate_tls(
    out: Path, hosts: Sequence[str], *, force: bool = False, days: int = 825
) -> list[GeneratedFile]:
    """Create a development CA (``ca.pem``) and a server certificate for ``hosts``.

    The CA's private key is not kept: nothing else can be issued under it.
    """
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    if not hosts:
        raise InputError("--host", "give at least one host name or IP address")
    alt_names = _host_names(hosts)
    now = datetime.datetime.now(datetime.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "secure-fota development CA")])
    ca_cert = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=False,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), False)
        .sign(ca_key, hashes.SHA256())
    )
    server_key = ec.generate_private_key(ec.SECP256R1())
    server_cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, hosts[0])]))
        .issuer_name(ca_name)
        .public_key(server_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=min(days, 397)))
        .add_extension(x509.SubjectAlternativeName(alt_names), critical=False)  # type: ignore[arg-type]
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), False
        )
        .sign(ca_key, hashes.SHA256())
    )
    pem = serialization.Encoding.PEM
    files = [
        (
            "ca.pem",
            ca_cert.public_bytes(pem),
            False,
            "development CA certificate (devices trust it)",
        ),
        (
            "server.pem",
            server_cert.public_bytes(pem),
            False,
            f"server certificate for {', '.join(hosts)}",
        ),
        ("server.key", private_pem(server_key), True, "server TLS private key"),
    ]
    return _write_all(out, files, force)


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
    from secure_fota.crypto.keys import Role, key_id, load_private_key
    from secure_fota.keyfiles import (
        KEYSET_VERSION,
        ROTATIONS_DIR,
        read_key_file,
        read_keyset_version,
    )

    if kind not in MANIFEST_SIGNING_KINDS:
        raise InputError("--kind", "must be rsa3072 or ecdsa256")
    old_path = directory / MANIFEST_SIGNING_KEY
    old = load_private_key(Role.MANIFEST_SIGNING, read_key_file(old_path), str(old_path))
    version = read_keyset_version(directory)
    new = generate(MANIFEST_SIGNING_KINDS[kind])
    trusted = [new.public_key(), *([old.public_key()] if keep_old else [])]
    statement = make_rotation(old, version + 1, trusted)

    rotations = directory / ROTATIONS_DIR
    retired = directory / "retired"
    rotations.mkdir(exist_ok=True)
    retired.mkdir(exist_ok=True)
    statement_path = rotations / f"v{version + 1}.jws"
    write_key_file(statement_path, statement.encode() + b"\n", private=False, force=False)
    write_key_file(
        retired / f"manifest_signing_key.v{version}.pem", private_pem(old), private=True, force=True
    )
    for stale in directory.glob("manifest_signing_pub*.pem"):
        stale.unlink()
    if keep_old:
        write_key_file(
            directory / f"manifest_signing_pub.v{version}.pem",
            public_pem(old),
            private=False,
            force=True,
        )
    write_key_file(old_path, private_pem(new), private=True, force=True)
    write_key_file(directory / MANIFEST_SIGNING_PUB, public_pem(new), private=False, force=True)
    write_key_file(
        directory / KEYSET_VERSION, f"{version + 1}\n".encode(), private=False, force=True
    )
    return Rotation(
        version=version + 1, statement=statement_path, new_kid=key_id(new), kept_old=keep_old
    )
