"""``fota fleet``: load a server with many simulated devices (bounded, loopback by default)."""

from __future__ import annotations

import json
from pathlib import Path

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
@out_option(
    "Also write the summary as JSON to this file.",
    dest="json_out",
    required=False,
    file_okay=True,
    dir_okay=False,
    old_names=("--json-out",),
)
def simulate(json_out: Path | None, token_env: str | None, **options: object) -> None:
    """Run N devices on one asyncio loop; print polls, 304s, updates, errors and latency."""
    import asyncio

    from secure_fota.device.fleet import FleetConfig
    from secure_fota.device.fleet import simulate as run

    config = FleetConfig(token=token_from_env(token_env), **options)  # type: ignore[arg-type]
    report = asyncio.run(run(config))
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
    for sample in summary["error_samples"][:5]:
        console(stderr=True).print(f"  error: {sample}")
    if summary["errors"]:
        raise click.exceptions.Exit(1)
