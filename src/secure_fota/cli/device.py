"""``fota device``: the Python reference device (a simulated ESP32 whose state is a directory)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import click

from secure_fota.cli.options import (
    FotaGroup,
    ca_option,
    json_option,
    keys_option,
    secure_boot_option,
    secure_boot_version,
    seq_option,
    token_env_option,
    token_from_env,
)
from secure_fota.cli.output import console, echo_json
from secure_fota.errors import TransportError

if TYPE_CHECKING:
    from secure_fota.device.updater import CheckResult, SelfTest

__all__ = ["device"]

_EXIT = {"rejected": 3, "rolled-back": 1}


@click.group(cls=FotaGroup)
def device() -> None:
    """A simulated ESP32 running the secure-fota client (state kept in a directory)."""


state_option = click.option(
    "--state",
    "state",
    required=True,
    type=click.Path(path_type=Path, file_okay=False),
    help="The device's state directory.",
)


@device.command("init")
@state_option
@click.option("--device-type", required=True, help="The device's type.")
@click.option("--chip", default="esp32", show_default=True, help="Chip (esp32, esp32c3, ...).")
@keys_option("Key folder; the device takes only what a device holds.", exists=True)
@click.option("--server", required=True, help="Update server base URL.")
@ca_option("CA certificate (PEM) the device trusts (default: the system's CAs).")
@click.option(
    "--firmware",
    required=True,
    type=click.Path(path_type=Path, dir_okay=False),
    help="Factory app image (signed here with the secure boot key).",
)
@seq_option("Release number of the factory image.", old_names=())
@secure_boot_option
@click.option(
    "--slot-size",
    type=click.IntRange(4096),
    default=16 * 1024 * 1024,
    show_default=True,
    help="Size of each OTA slot in bytes.",
)
@click.option(
    "--no-freshness", is_flag=True, help="Do not require the server's freshness statements."
)
@token_env_option(
    "Environment variable holding the device's bearer token, for a server whose device "
    "endpoints need one (device_auth = device-type-token or device-token); it is stored in "
    "the device's state, as an ESP32 keeps it in NVS."
)
@click.option(
    "--insecure-plain-http-for-tests",
    is_flag=True,
    help="TESTS ONLY: accept an http:// --server (no TLS: anyone on the path reads the token "
    "and answers for the server). Without it, http:// is refused.",
)
@click.option(
    "--device-id",
    help="The id the device reports and polls with (default: its type and 8 random hex digits).",
)
@click.option("--force", is_flag=True, help="Replace an existing device in --state.")
def init(
    state: Path,
    device_type: str,
    chip: str,
    keys_dir: Path,
    server: str,
    ca_file: Path | None,
    firmware: Path,
    seq: str,
    secure_boot: str | None,
    slot_size: int,
    no_freshness: bool,
    token_env: str | None,
    insecure_plain_http_for_tests: bool,
    device_id: str | None,
    force: bool,
) -> None:
    """Provision a device: keys, CA and the factory image as release SEQ."""
    from secure_fota.device.provision import Provisioning, provision
    from secure_fota.formats.names import check_seq

    config = provision(
        Provisioning(
            state=state,
            device_type=device_type,
            chip=chip,
            keys=keys_dir,
            server=server,
            ca=ca_file,
            firmware=firmware,
            seq=check_seq("--seq", seq),
            secure_boot=secure_boot_version(keys_dir, secure_boot),
            slot_size=slot_size,
            require_freshness=not no_freshness,
            force=force,
            token=token_from_env(token_env),
            insecure_plain_http_for_tests=insecure_plain_http_for_tests,
            device_id=device_id,
        )
    )
    if insecure_plain_http_for_tests and server.lower().startswith("http://"):
        click.echo("warning: this device talks plain HTTP to its server (TESTS ONLY)", err=True)
    click.echo(
        f"device {config.device_id} ({device_type}, {chip}) provisioned in {state}: "
        f"factory release {device_type}/{seq}, "
        f"secure boot {config.secure_boot}, "
        f"freshness {'required' if config.require_freshness else 'off'}"
    )


def _print(result: CheckResult, as_json: bool) -> None:
    if as_json:
        echo_json(result.to_dict())
    else:
        out = console()
        claims = result.claims
        line = result.result
        if claims is not None:
            line += f": {claims.device_type}/{claims.seq} ({claims.fw_name} {claims.version})"
        if result.reason:
            line += f" ({result.reason.value})"
        if result.detail:
            line += f" - {result.detail}"
        out.print(line)
    code = _EXIT.get(result.result, 0)
    if code:
        raise click.exceptions.Exit(code)


def _self_test(mode: str) -> SelfTest:
    return lambda _boot: mode == "pass"


def _failed(exc: TransportError, as_json: bool) -> None:
    """A server answer the device could not use: its transport reason, exit status 1."""
    if not as_json:
        raise exc
    reason = exc.reason.value if exc.reason else None
    echo_json({"result": "failed", "reason": reason, "claims": None, "detail": exc.detail})
    raise click.exceptions.Exit(1)


@device.command("check")
@state_option
@json_option
def check(state: Path, as_json: bool) -> None:
    """Poll the server and report whether an acceptable update exists (changes nothing)."""
    from secure_fota.device.updater import Device

    try:
        result = Device(state).check_for_update()
    except TransportError as exc:
        _failed(exc, as_json)
        return
    _print(result, as_json)


@device.command("update")
@state_option
@json_option
@click.option(
    "--self-test",
    type=click.Choice(["pass", "fail"]),
    default="pass",
    show_default=True,
    help="Outcome of the new image's self-test (fail demonstrates rollback).",
)
@click.option(
    "--interrupt-after",
    type=click.IntRange(0),
    help="Simulate a dropped link after this many downloaded bytes (rerun to resume).",
)
def update(state: Path, as_json: bool, self_test: str, interrupt_after: int | None) -> None:
    """Check, and if there is an update: download, verify, install, reboot, self-test, confirm."""
    from secure_fota.device.updater import Device

    try:
        result = Device(state, self_test=_self_test(self_test)).perform_update(
            interrupt_after=interrupt_after
        )
    except TransportError as exc:
        _failed(exc, as_json)
        return
    _print(result, as_json)


@device.command("status")
@state_option
@json_option
def status(state: Path, as_json: bool) -> None:
    """Running slot, installed release, version, anti-rollback eFuse and slot states."""
    from secure_fota.device.updater import Device

    info = Device(state).status()
    if as_json:
        echo_json(info)
        return
    out = console()
    out.print(
        f"{info['device_type']}: release {info['device_type']}/{info['seq']} "
        f"({info['version']}) on {info['running_slot']}, "
        f"eFuse secure_version {info['secure_version']}"
    )
    for name, slot in info["slots"].items():
        held = "empty" if slot["seq"] is None else f"seq {slot['seq']}"
        out.print(f"  {name:8} {slot['state'] or '-':15} {held:10} {slot.get('version') or ''}")
