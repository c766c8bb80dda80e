"""`fota author upload/publish` and `fota author serve` against the real update server."""

from __future__ import annotations

import subprocess
from pathlib import Path

import httpx

from secure_fota.author.service import ServiceConfig, create_service
from secure_fota.author.upload import Credentials, UploadTarget
from secure_fota.devtools.harness import ThreadedServer, fota_command, free_port, run_fota
from secure_fota.tls_client import client_context
from tests.e2e.conftest import DEVICE_TYPE, PASSWORD, USER, Fleet


def cli(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return run_fota("author", *args, env=env)


def newest_release(fleet: Fleet) -> str:
    response = httpx.get(
        f"{fleet.url}/update/newest/manifest",
        params={"deviceType": DEVICE_TYPE},
        verify=client_context(fleet.ca),
    )
    assert response.status_code == 200
    return response.headers["x-fota-release"]


def test_publish_with_basic_auth_then_upload_with_a_token(fleet: Fleet, tmp_path: Path) -> None:
    out = tmp_path / "dist"
    out.mkdir()
    common = [
        "--device-type",
        DEVICE_TYPE,
        "--name",
        "app",
        "--server",
        fleet.url,
        "--ca",
        str(fleet.ca),
    ]
    result = cli(
        "publish",
        str(fleet.image("1.1.0")),
        "--seq",
        "2",
        "--keys",
        str(fleet.keys),
        "--out",
        str(out),
        *common,
        "--user",
        USER,
        "--new-device-type",
        env={"FOTA_UPLOAD_PASSWORD": PASSWORD},
    )
    assert result.returncode == 0, result.stderr
    assert "server answered OK" in result.stdout
    assert newest_release(fleet) == "2"
    assert fleet.device().perform_update().result == "updated"

    token = (
        fota_command(
            "server", "token", "create", "ci", "--role", "uploader", "--data-dir", str(fleet.data)
        )
        .strip()
        .split()[-1]
    )
    fota_out = cli(
        "release",
        str(fleet.image("1.2.0")),
        "--seq",
        "3",
        "--keys",
        str(fleet.keys),
        "--out",
        str(out),
        "--device-type",
        DEVICE_TYPE,
        "--name",
        "app",
        env={},
    )
    assert fota_out.returncode == 0, fota_out.stderr
    result = cli(
        "upload",
        str(out),
        "--seq",
        "3",
        *common,
        "--token-env",
        "CI_TOKEN",
        env={"CI_TOKEN": token},
    )
    assert result.returncode == 0, result.stderr
    assert newest_release(fleet) == "3"


def test_publish_refused_by_the_server_leaves_the_local_release_as_it_was(
    fleet: Fleet, tmp_path: Path
) -> None:
    """A second `publish` under a number the server already holds for another release (409),
    or to a server that cannot be reached, must not overwrite the files of the release the
    server does hold: they are written to --out only once the server has taken the release."""
    out = tmp_path / "dist"  # created by publish

    def publish(version: str, *extra: str) -> subprocess.CompletedProcess[str]:
        return cli(
            "publish", str(fleet.image(version)), "--seq", "2", "--keys", str(fleet.keys),
            "--out", str(out), "--device-type", DEVICE_TYPE, "--name", "app",
            "--ca", str(fleet.ca), "--user", USER, "--new-device-type", *extra,
            env={"FOTA_UPLOAD_PASSWORD": PASSWORD},
        )  # fmt: skip

    first = publish("1.1.0", "--server", fleet.url)
    assert first.returncode == 0, first.stderr
    published = {p.name: p.read_bytes() for p in out.iterdir()}
    assert sorted(published) == ["app-2.bin", "app-2.manifest"]
    again = publish("1.2.0", "--server", fleet.url)
    assert again.returncode == 1
    assert "already holds a different release" in again.stderr, again.stderr
    unreachable = publish("1.2.0", "--server", f"https://127.0.0.1:{free_port()}")
    assert unreachable.returncode == 1, unreachable.stderr
    # the files match the server's release 2, and no staging folder is left behind
    assert {p.name: p.read_bytes() for p in out.iterdir()} == published
    with httpx.Client(verify=client_context(fleet.ca)) as http:
        served = http.get(f"{fleet.url}/api/v1/device-types/{DEVICE_TYPE}/releases/2/manifest")
    assert served.status_code == 200 and served.content == published["app-2.manifest"]


def test_upload_failures_are_reported(fleet: Fleet, tmp_path: Path) -> None:
    files = fleet.release(fleet.image("1.1.0"), 2, out=tmp_path)
    common = ["--seq", "2", "--device-type", DEVICE_TYPE, "--name", "app", "--server", fleet.url]
    wrong = cli(
        "upload",
        str(tmp_path),
        *common,
        "--ca",
        str(fleet.ca),
        "--user",
        USER,
        env={"FOTA_UPLOAD_PASSWORD": "not-the-password"},
    )
    assert wrong.returncode == 1
    assert "upload refused (401)" in wrong.stderr
    untrusted = cli(
        "upload", str(tmp_path), *common, "--user", USER, env={"FOTA_UPLOAD_PASSWORD": PASSWORD}
    )
    assert untrusted.returncode == 1
    assert "CERTIFICATE_VERIFY_FAILED" in untrusted.stderr or "certificate" in untrusted.stderr
    plain = cli(
        "upload",
        str(tmp_path),
        "--seq",
        "2",
        "--device-type",
        DEVICE_TYPE,
        "--name",
        "app",
        "--server",
        fleet.url.replace("https", "http"),
        "--user",
        USER,
        env={"FOTA_UPLOAD_PASSWORD": PASSWORD},
    )
    assert plain.returncode == 2 and "plain HTTP" in plain.stderr
    assert fleet.upload(files) is None  # the genuine upload still works
    other = fleet.release(fleet.image("1.2.0"), 2, out=tmp_path / "other")
    conflict = cli(
        "upload",
        str(tmp_path / "other"),
        *common,
        "--ca",
        str(fleet.ca),
        "--user",
        USER,
        env={"FOTA_UPLOAD_PASSWORD": PASSWORD},
    )
    assert conflict.returncode == 1 and "different release" in conflict.stderr
    assert other.claims.seq == 2


def test_local_service_builds_and_uploads(fleet: Fleet, tmp_path: Path) -> None:
    firmware = tmp_path / "firmware"
    firmware.mkdir()
    (firmware / "app.bin").write_bytes(fleet.image("1.1.0").read_bytes())
    config = ServiceConfig(
        keys_dir=fleet.keys,
        firmware_dir=firmware,
        out_dir=tmp_path / "out",
        target=UploadTarget(fleet.url, Credentials(user=USER, password=PASSWORD), ca_file=fleet.ca),
        token="local-token",
    )
    with ThreadedServer(create_service(config)) as service:
        url = service.url
        response = httpx.post(
            f"{url}/upload",
            headers={"Authorization": "Bearer local-token"},
            timeout=60,
            data={"id": "2", "deviceType": DEVICE_TYPE, "fwName": "app", "firmwarePath": "app.bin"},
        )
        assert response.status_code == 200, response.text
        assert response.json()["claims"]["seq"] == 2
        out = tmp_path / "out"
        uploaded = {p.name: p.read_bytes() for p in out.iterdir()}
        assert sorted(uploaded) == ["app-2.bin", "app-2.manifest"]
        again = httpx.post(
            f"{url}/upload",
            headers={"Authorization": "Bearer local-token"},
            timeout=60,
            data={"id": "2", "deviceType": DEVICE_TYPE, "fwName": "app", "firmwarePath": "app.bin"},
        )
        # a rebuilt release differs (fresh AES key), so the server refuses to overwrite it
        assert again.status_code == 409
        # ... and the local files still are the release the server holds
        assert {p.name: p.read_bytes() for p in out.iterdir()} == uploaded
    assert fleet.device().perform_update().result == "updated"


def test_an_unknown_device_type_needs_new_device_type(fleet: Fleet, tmp_path: Path) -> None:
    token = (
        fota_command(
            "server", "token", "create", "ci", "--role", "uploader", "--data-dir", str(fleet.data)
        )
        .strip()
        .split()[-1]
    )
    auth = {"authorization": f"Bearer {token}"}
    url = f"{fleet.url}/api/v1/device-types/{DEVICE_TYPE}"
    assert httpx.get(url, headers=auth, verify=client_context(fleet.ca)).status_code == 404
    fleet.release(fleet.image("1.1.0"), 2, out=tmp_path)
    args = [
        "upload", str(tmp_path), "--seq", "2", "--device-type", DEVICE_TYPE, "--name", "app",
        "--server", fleet.url, "--ca", str(fleet.ca), "--token-env", "CI_TOKEN",
    ]  # fmt: skip
    refused = cli(*args, env={"CI_TOKEN": token})
    assert refused.returncode == 2
    assert refused.stderr.count("\n") == 1 and "--new-device-type" in refused.stderr
    assert httpx.get(url, headers=auth, verify=client_context(fleet.ca)).status_code == 404
    first = cli(*args, "--new-device-type", env={"CI_TOKEN": token})
    assert first.returncode == 0, first.stderr
    known = httpx.get(url, headers=auth, verify=client_context(fleet.ca))
    assert known.status_code == 200
    assert known.json() == {"device_type": DEVICE_TYPE, "newest": 2, "releases": 1}
    fleet.release(fleet.image("1.2.0"), 3, out=tmp_path)
    args[args.index("2")] = "3"
    assert cli(*args, env={"CI_TOKEN": token}).returncode == 0  # a known type needs no flag
    typo = cli(
        *[a if a != DEVICE_TYPE else DEVICE_TYPE + "x" for a in args], env={"CI_TOKEN": token}
    )
    assert typo.returncode == 2 and "has no device type" in typo.stderr
