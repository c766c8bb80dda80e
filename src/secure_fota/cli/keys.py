"""``fota keys``: the key set of the seed's steps 0.1-0.5, and development TLS files."""

from __future__ import annotations

from pathlib import Path

import click

from secure_fota.cli.options import FotaGroup, keys_option
from secure_fota.cli.output import console

__all__ = ["keys"]


@click.group(cls=FotaGroup)
def keys() -> None:
    """Generate the key set and development TLS files."""


@keys.command("generate")
@click.option(
    "--out",
    "out",
    required=True,
    type=click.Path(path_type=Path),
    help="Directory to write the keys to.",
)
@click.option(
    "--secure-boot",
    type=click.Choice(["v1", "v2-rsa3072", "v2-ecdsa256", "v2-ecdsa384"]),
    default="v1",
    show_default=True,
    help="Secure boot scheme of the signing key (v1 = ECDSA P-256, original ESP32 only).",
)
@click.option(
    "--manifest-signing",
    type=click.Choice(["rsa3072", "ecdsa256"]),
    default="rsa3072",
    show_default=True,
    help="Manifest signing key type (PS256 or ES256 signatures).",
)
@click.option(
    "--manifest-encryption",
    type=click.Choice(["rsa4096", "ec-p256"]),
    default="rsa4096",
    show_default=True,
    help="Manifest encryption key type (JWE RSA-OAEP-256, or ECDH-ES+A256KW: about 20x less "
    "device time).",
)
@click.option(
    "--pre-encryption",
    type=click.Choice(["rsa3072", "ecies-p256"]),
    default="rsa3072",
    show_default=True,
    help="Image pre-encryption scheme of esp_encrypted_img: RSA-3072, or ECIES-P256 (>= 2.4; "
    "the device key is derived from an eFuse HMAC key; chips with an HMAC peripheral).",
)
@click.option("--force", is_flag=True, help="Overwrite existing key files (destroys the old keys).")
def generate(
    out: Path,
    secure_boot: str,
    manifest_signing: str,
    manifest_encryption: str,
    pre_encryption: str,
    force: bool,
) -> None:
    """Create the whole key set: secure boot, flash encryption, manifest and image keys.

    Private files are created with mode 0600. Existing keys are never overwritten without
    --force.
    """
    from rich.table import Table

    from secure_fota.keys.generate import generate_key_set

    files = generate_key_set(
        out,
        secure_boot=secure_boot,
        manifest_signing=manifest_signing,
        manifest_encryption=manifest_encryption,
        pre_encryption=pre_encryption,
        force=force,
    )
    table = Table("file", "mode", "what it is and where it goes", title=f"key set in {out}")
    for item in files:
        table.add_row(item.path.name, "0600" if item.private else "0644", item.purpose)
    console().print(table)


@keys.command("tls")
@click.option(
    "--out",
    "out",
    required=True,
    type=click.Path(path_type=Path),
    help="Directory to write ca.pem, server.pem and server.key to.",
)
@click.option(
    "--host",
    "hosts",
    multiple=True,
    required=True,
    help="DNS name or IP address of the server (repeatable).",
)
@click.option(
    "--days",
    type=click.IntRange(1, 3650),
    default=825,
    show_default=True,
    help="CA validity; the server certificate gets at most 397 days.",
)
@click.option("--force", is_flag=True, help="Overwrite existing files.")
def tls(out: Path, hosts: tuple[str, ...], days: int, force: bool) -> None:
    """Create a development CA and an ECDSA P-256 server certificate (for demos and tests).

    The CA's private key is discarded. Production servers use a certificate from a real CA.
    """
    from secure_fota.keys.tls import generate_tls

    files = generate_tls(out, list(hosts), force=force, days=days)
    for item in files:
        console().print(f"{item.path}  {item.purpose}")


@keys.command("rotate")
@keys_option("The key folder whose manifest-signing key is replaced.", exists=True)
@click.option(
    "--kind",
    type=click.Choice(["rsa3072", "ecdsa256"]),
    default="rsa3072",
    show_default=True,
    help="Type of the new manifest-signing key.",
)
@click.option(
    "--keep-old", is_flag=True, help="Keep trusting the old key too (otherwise devices revoke it)."
)
def rotate(keys_dir: Path, kind: str, keep_old: bool) -> None:
    """Replace the manifest-signing key; the old key signs a statement naming the new one.

    Every later release carries the rotation statements, so devices learn the new key from
    the old one even if they missed releases. Keep retired/ offline: it holds the old key.
    """
    from secure_fota.keys.generate import rotate_signing_key

    rotation = rotate_signing_key(keys_dir, kind=kind, keep_old=keep_old)
    console().print(
        f"key set version {rotation.version}: new manifest signing key {rotation.new_kid[:16]}..., "
        f"statement {rotation.statement}; "
        f"old key {'still trusted' if rotation.kept_old else 'revoked'}"
    )
