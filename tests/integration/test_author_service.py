"""``fota author serve`` (the seed's local /upload service) over a real socket.

The happy path, with a real update server, lives in the end-to-end tests; here: every refusal.
"""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from secure_fota.author.service import ServiceConfig, create_service
from secure_fota.author.upload import Credentials, UploadTarget
from secure_fota.devtools.harness import ThreadedServer, free_port, run_fota

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


def test_a_file_part_is_400_not_500(service) -> None:
    """The service takes a path to firmware, never the firmware: a multipart body with a file
    part (as the seed's FW Author app might send) answers 400 with the reason (before: 500)."""
    url, out, _ = service
    response = httpx.post(
        f"{url}/upload",
        data=GOOD,
        files={"firmware": ("app.bin", b"\xe9" * 64, "application/octet-stream")},
        headers={"Authorization": f"Bearer {TOKEN}"},
        timeout=30,
    )
    assert response.status_code == 400, response.text
    assert "file" in response.json()["error"]
    assert not out.exists()


@pytest.mark.parametrize(
    ("content_type", "body"),
    [
        ("multipart/form-data; boundary=x", b"--x\r\nno headers end"),
        ("multipart/form-data", b"no boundary"),
        ("application/x-www-form-urlencoded", b"id=" + b"9" * 20_000),
    ],
)
def test_malformed_forms_are_4xx(service, content_type: str, body: bytes) -> None:
    url, out, _ = service
    response = httpx.post(
        f"{url}/upload",
        content=body,
        headers={"Authorization": f"Bearer {TOKEN}", "content-type": content_type},
        timeout=30,
    )
    assert 400 <= response.status_code < 500, (response.status_code, response.text)
    assert "error" in response.json()
    assert not out.exists()


# -- the command line: `fota author serve`, `fota author upload` ---------------------------

SECRET = "fota_" + "Zq9" * 15  # what a bearer token looks like


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "192.0.2.10", "example.com"])  # noqa: S104
def test_serve_refuses_a_non_loopback_bind(host: str, tmp_path: Path, key_dir: Path) -> None:
    """The service speaks plain HTTP with a bearer token and holds signing keys: off loopback
    it is refused, as `fota server run` refuses plain HTTP (before: it served on 0.0.0.0;
    here, a child process that would still be serving after 30 s)."""
    (tmp_path / "fw").mkdir()
    result = run_fota(
        "author", "serve", "--keys", str(key_dir), "--firmware-dir", str(tmp_path / "fw"),
        "--out", str(tmp_path / "out"), "--server", "https://127.0.0.1:1", "--user", "u",
        "--host", host, "--port", str(free_port()),
        env={"FOTA_UPLOAD_PASSWORD": "p", "FOTA_SERVICE_TOKEN": "t" * 32},
        timeout=30,
    )  # fmt: skip
    assert result.returncode != 0
    assert f"refusing plain HTTP on {host}" in result.stderr
    assert "loopback" in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize("command", ["upload", "serve"])
def test_token_env_mistake_never_prints_the_secret(
    command: str, tmp_path: Path, key_dir: Path, fota_main, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`--token-env` takes a variable's name; given the token itself by mistake, the error
    names the option and never echoes the value (before: 'environment variable fota_… is not
    set', the secret in the terminal and the CI log)."""
    monkeypatch.delenv("FOTA_NOT_SET_HERE", raising=False)
    monkeypatch.setenv("FOTA_SERVICE_TOKEN", "t" * 32)
    (tmp_path / "fw").mkdir()
    if command == "upload":
        base = ["author", "upload", str(tmp_path), "--seq", "1", "--device-type", "sensor",
                "--name", "app", "--server", "https://127.0.0.1:1"]  # fmt: skip
    else:
        base = ["author", "serve", "--keys", str(key_dir), "--firmware-dir",
                str(tmp_path / "fw"), "--out", str(tmp_path / "out"),
                "--server", "https://127.0.0.1:1", "--port", str(free_port())]  # fmt: skip
    code, out, err = fota_main(*base, "--token-env", SECRET)
    assert code != 0
    assert SECRET not in out + err
    assert SECRET[:12] not in out + err
    assert "--token-env" in err
    assert "name of an environment variable" in err
    # a real variable name that is unset is named (it is no secret)
    code, out, err = fota_main(*base, "--token-env", "FOTA_NOT_SET_HERE")
    assert code != 0
    assert "FOTA_NOT_SET_HERE is not set" in err
