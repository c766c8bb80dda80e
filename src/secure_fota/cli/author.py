"""``fota author``: build, verify, upload and serve releases."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import TYPE_CHECKING

import click

from secure_fota.cli.output import console, echo_json

if TYPE_CHECKING:
    from secure_fota.author.release import ReleaseFiles
    from secure_fota.keyfiles import AuthorKeys

__all__ = ["author"]

_KEYSTORE_PASSWORD_ENV = "FOTA_KEYSTORE_PASSWORD"  # noqa: S105 -- a variable name


@click.group()
def author() -> None:
    """Build, verify, upload and serve releases (the firmware author's side)."""


def keystore_options(function: click.decorators.FC) -> click.decorators.FC:
    """Options shared by commands that sign: an optional PKCS#12 keystore for private keys."""
    function = click.option(
        "--keystore",
        type=click.Path(path_type=Path, dir_okay=False),
        help="PKCS#12 keystore holding the private signing keys (aliases: "
        "secure_boot_signing_key, manifest_signing_key); public keys still come from --keys.",
    )(function)
    return click.option(
        "--keystore-password-env",
        default=_KEYSTORE_PASSWORD_ENV,
        show_default=True,
        help="Environment variable holding the keystore password (prompted for if unset).",
    )(function)


def _author_keys(
    keys_dir: Path, secure_boot: str, keystore: Path | None, password_env: str
) -> AuthorKeys:
    from secure_fota.keyfiles import load_author_keys

    overrides = None
    if keystore is not None:
        from secure_fota.author.keystore import load_keystore_keys

        password = os.environ.get(password_env)
        if password is None:
            password = click.prompt("keystore password", hide_input=True, err=True)
        overrides = load_keystore_keys(keystore, password.encode(), secure_boot_version=secure_boot)
    return load_author_keys(keys_dir, secure_boot_version=secure_boot, private_overrides=overrides)


def release_options(function: click.decorators.FC) -> click.decorators.FC:
    for decorator in reversed(
        [
            click.argument("firmware", type=click.Path(path_type=Path)),
            click.option(
                "--id",
                "seq",
                required=True,
                type=str,
                help="Release sequence number (positive integer; highest is newest).",
            ),
            click.option("--device-type", required=True, help="Device type the release is for."),
            click.option(
                "--name",
                "fw_name",
                required=True,
                help="Firmware name (files are NAME-ID.manifest and NAME-ID.bin).",
            ),
            click.option(
                "--keys",
                "keys_dir",
                required=True,
                type=click.Path(path_type=Path, file_okay=False),
                help="Key directory from `fota keys generate`.",
            ),
            click.option(
                "--out",
                "out_dir",
                required=True,
                type=click.Path(path_type=Path, file_okay=False),
                help="Directory for the two release files.",
            ),
            click.option(
                "--secure-boot",
                type=click.Choice(["v1", "v2"]),
                default="v1",
                show_default=True,
                help="Secure boot signature version (v2 scheme follows the key type).",
            ),
            click.option(
                "--expires", help="Manifest lifetime, e.g. 30d, 12h, 2w (default: no expiry)."
            ),
            click.option(
                "--legacy-manifest",
                is_flag=True,
                help="Also write the seed's 1024-byte manifest (weak; for migration only).",
            ),
            keystore_options,
        ]
    ):
        function = decorator(function)
    return function


def _build(
    firmware: Path,
    seq: str,
    device_type: str,
    fw_name: str,
    keys_dir: Path,
    out_dir: Path,
    secure_boot: str,
    expires: str | None,
    legacy_manifest: bool,
    keystore: Path | None,
    keystore_password_env: str,
) -> ReleaseFiles:
    from secure_fota.author.release import ReleaseRequest, build_release, parse_duration
    from secure_fota.formats.names import check_name, check_seq

    request = ReleaseRequest(
        firmware=firmware,
        seq=check_seq("--id", seq),
        device_type=check_name("--device-type", device_type),
        fw_name=check_name("--name", fw_name),
        out_dir=out_dir,
        secure_boot=secure_boot,
        expires_in=parse_duration(expires) if expires else None,
        legacy_manifest=legacy_manifest,
    )
    keys = _author_keys(keys_dir, secure_boot, keystore, keystore_password_env)
    for warning in keys.warnings:
        click.echo(f"warning: {warning}", err=True)
    if legacy_manifest:
        from secure_fota.crypto.legacy_manifest import LEGACY_WARNING

        click.echo(f"warning: {LEGACY_WARNING}", err=True)
    return build_release(request, keys, now=int(time.time()))


def _summary(files: ReleaseFiles, as_json: bool) -> None:
    claims = files.claims
    if as_json:
        echo_json(
            {
                "manifest": str(files.manifest),
                "binary": str(files.binary),
                "legacy_manifest": str(files.legacy_manifest) if files.legacy_manifest else None,
                "claims": claims.to_dict(),
            }
        )
        return
    click.echo(
        f"release {claims.fw_name} #{claims.seq} for {claims.device_type}: "
        f"{claims.project} {claims.version} ({files.image.chip}, secure_version "
        f"{claims.secure_version}, secure boot {claims.secure_boot})\n"
        f"  {files.manifest}\n"
        f"  {files.binary}  {claims.enc_size} bytes, sha256 {claims.enc_sha256}"
        + (f"\n  {files.legacy_manifest}  (legacy)" if files.legacy_manifest else "")
    )


@author.command("release")
@release_options
@click.option("--json", "as_json", is_flag=True, help="Print the result as one JSON object.")
def release(as_json: bool, **options: object) -> None:
    """Turn an ESP-IDF app image into a signed, encrypted release.

    Validates FIRMWARE, signs it for secure boot, encrypts it in Espressif's
    esp_encrypted_img format and writes OUT/NAME-ID.bin with its signed-then-encrypted
    manifest OUT/NAME-ID.manifest. Nothing is written if any step fails.
    """
    _summary(_build(**options), as_json)  # type: ignore[arg-type]


@author.command("verify")
@click.argument("manifest", type=click.Path(path_type=Path, dir_okay=False))
@click.argument("binary", type=click.Path(path_type=Path, dir_okay=False), required=False)
@click.option(
    "--device-keys",
    required=True,
    type=click.Path(path_type=Path, file_okay=False),
    help="Directory with the device's keys (a key set or a device bundle).",
)
@click.option("--device-type", help="Device type to judge for (default: the manifest's).")
@click.option("--chip", help="Chip of the device (default: the manifest's).")
@click.option(
    "--installed-seq",
    type=click.IntRange(0),
    default=0,
    show_default=True,
    help="Release the device runs.",
)
@click.option(
    "--secure-version",
    type=click.IntRange(0),
    default=0,
    show_default=True,
    help="Device's anti-rollback eFuse value.",
)
@click.option("--json", "as_json", is_flag=True, help="Print the decision as one JSON object.")
def verify(
    manifest: Path,
    binary: Path | None,
    device_keys: Path,
    device_type: str | None,
    chip: str | None,
    installed_seq: int,
    secure_version: int,
    as_json: bool,
) -> None:
    """Check a release as a device would; print the verified claims or the rejection reason.

    Exits 0 when the release is acceptable, 3 when a device would reject it.
    """
    from secure_fota.author.check import verify_release_files
    from secure_fota.errors import ReleaseRejected

    try:
        claims = verify_release_files(
            manifest,
            binary,
            device_keys,
            device_type=device_type,
            chip=chip,
            installed_seq=installed_seq,
            secure_version=secure_version,
            now=int(time.time()),
        )
    except ReleaseRejected as exc:
        if as_json:
            echo_json({"accept": False, "reason": exc.reason.value, "detail": exc.detail})
            raise click.exceptions.Exit(exc.exit_code) from None
        raise
    if as_json:
        echo_json({"accept": True, "reason": None, "claims": claims.to_dict()})
        return
    out = console()
    out.print(f"[green]accepted[/green]: {claims.fw_name} #{claims.seq} for {claims.device_type}")
    for key, value in claims.to_dict().items():
        out.print(f"  {key:15} {value}")
