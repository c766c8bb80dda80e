"""``fota author``: build, verify, upload and serve releases."""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

import click

from secure_fota.cli.options import (
    FotaGroup,
    ca_option,
    human_time,
    installed_seq_option,
    json_option,
    keys_option,
    out_option,
    secret_from_env,
    secure_boot_option,
    secure_boot_version,
    seq_option,
    token_env_option,
)
from secure_fota.cli.output import console, echo_json

if TYPE_CHECKING:
    from secure_fota.author.release import ReleaseFiles
    from secure_fota.author.upload import UploadTarget
    from secure_fota.crypto.keyring import AuthorKeys

__all__ = ["author"]

_KEYSTORE_PASSWORD_ENV = "FOTA_KEYSTORE_PASSWORD"  # noqa: S105 -- a variable name


@click.group(cls=FotaGroup)
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
    from secure_fota.keys.directory import load_author_keys

    password = ""
    if keystore is not None:
        given = os.environ.get(password_env)
        password = (
            given
            if given is not None
            else click.prompt("keystore password", hide_input=True, err=True)
        )
    return load_author_keys(
        keys_dir, secure_boot_version=secure_boot, keystore=keystore, keystore_password=password
    )


def release_options(function: click.decorators.FC) -> click.decorators.FC:
    for decorator in reversed(
        [
            click.argument("firmware", type=click.Path(path_type=Path)),
            seq_option(),
            click.option("--device-type", required=True, help="Device type the release is for."),
            click.option(
                "--name",
                "fw_name",
                required=True,
                help="Firmware name (files are NAME-SEQ.manifest and NAME-SEQ.bin).",
            ),
            keys_option(),
            out_option("Folder for the two release files (created if missing)."),
            secure_boot_option,
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
    secure_boot: str | None,
    expires: str | None,
    legacy_manifest: bool,
    keystore: Path | None,
    keystore_password_env: str,
) -> ReleaseFiles:
    from secure_fota.author.release import ReleaseRequest, build_release, parse_duration
    from secure_fota.formats.names import check_name, check_seq

    secure_boot = secure_boot_version(keys_dir, secure_boot)
    request = ReleaseRequest(
        firmware=firmware,
        seq=check_seq("--seq", seq),
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
    files = build_release(request, keys, now=int(time.time()))
    from secure_fota.formats.chip_schemes import scheme_warning

    chip_warning = scheme_warning(files.image.chip, files.claims.secure_boot)
    if chip_warning:
        click.echo(f"warning: {chip_warning}", err=True)
    return files


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
    expiry = f", expires {human_time(claims.exp)}" if claims.exp is not None else ""
    click.echo(
        f"release {claims.device_type}/{claims.seq} ({claims.fw_name}): "
        f"{claims.project} {claims.version} ({files.image.chip}, secure_version "
        f"{claims.secure_version}, secure boot {claims.secure_boot}{expiry})\n"
        f"  {files.manifest}\n"
        f"  {files.binary}  {claims.enc_size} bytes, sha256 {claims.enc_sha256}"
        + (f"\n  {files.legacy_manifest}  (legacy)" if files.legacy_manifest else "")
    )


@author.command("release")
@release_options
@json_option
def release(as_json: bool, **options: object) -> None:
    """Turn an ESP-IDF app image into a signed, encrypted release.

    Validates FIRMWARE, signs it for secure boot, encrypts it in Espressif's
    esp_encrypted_img format and writes OUT/NAME-SEQ.bin with its signed-then-encrypted
    manifest OUT/NAME-SEQ.manifest (OUT is created if missing). Nothing is written if any
    step fails.
    """
    _summary(_build(**options), as_json)  # type: ignore[arg-type]


@author.command("verify")
@click.argument("manifest", type=click.Path(path_type=Path, dir_okay=False))
@click.argument("binary", type=click.Path(path_type=Path, dir_okay=False), required=False)
@keys_option(
    "Key folder with the device's keys (a key set or a device bundle).",
    old_names=("--device-keys",),
)
@click.option("--device-type", help="Device type to judge for (default: the manifest's).")
@click.option("--chip", help="Chip of the device (default: the manifest's).")
@installed_seq_option()
@click.option(
    "--secure-version",
    type=click.IntRange(0),
    default=0,
    show_default=True,
    help="Device's anti-rollback eFuse value.",
)
@json_option
def verify(
    manifest: Path,
    binary: Path | None,
    keys_dir: Path,
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
            keys_dir,
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
    out.print(f"[green]accepted[/green]: {claims.device_type}/{claims.seq} ({claims.fw_name})")
    for key, value in claims.to_dict().items():
        shown = human_time(value) if key in ("iat", "exp") else value
        out.print(f"  {key:15} {shown}")


def upload_options(function: click.decorators.FC) -> click.decorators.FC:
    for decorator in reversed(
        [
            click.option(
                "--server", required=True, help="Update server base URL (https://host:port)."
            ),
            click.option(
                "--user",
                help="Uploader user (HTTP Basic); password from FOTA_UPLOAD_PASSWORD or a prompt.",
            ),
            token_env_option(
                "Environment variable holding an uploader bearer token (instead of --user)."
            ),
            ca_option(),
            click.option(
                "--new-device-type",
                is_flag=True,
                help="The first release of a device type the server has never seen (without it, "
                "an unknown --device-type is refused: a typo must not start a new type).",
            ),
            click.option(
                "--insecure-http",
                is_flag=True,
                help="INSECURE: allow a plain http:// URL (loopback development servers only).",
            ),
        ]
    ):
        function = decorator(function)
    return function


def _target(
    server: str, user: str | None, token_env: str | None, ca_file: Path | None, insecure_http: bool
) -> UploadTarget:
    from secure_fota.author.upload import Credentials, UploadTarget
    from secure_fota.errors import InputError

    if (user is None) == (token_env is None):
        raise InputError("--user/--token-env", "give exactly one of --user and --token-env")
    if token_env is not None:
        credentials = Credentials(token=secret_from_env("--token-env", token_env))
    else:
        password = os.environ.get("FOTA_UPLOAD_PASSWORD")
        if password is None:
            password = click.prompt(f"password for {user}", hide_input=True, err=True)
        credentials = Credentials(user=user, password=password)
    return UploadTarget(
        server=server, credentials=credentials, ca_file=ca_file, allow_insecure_http=insecure_http
    )


hold_option = click.option(
    "--hold",
    is_flag=True,
    help="Hold the release: devices get it only through a rollout (`fota rollout create`).",
)


def _upload(
    target: UploadTarget,
    out_dir: Path,
    fw_name: str,
    seq: int,
    device_type: str,
    *,
    new_device_type: bool,
    hold: bool = False,
) -> str:
    from rich.progress import BarColumn, DownloadColumn, Progress, TransferSpeedColumn

    from secure_fota.author.release import release_paths
    from secure_fota.author.upload import upload_release

    total = sum(p.stat().st_size for p in release_paths(out_dir, fw_name, seq) if p.is_file())
    with Progress(
        "[progress.description]{task.description}",
        BarColumn(),
        DownloadColumn(),
        TransferSpeedColumn(),
        console=console(stderr=True),
        transient=True,
        disable=not sys.stderr.isatty(),  # no bar (and no blank line) in logs and pipes
    ) as bar:
        task = bar.add_task(f"uploading {fw_name}-{seq}", total=total)
        return upload_release(
            target,
            out_dir=out_dir,
            fw_name=fw_name,
            seq=seq,
            device_type=device_type,
            progress=lambda n: bar.advance(task, n),
            allow_new_device_type=new_device_type,
            hold=hold,
        )


@author.command("upload")
@click.argument("out_dir", type=click.Path(path_type=Path, file_okay=False))
@seq_option()
@click.option("--device-type", required=True, help="Device type of the release.")
@click.option(
    "--name",
    "fw_name",
    required=True,
    help="Firmware name (files NAME-SEQ.manifest / NAME-SEQ.bin in OUT_DIR).",
)
@upload_options
@hold_option
def upload(
    out_dir: Path,
    seq: str,
    device_type: str,
    fw_name: str,
    server: str,
    user: str | None,
    token_env: str | None,
    ca_file: Path | None,
    new_device_type: bool,
    insecure_http: bool,
    hold: bool,
) -> None:
    """Upload OUT_DIR/NAME-SEQ.manifest and .bin to the update server (POST /uploadFile)."""
    from secure_fota.formats.names import check_name, check_seq

    number = check_seq("--seq", seq)
    check_name("--name", fw_name)
    check_name("--device-type", device_type)
    target = _target(server, user, token_env, ca_file, insecure_http)
    answer = _upload(
        target, out_dir, fw_name, number, device_type, new_device_type=new_device_type, hold=hold
    )
    held = " (held for a rollout)" if hold else ""
    click.echo(f"uploaded {device_type}/{number} ({fw_name}){held}: server answered {answer}")


@author.command("publish")
@release_options
@upload_options
@hold_option
@json_option
def publish(
    server: str,
    user: str | None,
    token_env: str | None,
    ca_file: Path | None,
    new_device_type: bool,
    insecure_http: bool,
    hold: bool,
    as_json: bool,
    **options: object,
) -> None:
    """Release and upload in one step (fota author release + fota author upload).

    The files are built in a private folder inside OUT and moved into OUT only once the
    server has taken the release: a refused or failed upload (a 409 for a different release
    under the same number, say) leaves what OUT holds as it was.
    """
    from secure_fota.author.staging import keep, staging_folder

    target = _target(server, user, token_env, ca_file, insecure_http)
    out_dir = Path(str(options["out_dir"]))
    with staging_folder(out_dir) as staging:
        files = _build(**(options | {"out_dir": staging}))  # type: ignore[arg-type]
        claims = files.claims
        answer = _upload(
            target,
            staging,
            claims.fw_name,
            claims.seq,
            claims.device_type,
            new_device_type=new_device_type,
            hold=hold,
        )
        files = keep(files, out_dir)
    _summary(files, as_json)
    if not as_json:
        click.echo(f"uploaded: server answered {answer}")


@author.command("serve")
@keys_option("Key folder (or only the public keys, with --keystore).", exists=True)
@click.option(
    "--firmware-dir",
    required=True,
    type=click.Path(path_type=Path, file_okay=False, exists=True),
    help="The only directory firmwarePath may point into.",
)
@out_option("Folder the release files are written to (created if missing).")
@upload_options
@secure_boot_option
@click.option("--expires", help="Manifest lifetime for every release, e.g. 30d.")
@click.option(
    "--host",
    "bind_host",
    default="127.0.0.1",
    show_default=True,
    help="Loopback address to bind (others are refused: plain HTTP, signing keys).",
)
@click.option(
    "--port",
    default=8081,
    show_default=True,
    type=click.IntRange(1, 65535),
    help="Port to listen on.",
)
@click.option(
    "--service-token-env",
    default="FOTA_SERVICE_TOKEN",
    show_default=True,
    help="Environment variable with the bearer token clients must send (random if unset).",
)
@keystore_options
def serve(
    keys_dir: Path,
    firmware_dir: Path,
    out_dir: Path,
    server: str,
    user: str | None,
    token_env: str | None,
    ca_file: Path | None,
    new_device_type: bool,
    insecure_http: bool,
    secure_boot: str | None,
    expires: str | None,
    bind_host: str,
    port: int,
    service_token_env: str,
    keystore: Path | None,
    keystore_password_env: str,
) -> None:
    """Run the seed's local REST service: POST /upload signs, encrypts and uploads a release.

    Unlike the seed, it binds to 127.0.0.1, requires a bearer token, reads firmware only from
    --firmware-dir, validates names, and answers 200 only when the server accepted the upload.
    """
    import secrets

    import uvicorn

    from secure_fota.author.release import parse_duration
    from secure_fota.author.service import ServiceConfig, create_service
    from secure_fota.errors import ConfigError
    from secure_fota.loopback import is_loopback
    from secure_fota.server.uvicorn_protocol import HeadTimeoutProtocol

    if not is_loopback(bind_host):
        # the same rule as `fota server run` for plain HTTP: bearer tokens in clear text and a
        # signing service belong on this machine only
        raise ConfigError(
            f"refusing plain HTTP on {bind_host}: the author service speaks plain HTTP with a "
            "bearer token and signs with your keys; --host must be a loopback address "
            "(127.0.0.1, ::1, localhost)"
        )
    token = os.environ.get(service_token_env)
    if not token:
        token = secrets.token_urlsafe(32)
        click.echo(f"service token (send as 'Authorization: Bearer ...'): {token}", err=True)
    config = ServiceConfig(
        keys_dir=keys_dir,
        firmware_dir=firmware_dir,
        out_dir=out_dir,
        target=_target(server, user, token_env, ca_file, insecure_http),
        token=token,
        secure_boot=secure_boot_version(keys_dir, secure_boot),
        expires_in=parse_duration(expires) if expires else None,
        keystore=keystore,
        keystore_password=os.environ.get(keystore_password_env),
        allow_new_device_type=new_device_type,
    )
    uvicorn.run(
        create_service(config),
        host=bind_host,
        port=port,
        log_level="info",
        http=HeadTimeoutProtocol,  # the update server's request-head deadline and bounds
        proxy_headers=False,  # no proxy belongs in front of a loopback-only service
        server_header=False,
    )
