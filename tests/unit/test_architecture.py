"""The house rules, checked by AST over every module of ``src/secure_fota`` (function-local and
``TYPE_CHECKING`` imports included):

* which part may import which: ground (errors, reasons, limits) <- wire <- formats <- crypto
  <- policy <- keys <- {author, device, server} <- {cli, devtools}, with the small I/O helpers
  (atomic_file, bounded_read, loopback, tls_client) on the ground floor;
* author, device and server never import each other; nothing but cli imports devtools;
* ``wire.py`` imports nothing above ``errors`` and ``limits``;
* ``server/releases.py`` speaks no HTTP framework; author and device load none of the
  server's libraries;
* the pure layers (ground, wire, formats, crypto, policy) do no file, process or network I/O.
"""

from __future__ import annotations

import ast
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[2] / "src" / "secure_fota"

GROUND = {"errors", "reasons", "limits"}
#: small I/O helpers every edge may use
HELPERS = {"atomic_file", "bounded_read", "loopback", "tls_client"}
#: what author, device and server stand on
BELOW_EDGES = GROUND | HELPERS | {"wire", "formats", "crypto", "policy", "keys"}
EDGES = {"author", "device", "server"}

#: part -> the other parts of secure_fota it may import (any part may read ``__version__`` from
#: the package's face, ``secure_fota/__init__.py``, which imports nothing)
ALLOWED: dict[str, set[str]] = {
    "secure_fota": set(),
    "reasons": set(),
    "limits": set(),
    "errors": {"reasons"},
    "atomic_file": set(),
    "loopback": set(),
    "tls_client": {"errors"},
    "bounded_read": {"errors"},
    "wire": {"errors", "limits"},
    "formats": GROUND,
    "crypto": GROUND | {"formats", "wire"},
    "policy": GROUND | {"formats", "crypto", "wire"},
    "keys": GROUND | {"formats", "crypto", "atomic_file", "bounded_read"},
    "author": BELOW_EDGES,
    "device": BELOW_EDGES,
    "server": BELOW_EDGES,
    "devtools": BELOW_EDGES | EDGES,
    "cli": BELOW_EDGES | EDGES | {"devtools"},
}
#: third-party distributions the pure layers may use (anything else: the standard library)
THIRD_PARTY = {
    "formats": set(),
    "crypto": {"cryptography", "joserfc"},
    "policy": {"cryptography", "joserfc"},
    "wire": set(),
    **{part: set() for part in GROUND},
}
PURE = sorted(THIRD_PARTY)
#: modules that do I/O (``urllib.parse`` alone is string building)
IO_MODULES = {
    "socket", "ssl", "subprocess", "shutil", "tempfile", "pathlib", "sqlite3", "http",
    "urllib", "asyncio", "threading", "httpx", "requests",
}  # fmt: skip
IO_CALLS = {"open", "exec", "eval", "__import__"}
OS_IO = {
    "open", "read", "write", "remove", "unlink", "rename", "replace", "mkdir", "makedirs",
    "listdir", "scandir", "system", "popen", "fsync", "fdopen",
}  # fmt: skip
#: the server's own libraries: author and device never load them
SERVER_LIBRARIES = {
    "sqlalchemy", "alembic", "fastapi", "uvicorn", "granian", "prometheus_client", "boto3",
    "botocore", "argon2", "python_multipart", "pydantic_settings", "aiosqlite", "asyncpg",
    "aiomysql",
}  # fmt: skip
HTTP_FRAMEWORKS = {"starlette", "fastapi", "httpx", "uvicorn", "granian"}


def part_of(path: Path) -> str:
    """``server`` for ``src/secure_fota/server/routes/v1.py``, ``wire`` for ``wire.py``."""
    relative = path.relative_to(SRC)
    if relative.parts == ("__init__.py",):
        return "secure_fota"
    return relative.parts[0] if len(relative.parts) > 1 else relative.stem


def modules(*parts: str) -> Iterator[Path]:
    for path in sorted(SRC.rglob("*.py")):
        if not parts or part_of(path) in parts:
            yield path


def imports(path: Path) -> set[str]:
    """Every module ``path`` imports, wherever the import statement stands."""
    tree = ast.parse(path.read_text(), filename=str(path))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            assert node.level == 0, f"{path}: relative import (write secure_fota.…)"
            assert node.module is not None
            names.add(node.module)
    return names


def own_parts(path: Path) -> set[str]:
    """The parts of secure_fota that ``path`` imports (its own part and the face excluded)."""
    found = set()
    for name in imports(path):
        top, _, rest = name.partition(".")
        if top == "secure_fota" and rest:
            found.add(rest.partition(".")[0])
    return found - {part_of(path)}


def third_party(path: Path) -> set[str]:
    tops = {name.partition(".")[0] for name in imports(path)}
    return tops - set(sys.stdlib_module_names) - {"secure_fota", "__future__"}


def test_every_module_belongs_to_a_known_part() -> None:
    unknown = {part_of(path) for path in modules()} - set(ALLOWED)
    assert not unknown, f"parts without a rule in ALLOWED: {sorted(unknown)}"
    assert imports(SRC / "__init__.py") <= {"__future__"}, "the package's face imports nothing"


@pytest.mark.parametrize("part", sorted(ALLOWED))
def test_each_part_imports_only_the_parts_below_it(part: str) -> None:
    for path in modules(part):
        wrong = own_parts(path) - ALLOWED[part]
        assert not wrong, f"{path.relative_to(SRC)} ({part}) imports {sorted(wrong)}"


def test_author_device_and_server_never_import_each_other() -> None:
    for part in sorted(EDGES):
        for path in modules(part):
            assert not own_parts(path) & EDGES, f"{path.relative_to(SRC)} imports another edge"


def test_wire_imports_nothing_above_errors_and_limits() -> None:
    path = SRC / "wire.py"
    assert own_parts(path) <= {"errors", "limits"}, own_parts(path)
    assert not third_party(path), third_party(path)


def test_the_release_service_speaks_no_http() -> None:
    path = SRC / "server" / "releases.py"
    wrong = {name.partition(".")[0] for name in imports(path)} & HTTP_FRAMEWORKS
    assert not wrong, f"server/releases.py imports {sorted(wrong)}"


@pytest.mark.parametrize("part", ["author", "device"])
def test_author_and_device_load_none_of_the_servers_libraries(part: str) -> None:
    for path in modules(part):
        wrong = third_party(path) & SERVER_LIBRARIES
        assert not wrong, f"{path.relative_to(SRC)} imports {sorted(wrong)}"


@pytest.mark.parametrize("part", PURE)
def test_pure_layers_use_only_their_libraries(part: str) -> None:
    for path in modules(part):
        wrong = third_party(path) - THIRD_PARTY[part]
        assert not wrong, f"{path.relative_to(SRC)} imports {sorted(wrong)}"


@pytest.mark.parametrize("part", PURE)
def test_pure_layers_do_no_file_process_or_network_io(part: str) -> None:
    for path in modules(part):
        for name in imports(path):
            top = name.partition(".")[0]
            if name != "urllib.parse":
                assert top not in IO_MODULES, f"{path.relative_to(SRC)} imports {name}"
        for node in ast.walk(ast.parse(path.read_text())):
            if not isinstance(node, ast.Call):
                continue
            function = node.func
            if isinstance(function, ast.Name):
                assert function.id not in IO_CALLS, f"{path.name} calls {function.id}()"
            elif (
                isinstance(function, ast.Attribute)
                and isinstance(function.value, ast.Name)
                and function.value.id == "os"
            ):
                assert function.attr not in OS_IO, f"{path.name} calls os.{function.attr}()"
