"""``fota author serve`` (the seed's local /upload service) over a real socket.

The happy path, with a real update server, lives in the end-to-end tests; here: every refusal.
"""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from secure_fota.author.service import ServiceConfig, create_service
from secure_fota.author.upload import Credentials, UploadTarget
from secure_fota.devtools.harness import ThreadedServer, free_port

TOKEN = "service-token-for-tests"


@pytest.fixture
def service(tmp_path: Path, key_dir: Path, image_v1: bytes):
    firmware_dir = tmp_path / "firmware"
    firmware_dir.mkdir()
    (firmware_dir / "app.bin").write_bytes(image_v1)
    (tmp_path / "secret.bin").write_bytes(image_v1)
    (firmware_dir / "link.bin").symlink_to(tmp_path / "secret.bin")
    out = tmp_path / "out"
    # nothing listens on this port: every upload fails at the network level
    target = UploadTarget(
        server=f"http://127.0.0.1:{free_port()}",
        credentials=Credentials(user="u", password="p"),
        allow_insecure_http=True,
    )
    config = ServiceConfig(
        keys_dir=key_dir, firmware_dir=firmware_dir, out_dir=out, target=target, token=TOKEN
    )
    with ThreadedServer(create_service(config)) as server:
        yield server.url, out, tmp_path


def post(url: str, token: str | None = TOKEN, **params: str) -> httpx.Response:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return httpx.post(f"{url}/upload", data=params, headers=headers, timeout=30)


GOOD = {"id": "4", "deviceType": "sensor", "fwName": "app", "firmwarePath": "app.bin"}


def test_token_is_required(service) -> None:
    url, out, _ = service
    assert post(url, token=None, **GOOD).status_code == 401
    response = post(url, token="wrong", **GOOD)
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == "Bearer"
    assert not out.exists()


@pytest.mark.parametrize("missing", sorted(GOOD))
def test_missing_parameter_names_the_field(service, missing: str) -> None:
    url, _, _ = service
    params = {k: v for k, v in GOOD.items() if k != missing}
    response = post(url, **params)
    assert response.status_code == 400
    assert response.json()["field"] == missing


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"id": "0"}, "id"),
        ({"id": "x"}, "id"),
        ({"fwName": "../../etc/passwd"}, "fwName"),
        ({"deviceType": "a b"}, "deviceType"),
    ],
)
def test_invalid_parameters(service, change: dict[str, str], field: str) -> None:
    url, out, _ = service
    response = post(url, **{**GOOD, **change})
    assert response.status_code == 422
    assert response.json()["field"] == field
    assert not out.exists()


@pytest.mark.parametrize("path", ["../secret.bin", "link.bin", "/etc/passwd"])
def test_firmware_outside_the_directory_is_refused(service, path: str) -> None:
    url, out, _tmp_path = service
    response = post(url, **{**GOOD, "firmwarePath": path})
    assert response.status_code == 403
    assert not out.exists()


def test_missing_firmware_is_404(service) -> None:
    url, _, _ = service
    assert post(url, **{**GOOD, "firmwarePath": "nope.bin"}).status_code == 404


def test_unloadable_keys_are_422(service, tmp_path: Path) -> None:
    _url, _, _ = service
    # the fixture's key dir is shared; use a service whose key dir lacks files
    config = ServiceConfig(
        keys_dir=tmp_path,
        firmware_dir=tmp_path / "firmware",
        out_dir=tmp_path / "out2",
        target=UploadTarget(server="https://127.0.0.1:1", credentials=Credentials(token="t")),
        token=TOKEN,
    )
    with ThreadedServer(create_service(config)) as other:
        response = post(other.url, **GOOD)
    assert response.status_code == 422
    assert "key files cannot be loaded" in response.json()["error"]


def test_failed_upload_is_never_200(service) -> None:
    url, _, _ = service
    response = post(url, **GOOD)
    assert response.status_code == 502
    assert "upload" in response.json()["error"]
