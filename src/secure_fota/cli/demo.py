"""``fota demo``: the whole secure update flow, end to end, in a throwaway workspace."""

from __future__ import annotations

from pathlib import Path

import click

__all__ = ["demo"]


@click.command("demo")
@click.option(
    "--workspace",
    type=click.Path(path_type=Path, file_okay=False),
    help="Keep keys, releases, server data and device here (default: a temporary directory).",
)
@click.option(
    "--keep",
    is_flag=True,
    help="Keep the temporary workspace afterwards (its path is printed).",
)
def demo(workspace: Path | None, keep: bool) -> None:
    """Generate keys, start a TLS update server, release 1.0.0 and 1.1.0, update a simulated
    ESP32 (with an interrupted download), then show three attacks failing.

    The user's steps run as the real fota commands, printed as run, in the workspace."""
    from secure_fota.devtools.demo import run_demo

    run_demo(workspace, keep=keep)
