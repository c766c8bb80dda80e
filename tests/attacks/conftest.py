"""Fixtures of the attack suite.

One real `fota server run` (TLS, SQLite, local blobs, freshness key) serves the whole session;
every test gets a :class:`Lab` with its own device type, so tests do not see each other's
releases. Tests that kill or starve the server start their own (:class:`ServerProcess`).
"""

from __future__ import annotations

import secrets
import shutil
import time
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import httpx
import pytest

from secure_fota.author.release import ReleaseFiles, ReleaseRequest, build_release
from secure_fota.author.upload import Credentials, UploadTarget, upload_release
from secure_fota.crypto.keyring import AuthorKeys
from secure_fota.device.flash import FaultInjector
from secure_fota.device.provision import Provisioning, provision
from secure_fota.device.transport import ServerClient
from secure_fota.device.updater import CheckResult, Device
from secure_fota.formats.app_image_builder import ImageSpec, build_app_image
from secure_fota.keys.directory import load_author_keys
from secure_fota.keys.generate import generate_key_set
from secure_fota.wire import FIRMWARE_FILE, MANIFEST_FILE, UPLOAD, upload_fields
from tests.attacks.infra import (
    ADMIN,
    ADMIN_PASSWORD,
    HOST_TOOL,
    UPLOADER,
    UPLOADER_PASSWORD,
    Authority,
    ServerProcess,
    run_c_tool,
)


@dataclass
class Pki:
    """Keys and certificates of the session: the author's, an attacker's, and TLS."""

    root: Path
    keys: Path  # the author's key set (what `fota keys generate` writes)
    attacker_keys: Path  # a complete key set of the attacker's own
    ca: Authority  # the CA devices trust (we keep its key to mint a wrong-host certificate)
    rogue_ca: Authority  # another CA, trusted by nobody
    server_cert: Path
    server_key: Path

    @property
    def ca_file(self) -> Path:
        return self.root / "ca.pem"


@pytest.fixture(scope="session")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    root = tmp_path_factory.mktemp("attack-pki")
    generate_key_set(root / "keys")
    generate_key_set(root / "attacker-keys")
    ca = Authority.create("secure-fota test CA")
    ca.write_ca(root / "ca.pem")
    cert, key = ca.issue(root / "tls", ["127.0.0.1", "localhost"])
    return Pki(
        root, root / "keys", root / "attacker-keys", ca, Authority.create("rogue CA"), cert, key
    )


def server_for(root: Path, pki: Pki, **options: Any) -> ServerProcess:
    env = {"FOTA_FRESHNESS_KEY_FILE": str(pki.keys / "freshness_key.pem"), **options.pop("env", {})}
    return ServerProcess(
        root, cert=pki.server_cert, key=pki.server_key, ca=pki.ca_file, env=env, **options
    )


@pytest.fixture(scope="session")
def server(pki: Pki, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    process = server_for(tmp_path_factory.mktemp("attack-server"), pki).setup().start()
    try:
        yield process
    finally:
        process.stop()


@dataclass
class Lab:
    """One test's corner of the session: its own device type, files and devices."""

    root: Path
    pki: Pki
    server: ServerProcess
    device_type: str

    # -- the author's side -----------------------------------------------------------------
    def image(
        self, version: str, *, secure_version: int = 0, size: int = 48 * 1024, chip: str = "esp32"
    ) -> Path:
        path = self.root / f"app-{chip}-{version}-{secure_version}-{size}.bin"
        if not path.exists():
            seed = sum(map(ord, version)) + 97 * secure_version
            spec = ImageSpec(
                chip=chip,
                version=version,
                secure_version=secure_version,
                size=size,
                seed=seed,
                project_name="attack",
            )
            path.write_bytes(build_app_image(spec))
        return path

    def author_keys(self, keys: Path | None = None, *, secure_boot: str = "v1") -> AuthorKeys:
        return load_author_keys(keys or self.pki.keys, secure_boot_version=secure_boot)

    def release(
        self,
        image: Path,
        seq: int,
        *,
        device_type: str | None = None,
        expires_in: int | None = None,
        keys: Path | AuthorKeys | None = None,
        secure_boot: str = "v1",
        out: str | None = None,
        now: int | None = None,
    ) -> ReleaseFiles:
        folder = self.root / (out or f"release-{seq}-{secrets.token_hex(3)}")
        folder.mkdir(parents=True, exist_ok=True)
        author = keys if isinstance(keys, AuthorKeys) else self.author_keys(keys)
        return build_release(
            ReleaseRequest(
                firmware=image,
                seq=seq,
                device_type=device_type or self.device_type,
                fw_name="app",
                out_dir=folder,
                expires_in=expires_in,
                secure_boot=secure_boot,
            ),
            author,
            now=now if now is not None else int(time.time()),
        )

    # -- the server ------------------------------------------------------------------------
    def upload(self, files: ReleaseFiles, *, seq: int | None = None) -> str:
        """`fota author upload` with the uploader's credential, optionally under another id."""
        number = seq if seq is not None else files.claims.seq
        folder = files.manifest.parent
        if number != files.claims.seq:
            folder = self.root / f"renamed-{number}-{secrets.token_hex(3)}"
            folder.mkdir()
            shutil.copyfile(files.manifest, folder / f"app-{number}.manifest")
            shutil.copyfile(files.binary, folder / f"app-{number}.bin")
        target = UploadTarget(
            self.server.url,
            Credentials(user=UPLOADER, password=UPLOADER_PASSWORD),
            ca_file=self.pki.ca_file,
        )
        return upload_release(
            target, out_dir=folder, fw_name="app", seq=number, device_type=self.device_type
        )

    def upload_bytes(
        self,
        manifest: bytes,
        binary: bytes,
        seq: int,
        *,
        device_type: str | None = None,
        auth: tuple[str, str] = (UPLOADER, UPLOADER_PASSWORD),
    ) -> httpx.Response:
        with self.server.http() as http:
            return http.post(
                UPLOAD,
                auth=auth,
                data=upload_fields(seq, device_type or self.device_type, "app"),
                files={
                    MANIFEST_FILE: ("app.manifest", manifest, "application/octet-stream"),
                    FIRMWARE_FILE: ("app.bin", binary, "application/octet-stream"),
                },
            )

    def publish(
        self, version: str, seq: int, *, secure_version: int = 0, expires_in: int | None = None
    ) -> ReleaseFiles:
        files = self.release(
            self.image(version, secure_version=secure_version), seq, expires_in=expires_in
        )
        self.upload(files)
        return files

    def admin(self, method: str, path: str) -> httpx.Response:
        with self.server.http() as http:
            return http.request(method, path, auth=(ADMIN, ADMIN_PASSWORD))

    def row(self, seq: int) -> dict[str, Any]:
        with self.server.database() as db:
            db.row_factory = __import__("sqlite3").Row
            found = db.execute(
                "SELECT * FROM releases WHERE device_type = ? AND seq = ?", (self.device_type, seq)
            ).fetchone()
        assert found is not None
        return dict(found)

    # -- devices ---------------------------------------------------------------------------
    def device(
        self,
        name: str = "device",
        *,
        factory: str = "1.0.0",
        seq: int = 1,
        faults: FaultInjector | None = None,
        keys: Path | None = None,
        device_id: str | None = None,
        **kwargs: Any,
    ) -> Device:
        state = self.root / name
        if not (state / "device.json").exists():
            provision(
                Provisioning(
                    state=state,
                    device_type=self.device_type,
                    chip="esp32",
                    keys=keys or self.pki.keys,
                    server=self.server.url,
                    ca=self.pki.ca_file,
                    firmware=self.image(factory),
                    seq=seq,
                    device_id=device_id,
                )
            )
        return Device(state, faults=faults, **kwargs)

    def client_via(
        self, url: str, device: Device, *, ca: Path | None = None, **options: Any
    ) -> ServerClient:
        return ServerClient(url, ca_file=ca or device.state.ca, **{"timeout": 10, **options})

    # -- the C core on the same artifacts ----------------------------------------------------
    def c_verdict(
        self,
        device: Device,
        manifest: bytes | Path,
        binary: bytes | Path | None = None,
        *,
        freshness: str | None = None,
        nonce: str | None = None,
        now: int | None = None,
        device_id: str | None = None,
    ) -> dict[str, Any]:
        """What the ESP32 C core says about the artifacts this device was shown (skips the
        rest of the test, after every Python assertion, when the tool is not built);
        ``device_id``: the id the poll sent (default: the device's own, which its polls send)."""
        if not HOST_TOOL.exists():
            pytest.skip(f"{HOST_TOOL} is not built (make host-test): C core not checked")
        folder = self.root / f"c-{secrets.token_hex(4)}"
        folder.mkdir()

        def file(data: bytes | Path | None, name: str) -> Path | None:
            if data is None or isinstance(data, Path):
                return data
            (folder / name).write_bytes(data)
            return folder / name

        statement = None
        if freshness is not None:
            statement = folder / "statement.jws"
            statement.write_text(freshness)
        facts = device.facts()
        device_id = device_id or device.config.device_id
        manifest_path = file(manifest, "m.manifest")
        assert manifest_path is not None
        return run_c_tool(
            device.state.keys,
            manifest_path,
            file(binary, "b.bin"),
            device_type=facts.device_type,
            installed_seq=facts.installed_seq,
            secure_version=facts.secure_version,
            chip_id=facts.chip_id,
            now=now,
            freshness=statement,
            nonce=nonce,
            extra=("--device-id", device_id) if device_id else (),
        )

    def assert_c_rejects(
        self, device: Device, manifest: bytes | Path, binary: bytes | Path | None, reason: str,
        **kwargs: Any,
    ) -> None:  # fmt: skip
        verdict = self.c_verdict(device, manifest, binary, **kwargs)
        assert verdict["accept"] is False and verdict["reason"] == reason, verdict


@pytest.fixture
def lab(request: pytest.FixtureRequest, tmp_path: Path, pki: Pki, server: ServerProcess) -> Lab:
    stem = "".join(c if c.isalnum() else "-" for c in request.node.name)[:40].strip("-")
    return Lab(tmp_path, pki, server, f"{stem}-{secrets.token_hex(3)}")


def refused(
    device: Device,
    reason: str,
    *,
    update: bool = True,
    client: ServerClient | None = None,
) -> CheckResult:
    """The device refuses with exactly ``reason`` and is exactly as it was before."""
    before = device.status()
    efuse = device.flash.efuse_secure_version()
    seq = device.installed_seq
    if update:
        result = device.perform_update(client=client)
    else:
        result = device.check_for_update(client=client)
    assert result.result == "rejected", result
    assert result.reason is not None and result.reason.value == reason, result
    assert device.status() == before
    assert (device.installed_seq, device.flash.efuse_secure_version()) == (seq, efuse)
    assert not device.state.download_file.exists()
    return result


def unchanged_after(device: Device) -> dict[str, Any]:
    return dict(device.status())


__all__ = ["Lab", "Pki", "refused", "replace", "server_for"]
