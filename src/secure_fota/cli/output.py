"""Shared output helpers for the CLI: Rich consoles (imported lazily) and JSON lines."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

import click

if TYPE_CHECKING:
    from rich.console import Console

__all__ = ["console", "echo_json"]


def console(*, stderr: bool = False) -> Console:
    """A Rich console; imported on demand so that fast paths do not pay for Rich."""
    from rich.console import Console

    return Console(stderr=stderr, highlight=False, soft_wrap=True)


def echo_json(value: Any) -> None:
    """Print one JSON object on one line."""
    click.echo(json.dumps(value, sort_keys=True, separators=(",", ":")))
