"""Bad input never yields a 500 or a stack trace; every answer is JSON naming the field."""

from __future__ import annotations

import os
import struct
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.integration.server.conftest import (
    Harness,
    fake_release,
    harness,
    seed_upload,
    unique_type,
    upload_files,
)

LIMIT = 256 * 1024


@pytest.fixture(scope="module")
def api(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory, tls_dir: Path
) -> Iterator[Harness]:
    directory = tmp_path_factory.mktemp("bad-input")
    with harness(
        request,
        directory,
        tls=tls_dir,
        max_upload_size=LIMIT,
        auth_max_failures=5,
        auth_lockout_seconds=30,
    ) as h:
        yield h


BAD_NAMES = [
    ("", 422, "must not be empty"),
    ("a" * 65, 422, "limit is 64"),
    ("a/b", 422, "path separators"),
    ("a\\b", 422, "path separators"),
    ("..", 422, ".."),
    ("a..b", 422, ".."),
    ("a\x01b", 422, "control characters"),
    ("a\nb", 422, "control characters"),
    ("-lead", 422, "may only use"),
    ("a b", 422, "may only use"),
    ("ünï", 422, "may only use"),
]
BAD_IDS = ["abc", "1.5", "0", "-3", "2147483648", "99999999999999999999999", "", "0x10"]


def assert_json_error(response: httpx.Response, status: int, field: str | None) -> dict:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/json"
    body = response.json()
    assert set(body) == {"error", "field"}
    assert body["field"] == field
    assert "Traceback" not in body["error"]
    return body


@pytest.mark.parametrize(("name", "status", "message"), BAD_NAMES)
def test_bad_device_type_on_polls(api: Harness, name: str, status: int, message: str):
    for path in ("/update/newest/manifest", "/update/newest/binary"):
        response = api.http.get(path, params={"deviceType": name})
        body = assert_json_error(response, status, "deviceType")
        assert message in body["error"]


@pytest.mark.parametrize(("name", "status", "message"), BAD_NAMES)
def test_bad_names_on_upload(api: Harness, name: str, status: int, message: str):
    manifest, binary = fake_release(1)
    for field, values in (
        ("deviceType", {"deviceType": name, "fwName": "app"}),
        ("fwName", {"deviceType": unique_type(), "fwName": name}),
    ):
        response = api.http.post(
            "/uploadFile",
            headers=api.credentials.uploader,
            data={"id": "1", **values},
            files=upload_files(manifest, binary),
        )
        body = assert_json_error(response, status, field)
        assert message in body["error"]


@pytest.mark.parametrize("value", BAD_IDS)
def test_bad_ids(api: Harness, value: str):
    manifest, binary = fake_release(1)
    response = seed_upload(
        api.http,
        api.credentials.uploader,
        seq=value,
        device_type=unique_type(),
        manifest=manifest,
        binary=binary,
    )
    assert_json_error(response, 422, "id")
    response = api.http.get(
        f"/api/v1/device-types/{unique_type()}/releases/{value or '%20'}/binary"
    )
    assert response.status_code in (404, 422) if not value else response.status_code == 422
    # query-string ids are refused before the body is read
    response = api.http.post(
        "/uploadFile",
        params={"id": value},
        headers=api.credentials.uploader,
        files=upload_files(manifest, binary),
    )
    assert_json_error(response, 422, "id")


def test_bad_path_parameters_on_v1(api: Harness):
    for path in (
        "/api/v1/device-types/a..b/newest/manifest",
        "/api/v1/device-types/%01x/newest/binary",
        "/api/v1/device-types/" + "a" * 65 + "/releases/1/manifest",
    ):
        assert_json_error(api.http.get(path), 422, "deviceType")
    response = api.http.get("/api/v1/device-types/a%2Fb/newest/binary")
    assert response.status_code in (404, 422)
    assert response.headers["content-type"] == "application/json"


@pytest.mark.parametrize("missing", ["id", "deviceType", "fwName", "manifestFile", "firmwareFile"])
def test_missing_parameters_are_400(api: Harness, missing: str):
    manifest, binary = fake_release(1)
    data = {"id": "1", "deviceType": unique_type(), "fwName": "app"}
    files = upload_files(manifest, binary)
    data.pop(missing, None)
    files.pop(missing, None)
    response = api.http.post(
        "/uploadFile", headers=api.credentials.uploader, data=data, files=files
    )
    assert_json_error(response, 400, missing)


def test_missing_device_type_on_polls(api: Harness):
    for path in ("/update/newest/manifest", "/update/newest/binary"):
        assert_json_error(api.http.get(path), 400, "deviceType")


def test_unsupported_media_type(api: Harness):
    response = api.http.post(
        "/uploadFile",
        headers={**api.credentials.uploader, "content-type": "application/json"},
        content=b"{}",
    )
    assert_json_error(response, 415, "Content-Type")
    response = api.http.post(
        "/uploadFile",
        headers=api.credentials.uploader,
        data={"id": "1", "deviceType": "x", "fwName": "y"},
    )
    assert_json_error(response, 415, "Content-Type")


def test_malformed_multipart_is_400(api: Harness):
    response = api.http.post(
        "/uploadFile",
        headers={**api.credentials.uploader, "content-type": "multipart/form-data; boundary=xyz"},
        content=b'--xyz\r\nContent-Disposition: form-data; name="id"\r\n\r\n1\r\n',
    )
    assert_json_error(response, 400, "body")
    response = api.http.post(
        "/uploadFile",
        headers={**api.credentials.uploader, "content-type": "multipart/form-data"},
        content=b"garbage",
    )
    assert_json_error(response, 400, "Content-Type")


def test_oversize_firmware_and_manifest_are_413(api: Harness):
    manifest, binary = fake_release(1, size=LIMIT)  # 512 + LIMIT bytes: one too many... and more
    response = seed_upload(
        api.http,
        api.credentials.uploader,
        seq=1,
        device_type=unique_type(),
        manifest=manifest,
        binary=binary,
    )
    assert_json_error(response, 413, "firmwareFile")
    _, small = fake_release(1)
    response = seed_upload(
        api.http,
        api.credentials.uploader,
        seq=1,
        device_type=unique_type(),
        manifest=b"m" * (16 * 1024 + 1),
        binary=small,
    )
    assert_json_error(response, 413, "manifestFile")
    response = seed_upload(
        api.http,
        api.credentials.uploader,
        seq=1,
        device_type=unique_type(),
        manifest=b"m" * (16 * 1024),
        binary=small,
    )
    assert response.status_code == 200


def test_body_far_too_large_is_refused_from_content_length(api: Harness):
    with socket_to(api) as sock:
        sock.sendall(
            b"POST /uploadFile HTTP/1.1\r\nHost: x\r\n"
            b"Authorization: Bearer " + api.credentials.uploader_token.encode() + b"\r\n"
            b"Content-Type: multipart/form-data; boundary=b\r\n"
            b"Content-Length: 999999999999\r\n\r\n"
        )
        reply = sock.recv(4096)
    assert reply.startswith(b"HTTP/1.1 413")


class socket_to:  # noqa: N801 -- used like a function
    def __init__(self, api: Harness) -> None:
        import socket
        import ssl

        context = ssl.create_default_context(cafile=str(api.server.ca))
        raw = socket.create_connection(("127.0.0.1", api.server.port), timeout=10)
        self.sock = context.wrap_socket(raw, server_hostname="127.0.0.1")

    def __enter__(self):
        return self.sock

    def __exit__(self, *exc: object) -> None:
        self.sock.close()


def _header(magic: int = 0x0788B6CF, bin_size: int = 1000, reserved: bytes = b"\0" * 88) -> bytes:
    return struct.pack(
        "<I384s16sI16s88s",
        magic,
        os.urandom(384),
        os.urandom(16),
        bin_size,
        os.urandom(16),
        reserved,
    )


@pytest.mark.parametrize(
    ("binary", "message"),
    [
        (_header(magic=0x12345678) + bytes(1000), "magic"),
        (_header(bin_size=0), "bin_size is 0"),
        (_header(reserved=b"\1" * 88), "reserved"),
        (_header(bin_size=1000) + bytes(999), "announces"),
        (_header(bin_size=1000) + bytes(1001), "announces"),
        (b"\xcf\xb6\x88\x07" + bytes(100), "truncated"),
        (b"", "truncated"),
    ],
    ids=["magic", "zero", "reserved", "short", "long", "truncated", "empty"],
)
def test_bad_firmware_header_is_422(api: Harness, binary: bytes, message: str):
    device_type = unique_type()
    response = seed_upload(
        api.http,
        api.credentials.uploader,
        seq=1,
        device_type=device_type,
        manifest=b"manifest",
        binary=binary,
    )
    body = assert_json_error(response, 422, "firmwareFile")
    assert message in body["error"]
    response = api.http.get("/update/newest/manifest", params={"deviceType": device_type})
    assert response.status_code == 404


def test_empty_manifest_is_422(api: Harness):
    _, binary = fake_release(1)
    response = seed_upload(
        api.http,
        api.credentials.uploader,
        seq=1,
        device_type=unique_type(),
        manifest=b"",
        binary=binary,
    )
    assert_json_error(response, 422, "manifestFile")


@pytest.mark.parametrize("nonce", ["", "abc", "A" * 32, "g" * 32, "0" * 31, "0" * 66])
def test_bad_nonce_is_422(api: Harness, nonce: str):
    response = api.http.get(
        "/update/newest/manifest", params={"deviceType": unique_type(), "nonce": nonce}
    )
    assert_json_error(response, 422, "nonce")


def test_unknown_routes_and_methods_are_json(api: Harness):
    response = api.http.get("/nope")
    assert_json_error(response, 404, None)
    response = api.http.put("/update/newest/manifest")
    assert_json_error(response, 405, None)
    assert response.headers["allow"] == "GET, HEAD"
    response = api.http.put("/api/v1/device-types/x/releases/1")
    assert response.headers["allow"] == "DELETE, GET"
    response = api.http.put("/api/v1/device-types/x/releases")
    assert response.headers["allow"] == "GET, POST"


def test_no_user_text_reaches_the_file_system(api: Harness):
    manifest, binary = fake_release(1)
    seed_upload(
        api.http,
        api.credentials.uploader,
        seq=1,
        device_type="..",
        manifest=manifest,
        binary=binary,
        fw_name="../../../../tmp/evil",
    )
    seed_upload(
        api.http,
        api.credentials.uploader,
        seq=1,
        device_type=unique_type(),
        manifest=manifest,
        binary=binary,
        fw_name="ok",
    )
    data_dir = api.settings.data_dir
    names = {p.name for p in data_dir.rglob("*") if p.is_file()}
    assert not any("evil" in n or "app" in n for n in names)
    blobs = [p for p in (data_dir / "blobs" / "sha256").rglob("*") if p.is_file()]
    assert blobs
    assert all(len(p.name) == 64 for p in blobs)
    assert not Path("/tmp/evil.bin").exists()


# authentication ------------------------------------------------------------------------------


def test_missing_and_wrong_credentials_are_401_with_challenge(api: Harness):
    manifest, binary = fake_release(1)
    for headers in ({}, {"authorization": "Bearer fota_wrong"}, {"authorization": "Digest x"}):
        response = api.http.post(
            "/uploadFile",
            headers=headers,
            data={"id": "1", "deviceType": "a", "fwName": "b"},
            files=upload_files(manifest, binary),
        )
        assert_json_error(response, 401, None)
        assert "Basic" in response.headers["www-authenticate"]
        assert "Bearer" in response.headers["www-authenticate"]
    response = api.http.post("/uploadFile", auth=("uploader", "wrong-password"))
    assert response.status_code == 401
    response = api.http.post("/uploadFile", headers={"authorization": "Basic !!!"})
    assert response.status_code == 401


def test_device_and_uploader_roles_are_403(api: Harness):
    device_type = unique_type()
    response = api.http.post(
        f"/api/v1/device-types/{device_type}/releases/1/yank", headers=api.credentials.uploader
    )
    assert_json_error(response, 403, None)
    response = api.http.delete(
        f"/api/v1/device-types/{device_type}/releases/1", headers=api.credentials.uploader
    )
    assert response.status_code == 403


def test_repeated_failures_are_throttled(api: Harness):
    # a dedicated user name: the lock-out must not disturb the other tests
    statuses = []
    for _ in range(7):
        response = api.http.post("/uploadFile", auth=("nobody-here", "wrong-password-x"))
        statuses.append(response.status_code)
    assert statuses[:5] == [401] * 5
    assert statuses[5:] == [429, 429]
    assert int(response.headers["retry-after"]) > 0
    assert_json_error(response, 429, None)
