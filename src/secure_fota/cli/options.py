"""One name for one thing: the options every ``fota`` command spells the same way.

The naming rule (README, "Names on the command line"):

* ``--seq N``            the number of a release (positive integer; highest is newest)
* ``--installed-seq N``  the release number a device runs
* ``--keys DIR``         a key folder (from ``fota keys generate``, or a device's bundle)
* ``--out PATH``         where a command writes (a folder or a file; folders are created)
* ``--token-env NAME``   the environment variable holding a bearer token (role-specific
  ``--staff-token-env`` style names where a command needs two tokens)
* ``TYPE/SEQ``           a release named in positional arguments (:func:`parse_release`)

Old spellings keep working as hidden aliases that print one deprecation warning; they are
declared with :class:`RenamedOption` and rewritten by :class:`FotaCommand` before parsing.
"""

from __future__ import annotations

import datetime
import os
import re
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Final, TypeVar

import click

from secure_fota.errors import InputError

__all__ = [
    "FotaCommand",
    "FotaGroup",
    "RenamedOption",
    "ca_option",
    "human_time",
    "installed_seq_option",
    "json_option",
    "keys_option",
    "out_option",
    "parse_release",
    "secret_from_env",
    "secure_boot_option",
    "secure_boot_version",
    "seq_option",
    "token_env_option",
    "token_from_env",
]

_F = TypeVar("_F", bound=Callable[..., Any])


class RenamedOption(click.Option):
    """An option with former spellings (``old_names``) that still work but warn."""

    def __init__(self, *args: Any, old_names: Sequence[str] = (), **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.old_names = tuple(old_names)


def _rewrite(command: click.Command, args: list[str]) -> list[str]:
    renames: dict[str, str] = {}
    for param in command.params:
        if isinstance(param, RenamedOption):
            primary = max(param.opts, key=len)
            renames.update(dict.fromkeys(param.old_names, primary))
    if not renames:
        return args
    out: list[str] = []
    for index, arg in enumerate(args):
        if arg == "--":
            return out + args[index:]
        name, sep, value = arg.partition("=")
        new = renames.get(name)
        if new is None:
            out.append(arg)
            continue
        click.echo(f"warning: {name} is deprecated; use {new}", err=True)
        out.append(f"{new}{sep}{value}")
    return out


class FotaCommand(click.Command):
    """A command that accepts the former spellings of its :class:`RenamedOption` options."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        return super().parse_args(ctx, _rewrite(self, args))


class FotaGroup(click.Group):
    """A group whose commands and subgroups are :class:`FotaCommand` / :class:`FotaGroup`."""

    command_class = FotaCommand


FotaGroup.group_class = FotaGroup


def seq_option(
    help: str = "Release number (positive integer; the highest is the newest).",
    *,
    required: bool = True,
    old_names: Sequence[str] = ("--id",),
) -> Callable[[_F], _F]:
    """``--seq N``: the number of a release (kept as text; checked by ``check_seq``)."""
    return click.option(
        "--seq",
        "seq",
        cls=RenamedOption,
        old_names=old_names,
        required=required,
        type=str,
        metavar="N",
        help=help,
    )


def installed_seq_option(
    help: str = "Release number the device runs (0: none yet).",
) -> Callable[[_F], _F]:
    """``--installed-seq N``: the release a device runs."""
    return click.option(
        "--installed-seq",
        type=click.IntRange(0),
        default=0,
        show_default=True,
        metavar="N",
        help=help,
    )


def keys_option(
    help: str = "Key folder from `fota keys generate`.",
    *,
    required: bool = True,
    exists: bool = False,
    old_names: Sequence[str] = (),
) -> Callable[[_F], _F]:
    """``--keys DIR``: a key folder (dest ``keys_dir``)."""
    return click.option(
        "--keys",
        "keys_dir",
        cls=RenamedOption,
        old_names=old_names,
        required=required,
        type=click.Path(path_type=Path, file_okay=False, exists=exists),
        metavar="DIR",
        help=help,
    )


def out_option(
    help: str,
    *,
    dest: str = "out_dir",
    required: bool = True,
    file_okay: bool = False,
    dir_okay: bool = True,
    old_names: Sequence[str] = (),
) -> Callable[[_F], _F]:
    """``--out PATH``: where a command writes."""
    return click.option(
        "--out",
        dest,
        cls=RenamedOption,
        old_names=old_names,
        required=required,
        type=click.Path(path_type=Path, file_okay=file_okay, dir_okay=dir_okay),
        metavar="DIR" if not file_okay else "FILE",
        help=help,
    )


def token_env_option(
    help: str = "Environment variable holding the bearer token (the token itself never goes "
    "on the command line).",
    *,
    name: str = "--token-env",
    default: str | None = None,
) -> Callable[[_F], _F]:
    """``--token-env NAME`` (or a role-specific ``--ROLE-token-env``)."""
    return click.option(
        name,
        default=default,
        show_default=default is not None,
        metavar="VAR",
        help=help,
    )


#: how an environment variable's name is shown in messages; anything else given as a name
#: (most likely the secret itself, pasted by mistake) is never echoed
_ECHOABLE_ENV_NAME: Final = re.compile(r"[A-Z_][A-Z0-9_]{0,63}")


def secret_from_env(option: str, name: str) -> str:
    """The secret in environment variable ``name`` (given with ``option``); an InputError that
    never shows ``name`` unless it looks like a variable name (``FOTA_TOKEN``): what was given
    may be the secret itself."""
    value = os.environ.get(name) if name and "=" not in name and "\0" not in name else None
    if value:
        return value
    if _ECHOABLE_ENV_NAME.fullmatch(name):
        raise InputError(option, f"environment variable {name} is not set")
    raise InputError(
        option,
        "takes the name of an environment variable holding the secret (e.g. FOTA_TOKEN), "
        "not the secret itself; the value given is not shown, and no variable of that name "
        "is set",
    )


def token_from_env(variable: str | None, option: str = "--token-env") -> str | None:
    """The token held by the environment variable named ``variable`` (``None`` when no
    variable is named); a named but unset variable is one error line (:func:`secret_from_env`)."""
    if variable is None:
        return None
    return secret_from_env(option, variable).strip()


def ca_option(
    help: str = "CA certificate (PEM) to trust for the server (default: the system's CAs).",
) -> Callable[[_F], _F]:
    """``--ca FILE``: the CA certificate a client trusts (dest ``ca_file``)."""
    return click.option(
        "--ca",
        "ca_file",
        type=click.Path(path_type=Path, dir_okay=False, exists=True),
        metavar="FILE",
        help=help,
    )


def secure_boot_version(keys_dir: Path, given: str | None) -> str:
    """``--secure-boot`` as given, else what the key set's ``secure_boot_scheme`` file says
    (``v1`` for a key set without one)."""
    if given is not None:
        return given
    from secure_fota.formats.secure_boot import Scheme
    from secure_fota.keys.directory import read_secure_boot_scheme

    scheme = read_secure_boot_scheme(keys_dir)
    return "v1" if scheme in (None, Scheme.V1) else "v2"


secure_boot_option = click.option(
    "--secure-boot",
    type=click.Choice(["v1", "v2"]),
    default=None,
    help="Secure boot signature version; default: the key set's (its secure_boot_scheme file, "
    "written by `fota keys generate`), else v1. The v2 scheme follows the key type.",
)


json_option = click.option(
    "--json", "as_json", is_flag=True, help="Print the result as one JSON object."
)


def human_time(epoch: int | float | None) -> str:
    """``2026-03-01 12:00:00 UTC`` for an epoch time (``-`` for none)."""
    if epoch is None:
        return "-"
    moment = datetime.datetime.fromtimestamp(float(epoch), tz=datetime.UTC)
    return moment.strftime("%Y-%m-%d %H:%M:%S UTC")


def parse_release(text: str) -> tuple[str, int]:
    """``TYPE/SEQ`` -> ``(device_type, seq)``; one error line for anything else."""
    from secure_fota.formats.names import check_name, check_seq

    device_type, sep, seq = text.partition("/")
    if not sep:
        raise InputError("RELEASE", f"expected TYPE/SEQ (e.g. greenhouse-sensor/42), got {text!r}")
    return check_name("RELEASE type", device_type), check_seq("RELEASE seq", seq)
