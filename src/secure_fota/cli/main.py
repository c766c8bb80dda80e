"""``fota``: the entry point, lazy subcommand loading and the one error translation.

Every :class:`FotaError` becomes one line on standard error and the error's exit status
(2 for bad input, 3 for a rejected release, 1 otherwise); nothing else prints a traceback
unless ``FOTA_DEBUG`` is set.
"""

from __future__ import annotations

import importlib
import os
import sys
from typing import Final

import click

from secure_fota import __version__
from secure_fota.errors import FotaError

__all__ = ["cli", "main"]

#: subcommand name -> (module, attribute, one-line help)
_SUBCOMMANDS: Final = {
    "keys": ("secure_fota.cli.keys", "keys", "Generate the key set and development TLS files."),
    "author": (
        "secure_fota.cli.author",
        "author",
        "Build, verify, upload and serve releases (the firmware author's side).",
    ),
    "server": (
        "secure_fota.cli.server",
        "server",
        "Run the update server; manage its database, users and tokens.",
    ),
    "device": (
        "secure_fota.cli.device",
        "device",
        "A simulated ESP32 running the secure-fota client (reference device).",
    ),
    "fleet": ("secure_fota.cli.fleet", "fleet", "Simulate a fleet of devices (load generator)."),
    "release": (
        "secure_fota.cli.operations",
        "release",
        "List, show, yank, unyank and delete releases on an update server.",
    ),
    "devices": (
        "secure_fota.cli.operations",
        "devices",
        "The device inventory: who runs what, what it reported last.",
    ),
    "rollout": (
        "secure_fota.cli.operations",
        "rollout",
        "Staged rollouts that stop themselves on failure.",
    ),
    "audit": ("secure_fota.cli.operations", "audit", "The audit log of every change."),
    "demo": ("secure_fota.cli.demo", "demo", "Run the end-to-end demo with three attacks."),
}


class LazyGroup(click.Group):
    """A click group whose subcommands are imported on first use (fast start-up)."""

    def list_commands(self, ctx: click.Context) -> list[str]:  # noqa: ARG002 -- click's API
        return sorted(_SUBCOMMANDS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:  # noqa: ARG002
        entry = _SUBCOMMANDS.get(cmd_name)
        if entry is None:
            return None
        module = importlib.import_module(entry[0])
        command = getattr(module, entry[1])
        if not isinstance(command, click.Command):  # pragma: no cover - programming error
            raise TypeError(f"{entry[0]}.{entry[1]} is not a click command")
        return command

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        rows = [(name, _SUBCOMMANDS[name][2]) for name in self.list_commands(ctx)]
        with formatter.section("Commands"):
            formatter.write_dl(rows)


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="fota")
def cli() -> None:
    """secure-fota: signed, encrypted, fresh firmware updates for ESP32 fleets."""


def _report(message: str) -> None:
    click.echo(f"error: {message}", err=True)


def main(argv: list[str] | None = None) -> None:
    """Run ``fota``; translate our errors into one line and an exit status."""
    try:
        # without standalone mode, click returns the code of a ``ctx.exit(code)`` instead
        result = cli.main(args=argv, prog_name="fota", standalone_mode=False)
        if isinstance(result, int) and result:
            sys.exit(result)
    except FotaError as exc:
        if os.environ.get("FOTA_DEBUG"):
            raise
        _report(str(exc))
        sys.exit(exc.exit_code)
    except click.exceptions.Abort:
        _report("aborted")
        sys.exit(1)
    except click.UsageError as exc:
        command = exc.ctx.command_path if exc.ctx is not None else "fota"
        _report(f"{exc.format_message()} (see '{command} --help')")
        sys.exit(exc.exit_code)
    except click.ClickException as exc:
        _report(exc.format_message())
        sys.exit(exc.exit_code)
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        _report("interrupted")
        sys.exit(130)


if __name__ == "__main__":  # pragma: no cover
    main()
