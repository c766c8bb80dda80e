"""A local stand-in for the ESP Component Registry, for builds on machines that cannot reach it.

ESP-IDF's component manager resolves `espressif/esp_encrypted_img` (secure_ota's
idf_component.yml) from a registry. Pointed at a ``file://`` storage URL
(IDF_COMPONENT_STORAGE_URL) it reads the same static layout the registry's storage serves:

    components/<namespace>/<name>.json             every version: hash, archive, dependencies
    files/<namespace>/<name>/<name>_<ver>.tgz      the component's files
    files/<namespace>/<name>/<ver>/CHECKSUMS.json  per-file checksums

This script builds that layout from git snapshots of the components' public repositories. The
hashes are computed by the component manager's own functions (idf_component_tools, from the
ESP-IDF Python environment this runs in), so the manager verifies what it downloads exactly as
it would from the real registry.

    registry.py --out DIR --component NAME=REPO:REF:SUBDIR:VERSION [--component ...]
"""

from __future__ import annotations

import argparse
import io
import json
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path
from typing import Any

import yaml
from idf_component_tools.hash_tools.calculate import hash_dir
from idf_component_tools.hash_tools.checksums import ChecksumsManager

NAMESPACE = "espressif"


def export(repo: str, ref: str, subdir: str, dest: Path) -> Path:
    """git archive REF[:SUBDIR] of a bare repository into dest; returns the component folder."""
    spec = f"{ref}:{subdir}" if subdir else ref
    blob = subprocess.run(
        ["git", "-C", repo, "archive", "--format=tar", spec], check=True, capture_output=True
    ).stdout
    with tarfile.open(fileobj=io.BytesIO(blob)) as tar:
        tar.extractall(dest, filter="data")
    return dest


def dependency_entries(manifest: dict[str, Any]) -> list[dict[str, Any]]:
    entries = []
    for full_name, raw in (manifest.get("dependencies") or {}).items():
        spec = {"version": raw} if isinstance(raw, str) else dict(raw)
        namespace, _, name = full_name.rpartition("/")
        entry: dict[str, Any] = {
            "name": name,
            "namespace": namespace or None,
            "spec": str(spec.get("version", "*")),
            "source": "idf" if full_name == "idf" else "service",
            "is_public": False,
            "require": spec.get("require", True) not in (False, "no"),
        }
        if "rules" in spec:
            entry["rules"] = spec["rules"]
        entries.append(entry)
    return entries


def add_version(
    out: Path, name: str, repo: str, ref: str, subdir: str, version: str
) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp:
        comp = export(repo, ref, subdir, Path(tmp) / "src")
        manifest = yaml.safe_load((comp / "idf_component.yml").read_text())
        if str(manifest.get("version")) != version:
            sys.exit(f"{name}: {repo} {ref} holds version {manifest.get('version')}, not {version}")
        base = f"files/{NAMESPACE}/{name}"
        archive = f"{base}/{name}_{version}.tgz"
        (out / base / version).mkdir(parents=True, exist_ok=True)
        with tarfile.open(out / archive, "w:gz") as tar:
            for path in sorted(comp.rglob("*")):
                tar.add(path, arcname=str(path.relative_to(comp)), recursive=False)
        # hash what the manager will unpack, not the git tree
        unpacked = Path(tmp) / "unpacked"
        with tarfile.open(out / archive) as tar:
            tar.extractall(unpacked, filter="data")
        component_hash = hash_dir(str(unpacked))
        ChecksumsManager(unpacked).dump(out / base / version)
    print(
        f"{NAMESPACE}/{name} {version} from {Path(repo).parent.name}@{ref}: {component_hash[:16]}"
    )
    return {
        "version": version,
        "component_hash": component_hash,
        "url": archive,
        "checksums": f"{base}/{version}/CHECKSUMS.json",
        "dependencies": dependency_entries(manifest),
        "targets": manifest.get("targets"),
        "description": manifest.get("description"),
        "docs": {},
        "license": None,
        "examples": [],
        "created_at": "2024-01-01T00:00:00Z",
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True, help="registry folder to (re)create")
    parser.add_argument(
        "--component",
        action="append",
        default=[],
        metavar="NAME=REPO:REF:SUBDIR:VERSION",
        help="a component version from a bare git repository (SUBDIR may be empty)",
    )
    args = parser.parse_args()
    versions: dict[str, list[dict[str, Any]]] = {}
    for item in args.component:
        name, _, rest = item.partition("=")
        repo, ref, subdir, version = rest.rsplit(":", 3)
        versions.setdefault(name, []).append(
            add_version(args.out, name, repo, ref, subdir, version)
        )
    for name, entries in versions.items():
        index = args.out / "components" / NAMESPACE / f"{name}.json"
        index.parent.mkdir(parents=True, exist_ok=True)
        index.write_text(
            json.dumps({"name": name, "namespace": NAMESPACE, "versions": entries}, indent=1)
        )


if __name__ == "__main__":
    main()
