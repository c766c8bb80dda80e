"""End-to-end fixtures: a real `fota server run` over TLS, release files, provisioned devices."""

from __future__ import annotations

import shutil
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from secure_fota.author.release import ReleaseFiles, ReleaseRequest, build_release
from secure_fota.author.upload import Credentials, UploadTarget, upload_release
from secure_fota.device.flash import FaultInjector
from secure_fota.device.provision import Provisioning, provision
from secure_fota.device.updater import Device, SelfTest
from secure_fota.devtools.harness import LocalServer
from secure_fota.formats.app_image_builder import ImageSpec, build_app_image
from secure_fota.keys.directory import load_author_keys
from secure_fota.keys.generate import generate_key_set
from secure_fota.keys.tls import generate_tls

DEVICE_TYPE = "e2e-sensor"
USER, PASSWORD = "e2e-uploader", "e2e-password-123"


@dataclass
class Fleet:
    """Keys, TLS, a running server and helpers to release and provision."""

    root: Path
    keys: Path
    ca: Path
    url: str
    data: Path

    def image(
        self, version: str, *, secure_version: int = 0, size: int = 48 * 1024, chip: str = "esp32"
    ) -> Path:
        path = self.root / f"app-{chip}-{version}-{secure_version}.bin"
        if not path.exists():
            seed = sum(map(ord, version)) + 97 * secure_version
            path.write_bytes(
                build_app_image(
                    ImageSpec(
                        chip=chip,
                        version=version,
                        secure_version=secure_version,
                        size=size,
                        seed=seed,
                        project_name="e2e",
                    )
                )
            )
        return path

    def release(
        self,
        image: Path,
        seq: int,
        *,
        device_type: str = DEVICE_TYPE,
        expires_in: int | None = None,
        name: str = "app",
        out: Path | None = None,
        keys: Path | None = None,
    ) -> ReleaseFiles:
        out = out or self.root / "releases"
        out.mkdir(exist_ok=True)
        return build_release(
            ReleaseRequest(
                firmware=image,
                seq=seq,
                device_type=device_type,
                fw_name=name,
                out_dir=out,
                expires_in=expires_in,
            ),
            load_author_keys(keys or self.keys, secure_boot_version="v1"),
            now=int(time.time()),
        )

    def upload(
        self, files: ReleaseFiles, *, seq: int | None = None, device_type: str = DEVICE_TYPE
    ) -> None:
        """Upload the files, optionally under another server id (attacks do that)."""
        claims = files.claims
        target = UploadTarget(self.url, Credentials(user=USER, password=PASSWORD), ca_file=self.ca)
        number = seq if seq is not None else claims.seq
        out = files.manifest.parent
        if number != claims.seq:
            out = self.root / f"renamed-{number}"
            out.mkdir(exist_ok=True)
            shutil.copyfile(files.manifest, out / f"{claims.fw_name}-{number}.manifest")
            shutil.copyfile(files.binary, out / f"{claims.fw_name}-{number}.bin")
        upload_release(
            target, out_dir=out, fw_name=claims.fw_name, seq=number, device_type=device_type
        )

    def publish(
        self, version: str, seq: int, *, secure_version: int = 0, expires_in: int | None = None
    ) -> ReleaseFiles:
        files = self.release(
            self.image(version, secure_version=secure_version), seq, expires_in=expires_in
        )
        self.upload(files)
        return files

    def device(
        self,
        name: str = "device",
        *,
        factory: str = "1.0.0",
        seq: int = 1,
        faults: FaultInjector | None = None,
        self_test: SelfTest | None = None,
    ) -> Device:
        state = self.root / name
        if not (state / "device.json").exists():
            provision(
                Provisioning(
                    state=state,
                    device_type=DEVICE_TYPE,
                    chip="esp32",
                    keys=self.keys,
                    server=self.url,
                    ca=self.ca,
                    firmware=self.image(factory),
                    seq=seq,
                )
            )
        kwargs: dict[str, object] = {"faults": faults}
        if self_test is not None:
            kwargs["self_test"] = self_test
        return Device(state, **kwargs)  # type: ignore[arg-type]


def start_server(
    root: Path,
    keys: Path,
    tls: Path,
    *,
    extra_env: dict[str, str] | None = None,
    http_server: str | None = None,
) -> LocalServer:
    server = LocalServer(
        root / "server-data",
        tls_cert=tls / "server.pem",
        tls_key=tls / "server.key",
        ca_file=tls / "ca.pem",
        env={"FOTA_FRESHNESS_KEY_FILE": str(keys / "freshness_key.pem"), **(extra_env or {})},
        extra_args=[] if http_server is None else ["--http-server", http_server],
    )
    server.add_user(USER, PASSWORD)
    server.start()
    return server


@pytest.fixture(scope="module")
def keys_and_tls(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("e2e-keys")
    generate_key_set(root / "keys")
    generate_tls(root / "tls", ["127.0.0.1", "localhost"])
    return root / "keys", root / "tls"


@pytest.fixture
def fleet(
    request: pytest.FixtureRequest, tmp_path: Path, keys_and_tls: tuple[Path, Path]
) -> Iterator[Fleet]:
    """A fresh server (own data directory) for each test, sharing the module's keys; under
    `fota server run`'s default HTTP server, or the one a test names
    (``parametrize("fleet", [...], indirect=True)``)."""
    keys, tls = keys_and_tls
    http_server = getattr(request, "param", None)
    server = start_server(tmp_path, keys, tls, http_server=http_server)
    try:
        yield Fleet(
            root=tmp_path, keys=keys, ca=tls / "ca.pem", url=server.url, data=server.data_dir
        )
    finally:
        server.stop()
