"""``fota fleet``: load a server with many simulated devices (bounded, loopback by default)."""

from __future__ import annotations

import json
import threading
from pathlib import Path
from typing import Any

import click

from secure_fota.cli.options import (
    FotaGroup,
    ca_option,
    installed_seq_option,
    keys_option,
    out_option,
    token_env_option,
    token_from_env,
)
from secure_fota.cli.output import console

__all__ = ["fleet"]


@click.group(cls=FotaGroup)
def fleet() -> None:
    """Simulate a fleet of devices against an update server."""


@fleet.command("simulate")
@click.option(
    "--server", required=True, help="Update server base URL (loopback unless --allow-remote)."
)
@click.option("--device-type", required=True, help="Device type every simulated device has.")
@click.option(
    "--devices",
    type=click.IntRange(1, 100_000),
    default=100,
    show_default=True,
    help="Number of simulated devices.",
)
@click.option(
    "--duration",
    type=click.FloatRange(0.1, 3600),
    default=30.0,
    show_default=True,
    help="Seconds to run.",
)
@click.option(
    "--poll-interval",
    type=click.FloatRange(0.01, 3600),
    default=5.0,
    show_default=True,
    help="Seconds between one device's polls.",
)
@ca_option()
@keys_option(
    "Device keys: verify manifests and freshness like real devices (default: protocol only).",
    required=False,
    exists=True,
)
@installed_seq_option("Release number every device starts on (0: none).")
@click.option(
    "--max-requests",
    type=click.IntRange(1),
    default=1_000_000,
    show_default=True,
    help="Stop after this many requests.",
)
@click.option(
    "--new-connection-per-poll",
    is_flag=True,
    help="Open a new TLS connection for every poll, as a sleeping ESP32 does.",
)
@click.option(
    "--max-connections",
    type=click.IntRange(1, 10_000),
    default=512,
    show_default=True,
    help="Most TLS connections open at once.",
)
@token_env_option(
    "Environment variable holding the bearer token every simulated device sends (a server "
    "with device_auth = device-type-token or device-token)."
)
@click.option("--allow-remote", is_flag=True, help="Allow a non-loopback server (you must own it).")
@click.option(
    "--device-id-prefix",
    metavar="PREFIX",
    help="Device ids are PREFIX-00000, PREFIX-00001, ... (default: sim- and a random tag).",
)
@click.option("--no-reports", is_flag=True, help="Send no device reports (polls only).")
@click.option(
    "--fail-self-test",
    default="0%",
    show_default=True,
    metavar="SHARE",
    help="Share of devices whose new image fails its self-test (they report failed).",
)
@click.option(
    "--roll-back",
    default="0%",
    show_default=True,
    metavar="SHARE",
    help="Share of devices whose new image is rolled back (they report rolled_back).",
)
@click.option(
    "--silent",
    default="0%",
    show_default=True,
    metavar="SHARE",
    help="Share of devices that go silent after downloading (they never report).",
)
@token_env_option(
    "Environment variable holding an uploader's or admin's token: print the device type's "
    "rollout progress while the fleet runs.",
    name="--staff-token-env",
)
@out_option(
    "Also write the summary as JSON to this file.",
    dest="json_out",
    required=False,
    file_okay=True,
    dir_okay=False,
    old_names=("--json-out",),
)
def simulate(
    json_out: Path | None,
    no_reports: bool,
    fail_self_test: str,
    roll_back: str,
    silent: str,
    token_env: str | None,
    staff_token_env: str | None,
    **options: Any,
) -> None:
    """Run N devices on one asyncio loop; print polls, 304s, updates, errors and latency
    (and, with --staff-token-env, the rollout's progress as it changes)."""
    import asyncio

    from secure_fota.cli.operations import parse_rate
    from secure_fota.device.fleet import FleetConfig
    from secure_fota.device.fleet import simulate as run

    config = FleetConfig(
        token=token_from_env(token_env),
        reports=not no_reports,
        fail_self_test=parse_rate("--fail-self-test", fail_self_test),
        roll_back=parse_rate("--roll-back", roll_back),
        silent=parse_rate("--silent", silent),
        **options,
    ).validated()
    watcher = (
        None
        if staff_token_env is None
        else _RolloutWatcher(
            config.server, options.get("ca_file"), staff_token_env, config.device_type
        )
    )
    try:
        report = asyncio.run(run(config))
    finally:
        if watcher is not None:
            watcher.stop()
    summary = report.summary()
    if json_out is not None:
        json_out.parent.mkdir(parents=True, exist_ok=True)
        json_out.write_text(json.dumps(summary, indent=2))
    latency = summary["latency_ms"]
    console().print(
        f"{summary['devices']} devices, {summary['duration']:.1f} s: {summary['polls']} polls "
        f"({summary['polls_per_second']}/s), {summary['not_modified']} not modified, "
        f"{summary['manifests']} manifests, {summary['updates']} updates, "
        f"{summary['rejected']} rejected, {summary['errors']} errors; latency ms "
        f"p50 {latency['p50']} p90 {latency['p90']} p99 {latency['p99']} max {latency['max']}"
    )
    if config.reports:
        faults = ", ".join(f"{n} {k}" for k, n in sorted(summary["faults"].items())) or "none"
        console().print(
            f"reports: {summary['reports']} delivered, {summary['report_errors']} attempts "
            f"refused or lost, {summary['reports_undelivered']} still queued at the end; "
            f"injected faults: {faults}"
        )
    for sample in summary["error_samples"][:5]:
        console(stderr=True).print(f"  error: {sample}")
    if summary["errors"]:
        raise click.exceptions.Exit(1)


class _RolloutWatcher:
    """Prints the newest rollout of a device type whenever its progress changes (a thread
    polling the staff API once a second while the fleet runs)."""

    def __init__(self, server: str, ca_file: Path | None, token_env: str, device_type: str) -> None:
        from secure_fota.cli.remote import Remote

        self._remote = Remote(server, ca_file=ca_file, token_env=token_env)
        self._device_type = device_type
        self._stop = threading.Event()
        self._last = ""
        self._thread = threading.Thread(target=self._run, name="rollout-watcher", daemon=True)
        self._thread.start()

    def _line(self) -> str:
        from secure_fota.wire import ROLLOUT, ROLLOUTS

        found = self._remote.call(
            "GET", ROLLOUTS, params={"deviceType": self._device_type, "limit": 1}
        )
        if not found:
            return "no rollout"
        r = self._remote.call("GET", ROLLOUT.format(rollout_id=found[0]["id"]))
        stages = "; ".join(
            f"{s['percent']}%: {s['confirmed']} ok {s['failed'] + s['silent']} failed "
            f"{s['pending']} pending"
            for s in r["progress"]
            if s["offered"] or s["stage"] <= r["stage"]
        )
        note = f" ({r['note']})" if r.get("note") else ""
        return (
            f"rollout {r['id']} {r['device_type']}/{r['seq']} {r['state']} "
            f"stage {r['stage']}/{len(r['stages'])} [{stages}]{note}"
        )

    def _run(self) -> None:
        from secure_fota.errors import FotaError

        while not self._stop.is_set():
            try:
                line = self._line()
            except FotaError as exc:
                line = f"rollout progress unavailable: {exc}"
            if line != self._last:
                console().print(line)
                self._last = line
            self._stop.wait(1.0)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        from secure_fota.errors import FotaError

        try:
            console().print(f"final: {self._line()}")
        except FotaError as exc:
            console(stderr=True).print(f"rollout progress unavailable: {exc}")
        finally:
            self._remote.__exit__()
