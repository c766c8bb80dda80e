"""The dependency rule: formats <- crypto <- policy <- {author, server, device}, checked by AST."""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[2] / "src" / "secure_fota"
OWN = {"errors", "reasons", "limits", "wire"}
ALLOWED = {
    "formats": OWN | {"formats"},
    "crypto": OWN | {"formats", "crypto"},
    "policy": OWN | {"formats", "crypto", "policy"},
}
THIRD_PARTY = {
    "formats": set(),
    "crypto": {"cryptography", "joserfc"},
    "policy": {"cryptography", "joserfc"},
}


def imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


@pytest.mark.parametrize("layer", sorted(ALLOWED))
def test_pure_layers_import_only_what_they_may(layer: str) -> None:
    stdlib = sys.stdlib_module_names
    for path in sorted((SRC / layer).rglob("*.py")):
        for name in imports(path):
            top = name.split(".")[0]
            if top == "secure_fota":
                part = name.split(".")[1]
                assert part in ALLOWED[layer], f"{path.name} imports {name}"
            elif top != "__future__":
                assert top in stdlib or top in THIRD_PARTY[layer], f"{path.name} imports {name}"


@pytest.mark.parametrize("layer", sorted(ALLOWED))
def test_pure_layers_do_no_file_or_network_io(layer: str) -> None:
    forbidden = {"open", "socket", "subprocess", "urllib", "httpx", "requests"}
    for path in sorted((SRC / layer).rglob("*.py")):
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Name):
                assert node.func.id not in forbidden, f"{path.name} calls {node.func.id}()"
        assert not (imports(path) & forbidden), path.name
