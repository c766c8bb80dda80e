"""``fota release``, ``fota devices``, ``fota rollout`` and ``fota audit``: fleet operations
against a running update server over HTTPS (docs/api.md, "Fleet operations")."""

from __future__ import annotations

import datetime
import re
from pathlib import Path
from typing import Any

import click

from secure_fota.cli.options import FotaGroup, json_option, parse_release
from secure_fota.cli.output import console, echo_json
from secure_fota.cli.remote import Remote, remote_options
from secure_fota.errors import InputError
from secure_fota.formats.names import check_name
from secure_fota.wire import (
    AUDIT,
    DEVICE,
    DEVICES,
    RELEASE,
    RELEASE_UNYANK,
    RELEASE_YANK,
    RELEASES,
    ROLLOUT,
    ROLLOUT_ACTION,
    ROLLOUTS,
)

__all__ = ["audit", "devices", "release", "rollout"]

yes_option = click.option("--yes", is_flag=True, help="Do not ask for confirmation.")


def _remote(server: str, ca_file: Path | None, token_env: str) -> Remote:
    return Remote(server, ca_file=ca_file, token_env=token_env)


def _when(value: str | None) -> str:
    """``2026-12-04 03:11:06 UTC`` for an API timestamp (``-`` for none)."""
    if not value:
        return "-"
    moment = datetime.datetime.fromisoformat(value.replace("Z", "+00:00"))
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=datetime.UTC)
    return moment.astimezone(datetime.UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def _confirm(yes: bool, question: str) -> None:
    if not yes and not click.confirm(question, default=False):
        raise click.exceptions.Abort


def _release_path(template: str, name: str) -> str:
    device_type, seq = parse_release(name)
    return template.format(device_type=device_type, release_id=seq)


# -- release ---------------------------------------------------------------------------------


@click.group(cls=FotaGroup)
def release() -> None:
    """List, inspect, yank, unyank and delete releases on an update server."""


def _release_line(r: dict[str, Any]) -> str:
    flags = [flag for flag in ("yanked", "held") if r.get(flag)]
    return (
        f"{r['device_type']}/{r['id']}  {r['fw_name']}  {r['binary_size']} bytes  "
        f"uploaded {_when(r['uploaded_at'])} by {r['uploader']}"
        + (f"  [{', '.join(flags)}]" if flags else "")
    )


@release.command("list")
@click.argument("device_type", metavar="TYPE")
@remote_options
@json_option
def release_list(
    device_type: str, server: str, ca_file: Path | None, token_env: str, as_json: bool
) -> None:
    """The releases of device type TYPE, oldest first."""
    check_name("TYPE", device_type)
    with _remote(server, ca_file, token_env) as remote:
        found = remote.call("GET", RELEASES.format(device_type=device_type))
    if as_json:
        echo_json(found)
        return
    for item in found:
        click.echo(_release_line(item))


@release.command("show")
@click.argument("name", metavar="TYPE/SEQ")
@remote_options
@json_option
def release_show(
    name: str, server: str, ca_file: Path | None, token_env: str, as_json: bool
) -> None:
    """One release: sizes, digests, uploader, yanked or held."""
    with _remote(server, ca_file, token_env) as remote:
        found = remote.call("GET", _release_path(RELEASE, name))
    if as_json:
        echo_json(found)
        return
    click.echo(_release_line(found))
    click.echo(f"  manifest {found['manifest_size']} bytes sha256 {found['manifest_sha256']}")
    click.echo(f"  image    {found['binary_size']} bytes sha256 {found['binary_sha256']}")


def _change(
    name: str, template: str, method: str, remote_args: tuple[str, Path | None, str]
) -> Any:
    with _remote(*remote_args) as remote:
        return remote.call(method, _release_path(template, name))


@release.command("yank")
@click.argument("name", metavar="TYPE/SEQ")
@remote_options
@yes_option
@json_option
def release_yank(
    name: str, server: str, ca_file: Path | None, token_env: str, yes: bool, as_json: bool
) -> None:
    """Withdraw a release: devices get the previous one (admin)."""
    _confirm(yes, f"Yank {name}? Devices will be offered the previous release.")
    found = _change(name, RELEASE_YANK, "POST", (server, ca_file, token_env))
    echo_json(found) if as_json else click.echo(f"yanked {name}")


@release.command("unyank")
@click.argument("name", metavar="TYPE/SEQ")
@remote_options
@json_option
def release_unyank(
    name: str, server: str, ca_file: Path | None, token_env: str, as_json: bool
) -> None:
    """Offer a yanked release again (admin)."""
    found = _change(name, RELEASE_UNYANK, "POST", (server, ca_file, token_env))
    echo_json(found) if as_json else click.echo(f"unyanked {name}")


@release.command("delete")
@click.argument("name", metavar="TYPE/SEQ")
@remote_options
@yes_option
@json_option
def release_delete(
    name: str, server: str, ca_file: Path | None, token_env: str, yes: bool, as_json: bool
) -> None:
    """Delete a release for good (admin; its files go at the next garbage collection)."""
    _confirm(yes, f"Delete {name} for good?")
    _change(name, RELEASE, "DELETE", (server, ca_file, token_env))
    echo_json({"deleted": name}) if as_json else click.echo(f"deleted {name}")


# -- devices ---------------------------------------------------------------------------------


@click.group(cls=FotaGroup)
def devices() -> None:
    """The inventory: which device runs what, and what it reported last."""


def _device_line(d: dict[str, Any]) -> str:
    rollout = f"  rollout {d['rollout_id']} ({d['rollout_outcome']})" if d["rollout_id"] else ""
    running = "-" if d["running_seq"] is None else f"{d['device_type']}/{d['running_seq']}"
    return (
        f"{d['device_id']}  {running}  {d['version'] or '-'}  "
        f"last {d['last_event'] or '-'} {_when(d['last_report_at'])}{rollout}"
    )


@devices.command("list")
@click.option("--device-type", metavar="TYPE", help="Only devices of this type.")
@click.option(
    "--rollout", "rollout_id", type=click.IntRange(1), help="Only devices offered this rollout."
)
@click.option(
    "--limit", type=click.IntRange(1, 1_000_000), default=1000, show_default=True,
    help="At most this many devices (read page by page).",
)  # fmt: skip
@remote_options
@json_option
def devices_list(
    device_type: str | None,
    rollout_id: int | None,
    limit: int,
    server: str,
    ca_file: Path | None,
    token_env: str,
    as_json: bool,
) -> None:
    """Devices ordered by id, with their running release and last report."""
    params: dict[str, Any] = {}
    if device_type is not None:
        params["deviceType"] = check_name("--device-type", device_type)
    if rollout_id is not None:
        params["rollout"] = rollout_id
    found: list[dict[str, Any]] = []
    with _remote(server, ca_file, token_env) as remote:
        after = None
        while len(found) < limit:
            page = remote.call(
                "GET",
                DEVICES,
                params={**params, "limit": min(500, limit - len(found))}
                | ({"after": after} if after else {}),
            )
            found += page["devices"]
            after = page["next"]
            if after is None:
                break
    if as_json:
        echo_json(found)
        return
    for item in found:
        click.echo(_device_line(item))
    console(stderr=True).print(f"{len(found)} devices")


@devices.command("show")
@click.argument("device_id", metavar="ID")
@remote_options
@json_option
def devices_show(
    device_id: str, server: str, ca_file: Path | None, token_env: str, as_json: bool
) -> None:
    """One device: its key's origin, running release, last report and rollout."""
    check_name("ID", device_id)
    with _remote(server, ca_file, token_env) as remote:
        found = remote.call("GET", DEVICE.format(device_id=device_id))
    if as_json:
        echo_json(found)
        return
    click.echo(_device_line(found))
    click.echo(f"  type {found['device_type']}, secure_version {found['secure_version']}, "
               f"key {found['key_source']}, first seen {_when(found['first_seen'])}")  # fmt: skip
    if found["last_reason"] or found["last_detail"]:
        click.echo(f"  reason {found['last_reason'] or '-'}: {found['last_detail'] or ''}")


# -- rollout ---------------------------------------------------------------------------------

_DURATION = re.compile(r"(\d+)([smhd]?)")
_UNITS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_duration(field: str, text: str) -> int:
    """``90``, ``45s``, ``30m``, ``1h``, ``2d`` -> seconds."""
    match = _DURATION.fullmatch(text.strip())
    if not match:
        raise InputError(field, f"expected a duration such as 30m, 1h or 2d, got {text!r}")
    return int(match.group(1)) * _UNITS[match.group(2)]


def parse_rate(field: str, text: str) -> float:
    """``5%`` or ``0.05`` -> 0.05."""
    try:
        value = float(text[:-1]) / 100 if text.endswith("%") else float(text)
    except ValueError:
        raise InputError(field, f"expected a share such as 5% or 0.05, got {text!r}") from None
    if not 0 <= value <= 1:
        raise InputError(field, "must be between 0% and 100%")
    return value


def parse_stages(text: str) -> list[int]:
    try:
        stages = [int(part) for part in text.split(",")]
    except ValueError:
        raise InputError(
            "--stages", f"expected percentages such as 1,10,50,100, got {text!r}"
        ) from None
    if stages != sorted(set(stages)) or stages[0] < 1 or stages[-1] != 100:
        raise InputError("--stages", "must be increasing percentages ending at 100")
    return stages


@click.group(cls=FotaGroup)
def rollout() -> None:
    """Staged rollouts: a release reaches a growing share of the fleet, and stops itself
    when too many devices fail."""


def print_rollout(r: dict[str, Any]) -> None:
    stages = ",".join(str(s) for s in r["stages"])
    click.echo(
        f"rollout {r['id']}: {r['device_type']}/{r['seq']} {r['state']}, stage {r['stage']} of "
        f"{len(r['stages'])} ({r['stages'][r['stage'] - 1]}%; stages {stages}), "
        f"max failure rate {r['max_failure_rate']:.1%}, started {_when(r['created_at'])} "
        f"by {r['created_by']}"
    )
    if r.get("note"):
        click.echo(f"  {r['note']}")
    for s in r.get("progress") or []:
        if s["offered"] or s["stage"] <= r["stage"]:
            click.echo(
                f"  stage {s['stage']} ({s['percent']}%): {s['offered']} offered, "
                f"{s['confirmed']} confirmed, {s['failed']} failed, {s['silent']} silent, "
                f"{s['pending']} pending"
            )


def _create(
    name: str,
    stages: str,
    stage_wait: str,
    silent_deadline: str,
    max_failure_rate: str,
    min_devices: int,
    remote_args: tuple[str, Path | None, str],
    as_json: bool,
) -> None:
    device_type, seq = parse_release(name)
    body = {
        "device_type": device_type,
        "seq": seq,
        "stages": parse_stages(stages),
        "stage_wait": parse_duration("--stage-wait", stage_wait),
        "silent_deadline": parse_duration("--silent-deadline", silent_deadline),
        "max_failure_rate": parse_rate("--max-failure-rate", max_failure_rate),
        "min_devices": min_devices,
    }
    with _remote(*remote_args) as remote:
        created = remote.call("POST", ROLLOUTS, json=body)
    echo_json(created) if as_json else print_rollout(created)


def _create_command(name: str, help_text: str) -> None:
    @rollout.command(name, help=help_text)
    @click.argument("release_name", metavar="TYPE/SEQ")
    @click.option("--stages", default="1,10,50,100", show_default=True,
                  help="Percent of the fleet per stage, increasing, ending at 100.")  # fmt: skip
    @click.option("--stage-wait", default="1h", show_default=True,
                  help="Least time per stage (30m, 1h, 2d) before it may advance.")  # fmt: skip
    @click.option("--silent-deadline", default="1h", show_default=True,
                  help="A device silent this long after the offer counts as failed.")  # fmt: skip
    @click.option("--max-failure-rate", default="5%", show_default=True,
                  help="Abort when failed and silent devices pass this share.")  # fmt: skip
    @click.option("--min-devices", type=click.IntRange(1), default=20, show_default=True,
                  help="The failure rate is counted over at least this many devices.")  # fmt: skip
    @remote_options
    @json_option
    def create(
        release_name: str,
        stages: str,
        stage_wait: str,
        silent_deadline: str,
        max_failure_rate: str,
        min_devices: int,
        server: str,
        ca_file: Path | None,
        token_env: str,
        as_json: bool,
    ) -> None:
        _create(
            release_name,
            stages,
            stage_wait,
            silent_deadline,
            max_failure_rate,
            min_devices,
            (server, ca_file, token_env),
            as_json,
        )


_create_command("create", "Start a staged rollout of release TYPE/SEQ (admin).")
_create_command("start", "Start a staged rollout of release TYPE/SEQ (admin; = create).")


@rollout.command("list")
@click.option("--device-type", metavar="TYPE", help="Only rollouts of this type.")
@remote_options
@json_option
def rollout_list(
    device_type: str | None, server: str, ca_file: Path | None, token_env: str, as_json: bool
) -> None:
    """Rollouts, newest first."""
    params = {"deviceType": check_name("--device-type", device_type)} if device_type else {}
    with _remote(server, ca_file, token_env) as remote:
        found = remote.call("GET", ROLLOUTS, params=params)
    if as_json:
        echo_json(found)
        return
    for item in found:
        print_rollout(item)


def _show_command(name: str, help_text: str) -> None:
    @rollout.command(name, help=help_text)
    @click.argument("rollout_id", metavar="ID", type=click.IntRange(1))
    @remote_options
    @json_option
    def show(
        rollout_id: int, server: str, ca_file: Path | None, token_env: str, as_json: bool
    ) -> None:
        with _remote(server, ca_file, token_env) as remote:
            found = remote.call("GET", ROLLOUT.format(rollout_id=rollout_id))
        echo_json(found) if as_json else print_rollout(found)


_show_command("show", "A rollout and its progress per stage.")
_show_command("status", "A rollout and its progress per stage (= show).")


def _action_command(action: str, help_text: str, *, confirm: str | None) -> None:
    @rollout.command(action, help=help_text)
    @click.argument("rollout_id", metavar="ID", type=click.IntRange(1))
    @remote_options
    @yes_option
    @json_option
    def control(
        rollout_id: int, server: str, ca_file: Path | None, token_env: str, yes: bool, as_json: bool
    ) -> None:
        if confirm is not None:
            _confirm(yes, confirm.format(rollout_id=rollout_id))
        with _remote(server, ca_file, token_env) as remote:
            found = remote.call("POST", ROLLOUT_ACTION.format(rollout_id=rollout_id, action=action))
        echo_json(found) if as_json else print_rollout(found)


_action_command("pause", "Hold a rollout at its current stage (admin).", confirm=None)
_action_command("resume", "Let a paused rollout advance again (admin).", confirm=None)
_action_command(
    "abort",
    "Stop a rollout and yank its release (admin).",
    confirm="Abort rollout {rollout_id}? Its release is yanked for every device.",
)


# -- audit -----------------------------------------------------------------------------------


@click.group(cls=FotaGroup)
def audit() -> None:
    """The audit log: every change, who made it, and when."""


@audit.command("list")
@click.option("--limit", type=click.IntRange(1, 500), default=50, show_default=True,
              help="Newest events to show.")  # fmt: skip
@remote_options
@json_option
def audit_list(
    limit: int, server: str, ca_file: Path | None, token_env: str, as_json: bool
) -> None:
    """The newest events first."""
    with _remote(server, ca_file, token_env) as remote:
        found = remote.call("GET", AUDIT, params={"limit": limit})
    if as_json:
        echo_json(found)
        return
    for e in found:
        detail = f"  ({e['detail']})" if e["detail"] else ""
        click.echo(f"{_when(e['at'])}  {e['actor']}  {e['action']}  {e['target']}{detail}")
