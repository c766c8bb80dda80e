"""Server files are private (issue 14, class 8): `fota.db` and the other files the update
server writes were created world-readable (0644, in 0755 directories) under the usual umask
022. Now every file under the data directory is 0600 and every directory 0700, whatever the
umask: the database (password hashes, token digests), its WAL, the blobs, staging, and the
development TLS key and certificates. Against `fota server run` over TLS.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

import httpx

from secure_fota.devtools.harness import LocalServer
from secure_fota.keys.tls import CA_FILE
from secure_fota.tls_client import client_context
from tests.integration.server.conftest import fake_release, upload_files

USER, PASSWORD = "modes-uploader", "modes-password-123"


def _loose_umask() -> None:
    os.umask(0o022)  # what most shells and service managers give


def _modes(root: Path) -> dict[str, int]:
    found = {".": stat.S_IMODE(root.stat().st_mode)}
    for path in root.rglob("*"):
        found[str(path.relative_to(root))] = stat.S_IMODE(path.lstat().st_mode)
    return found


def test_server_files_are_private(tmp_path: Path):
    data = tmp_path / "data"
    server = LocalServer(
        data,
        ca_file=data / "tls" / CA_FILE,  # the development CA the server creates
        env={"FOTA_LOG_LEVEL": "warning"},
        preexec=_loose_umask,
    )
    old = os.umask(0o022)
    try:
        server.add_user(USER, PASSWORD)  # `fota server user add` creates the database
    finally:
        os.umask(old)
    with (
        server,
        httpx.Client(base_url=server.url, verify=client_context(server.ca_file)) as http,
    ):
        manifest, binary = fake_release(1)
        response = http.post(
            "/uploadFile",
            auth=(USER, PASSWORD),
            data={"id": "1", "deviceType": "modes", "fwName": "app"},
            files=upload_files(manifest, binary),
        )
        assert response.status_code in (200, 201), response.text
        modes = _modes(data)
    assert "fota.db" in modes
    assert any(name.startswith("blobs") for name in modes)
    assert any(name.startswith("tls") for name in modes)
    loose = {name: oct(mode) for name, mode in modes.items() if mode & 0o077}
    assert loose == {}, loose
