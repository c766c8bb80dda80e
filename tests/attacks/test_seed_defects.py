"""The seed's own defects (research notes §1(f)), each tried against our system. (Shared
credentials and the disabled host-name check: test_mitm; "update" meaning "different
version": test_rollback_and_replay; manifest/binary not bound: test_mix_and_match.)"""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from secure_fota.author.service import ServiceConfig, create_service
from secure_fota.author.upload import Credentials, UploadTarget
from secure_fota.devtools.harness import ThreadedServer
from secure_fota.errors import TransportError
from tests.attacks.conftest import Lab, refused
from tests.attacks.infra import UPLOADER, UPLOADER_PASSWORD, Forward, Mitm, Request, Response


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("fwName", "../../../../tmp/pwned"),
        ("fwName", "..\\..\\pwned"),
        ("deviceType", "../pwned"),
        ("deviceType", "a/b"),
        ("deviceType", "%2e%2e%2fpwned"),
        ("fwName", "pwned\x00.bin"),
        ("id", "1/../2"),
    ],
)
def test_path_traversal_in_upload_fields(lab: Lab, field: str, value: str) -> None:
    files = lab.release(lab.image("1.1.0"), 2)
    data = {"id": "2", "deviceType": lab.device_type, "fwName": "app", field: value}
    with lab.server.http() as http:
        answer = http.post(
            "/uploadFile",
            auth=(UPLOADER, UPLOADER_PASSWORD),
            data=data,
            files={
                "manifestFile": ("app.manifest", files.manifest.read_bytes()),
                "firmwareFile": ("app.bin", files.binary.read_bytes()),
            },
        )
    assert answer.status_code == 422 and answer.json()["field"] == field, answer.text
    assert not list(lab.server.root.parent.rglob("pwned*"))


def test_path_traversal_in_multipart_filenames(lab: Lab) -> None:
    """Part file names are never used: blobs are stored under their SHA-256."""
    files = lab.release(lab.image("1.1.0"), 2)
    with lab.server.http() as http:
        answer = http.post(
            "/uploadFile",
            auth=(UPLOADER, UPLOADER_PASSWORD),
            data={"id": "2", "deviceType": lab.device_type, "fwName": "app"},
            files={
                "manifestFile": ("../../../../tmp/pwned.manifest", files.manifest.read_bytes()),
                "firmwareFile": ("/tmp/pwned.bin", files.binary.read_bytes()),
            },
        )
    assert answer.status_code == 200, answer.text
    assert not list(Path("/tmp").glob("pwned*"))
    assert not list(lab.server.data.rglob("*pwned*"))
    assert lab.device().perform_update().result == "updated"


@pytest.mark.parametrize("value", ["../x", "a/b", "..", "x" * 65, ""])
def test_path_traversal_in_device_queries(lab: Lab, value: str) -> None:
    with lab.server.http() as http:
        for path in ("/update/newest/manifest", "/update/newest/binary"):
            answer = http.get(path, params={"deviceType": value})
            assert answer.status_code == 422, (path, value, answer.status_code)
        answer = http.get(f"/api/v1/device-types/{value or 'x'}/releases/1/binary")
        assert answer.status_code in (404, 422)


@pytest.fixture
def author_service(lab: Lab) -> tuple[str, Path, Path]:
    firmware = lab.root / "firmware"
    firmware.mkdir()
    (firmware / "app.bin").write_bytes(lab.image("1.1.0").read_bytes())
    secret = lab.root / "secret.bin"
    secret.write_bytes(lab.image("6.6.6").read_bytes())
    (firmware / "link.bin").symlink_to(secret)
    out = lab.root / "service-out"
    config = ServiceConfig(
        keys_dir=lab.pki.keys,
        firmware_dir=firmware,
        out_dir=out,
        target=UploadTarget(
            lab.server.url, Credentials(user=UPLOADER, password=UPLOADER_PASSWORD), lab.pki.ca_file
        ),
        token="service-token-0123456789",
    )
    with ThreadedServer(create_service(config)) as service:
        yield service.url, out, secret


@pytest.mark.parametrize("path", ["/etc/passwd", "../secret.bin", "link.bin", "//etc/shadow"])
def test_author_service_is_no_signing_oracle(
    lab: Lab, author_service: tuple[str, Path, Path], path: str
) -> None:
    """The seed's FW Author app signed any file it could read, for anyone who asked."""
    url, out, _ = author_service
    params = {"id": "2", "deviceType": lab.device_type, "fwName": "app", "firmwarePath": path}
    assert httpx.post(f"{url}/upload", data=params).status_code == 401  # no token
    answer = httpx.post(
        f"{url}/upload", data=params, headers={"Authorization": "Bearer service-token-0123456789"}
    )
    assert answer.status_code == 403, answer.text
    assert not out.exists()
    with lab.server.http() as http:
        assert (
            http.get("/update/newest/manifest", params={"deviceType": lab.device_type}).status_code
            == 404
        )
    # the legitimate path still works, end to end to a device
    params["firmwarePath"] = "app.bin"
    answer = httpx.post(
        f"{url}/upload", data=params, headers={"Authorization": "Bearer service-token-0123456789"},
        timeout=60,
    )  # fmt: skip
    assert answer.status_code == 200, answer.text
    assert lab.device().perform_update().result == "updated"


def _answer(status: int, body: bytes, headers: list[tuple[str, str]] | None = None):
    async def handler(request: Request, forward: Forward) -> Response:
        if "/manifest" in request.target:
            return Response(status, headers or [], body)
        return await forward(request)

    return handler


@pytest.mark.parametrize(
    ("status", "body", "expected"),
    [
        (500, b"<html>Whitelabel Error Page</html>", "HTTP 500"),
        (401, b"", "HTTP 401"),
        (200, b"<html>login</html>", "manifest_malformed"),
        (200, b"\x00" * 1024, "manifest_malformed"),
        (200, b"A" * 17000, "manifest_too_large"),
    ],
)
def test_unchecked_reads(lab: Lab, status: int, body: bytes, expected: str) -> None:
    """The seed read one buffer without checking the status or the length and fed whatever
    came (an error page) to RSA. Every answer here is checked, and refused cleanly."""
    lab.publish("1.1.0", 2)
    device = lab.device()
    before = device.status()
    with Mitm(lab.server.url, lab.pki.ca_file, lab.pki.server_cert, lab.pki.server_key,
              _answer(status, body)) as mitm:  # fmt: skip
        client = lab.client_via(mitm.url, device)
        if expected.startswith("HTTP"):
            with pytest.raises(TransportError, match=expected):
                device.perform_update(client=client)
            assert device.status() == before
        else:
            refused(device, expected, client=client)


def test_truncated_answer(lab: Lab) -> None:
    """A Content-Length the body does not fill: a transport error, nothing believed."""
    lab.publish("1.1.0", 2)
    device = lab.device()
    before = device.status()

    async def short(request: Request, forward: Forward) -> Response:
        response = await forward(request)
        body = await response.read()
        if "/manifest" in request.target:

            async def cut():
                yield body[: len(body) // 2]

            return Response(
                200,
                [*response.without("content-length"), ("content-length", str(len(body)))],
                cut(),
            )
        return response

    with (
        Mitm(
            lab.server.url, lab.pki.ca_file, lab.pki.server_cert, lab.pki.server_key, short
        ) as mitm,
        pytest.raises(TransportError),
    ):
        device.perform_update(client=lab.client_via(mitm.url, device))
    assert device.status() == before
