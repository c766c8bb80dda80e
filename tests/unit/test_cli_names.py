"""The command line's naming rule (README "Names on the command line", cli/options.py):
one name for one thing, help on every option, old spellings only as hidden warning aliases."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import click
import pytest

from secure_fota.cli.main import cli
from secure_fota.cli.options import RenamedOption, human_time, parse_release
from secure_fota.errors import InputError
from tests.conftest import CliResult

#: spellings the rule retired: each still works as a hidden alias, none is shown
RETIRED = {"--id", "--device-keys", "--json-out"}
#: the one name per destination
CANONICAL = {
    "seq": "--seq",
    "installed_seq": "--installed-seq",
    "keys_dir": "--keys",
    "ca_file": "--ca",
    "as_json": "--json",
}


def _commands() -> Iterator[tuple[str, click.Command]]:
    def walk(prefix: str, group: click.Group) -> Iterator[tuple[str, click.Command]]:
        ctx = click.Context(group)
        for name in group.list_commands(ctx):
            command = group.get_command(ctx, name)
            assert command is not None
            path = f"{prefix} {name}".strip()
            if isinstance(command, click.Group):
                yield from walk(path, command)
            else:
                yield path, command

    yield from walk("", cli)


COMMANDS = dict(_commands())


def test_the_tree_is_walked() -> None:
    assert {"author release", "author verify", "device init", "fleet simulate"} <= set(COMMANDS)
    assert len(COMMANDS) > 20


@pytest.mark.parametrize("path", sorted(COMMANDS))
def test_every_option_has_help_and_its_one_name(path: str) -> None:
    for param in COMMANDS[path].params:
        if not isinstance(param, click.Option) or param.hidden:
            continue
        assert param.help, f"fota {path} {param.opts[0]} has no help text"
        assert not set(param.opts) & RETIRED, f"fota {path} shows a retired name {param.opts}"
        if param.name in CANONICAL:
            assert param.opts == [CANONICAL[param.name]], f"fota {path}: {param.opts}"


@pytest.mark.parametrize("path", sorted(COMMANDS))
def test_help_runs_and_hides_retired_names(path: str, fota_main: Callable[..., CliResult]) -> None:
    result = fota_main(*path.split(), "--help")
    assert result.returncode == 0, result.stderr
    assert not any(name in result.stdout.split() for name in RETIRED)


def test_renamed_options_keep_their_old_spellings() -> None:
    olds = {
        old
        for command in COMMANDS.values()
        for param in command.params
        if isinstance(param, RenamedOption)
        for old in param.old_names
    }
    assert olds == RETIRED


def test_human_time() -> None:
    assert human_time(0) == "1970-01-01 00:00:00 UTC"
    assert human_time(1_800_000_000) == "2027-01-15 08:00:00 UTC"
    assert human_time(None) == "-"


def test_parse_release() -> None:
    assert parse_release("greenhouse-sensor/42") == ("greenhouse-sensor", 42)
    for bad in ("greenhouse-sensor", "a/0", "a/b", "/3", "a/b/3"):
        with pytest.raises(InputError):
            parse_release(bad)
