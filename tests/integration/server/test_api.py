"""Every endpoint, through real HTTPS, on SQLite, PostgreSQL and MariaDB with local and S3
storage (one server per combination, a fresh database each)."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.server.conftest import (
    ADMIN_PASSWORD,
    UPLOADER_PASSWORD,
    Harness,
    RealRelease,
    fake_release,
    harness,
    seed_upload,
    unique_type,
    upload_files,
)

COMBINATIONS = [
    ("sqlite", "local"),
    ("sqlite", "s3"),
    ("postgresql", "local"),
    ("postgresql", "s3"),
    ("mariadb", "local"),
    ("mariadb", "s3"),
]


@pytest.fixture(scope="module", params=COMBINATIONS, ids=[f"{d}+{s}" for d, s in COMBINATIONS])
def api(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory, tls_dir: Path
) -> Iterator[Harness]:
    database, storage = request.param
    directory = tmp_path_factory.mktemp(f"api-{database}-{storage}")
    with harness(request, directory, database=database, storage=storage, tls=tls_dir) as h:
        yield h


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def publish(api: Harness, device_type: str, seq: int, size: int = 4096) -> tuple[bytes, bytes]:
    manifest, binary = fake_release(seq, size)
    response = seed_upload(
        api.http,
        api.credentials.uploader,
        seq=seq,
        device_type=device_type,
        manifest=manifest,
        binary=binary,
    )
    assert response.status_code == 200, response.text
    return manifest, binary


def test_seed_upload_then_newest_manifest_and_binary(api: Harness, real_release: RealRelease):
    manifest = real_release.manifest.read_bytes()
    binary = real_release.binary.read_bytes()
    device_type = unique_type("sensor")
    response = api.http.post(
        "/uploadFile",
        auth=("uploader", UPLOADER_PASSWORD),
        data={"id": "7", "deviceType": device_type, "fwName": "app"},
        files=upload_files(manifest, binary),
    )
    assert response.status_code == 200
    assert response.text == "OK"
    assert response.headers["content-type"].startswith("text/plain")

    got = api.http.get("/update/newest/manifest", params={"deviceType": device_type})
    assert got.status_code == 200
    assert got.content == manifest
    assert got.headers["etag"] == f'"{sha(manifest)}"'
    assert got.headers["content-length"] == str(len(manifest))
    assert got.headers["cache-control"] == "no-cache"
    assert got.headers["content-type"] == "application/octet-stream"
    assert got.headers["x-fota-release"] == "7"

    got = api.http.get("/update/newest/binary", params={"deviceType": device_type})
    assert got.status_code == 200
    assert got.content == binary
    assert got.headers["etag"] == f'"{sha(binary)}"'
    assert got.headers["content-length"] == str(len(binary))
    assert got.headers["accept-ranges"] == "bytes"


def test_fields_in_query_string_like_spring(api: Harness):
    device_type = unique_type()
    manifest, binary = fake_release(2)
    response = api.http.post(
        "/uploadFile",
        params={"id": "2", "deviceType": device_type, "fwName": "app"},
        headers=api.credentials.uploader,
        files=upload_files(manifest, binary),
    )
    assert response.status_code == 200, response.text
    assert (
        api.http.get("/update/newest/manifest", params={"deviceType": device_type}).content
        == manifest
    )


def test_unknown_device_type_is_404_json(api: Harness):
    for path in ("/update/newest/manifest", "/update/newest/binary"):
        response = api.http.get(path, params={"deviceType": unique_type()})
        assert response.status_code == 404
        assert response.headers["content-type"] == "application/json"
        assert "has no release" in response.json()["error"]


def test_newest_is_the_highest_id_and_unique_per_type(api: Harness):
    first, second = unique_type(), unique_type()
    publish(api, first, 5)
    m3, _ = publish(api, first, 3)  # lower id uploaded later: not newest
    m9, b9 = publish(api, second, 5)  # the same id for another type is another release
    response = api.http.get("/update/newest/manifest", params={"deviceType": first})
    assert response.headers["x-fota-release"] == "5"
    assert response.content != m3
    assert api.http.get("/update/newest/binary", params={"deviceType": second}).content == b9
    assert api.http.get("/update/newest/manifest", params={"deviceType": second}).content == m9


def test_identical_reupload_is_ok_and_different_is_409(api: Harness):
    device_type = unique_type()
    manifest, binary = publish(api, device_type, 4)
    again = seed_upload(
        api.http,
        api.credentials.uploader,
        seq=4,
        device_type=device_type,
        manifest=manifest,
        binary=binary,
    )
    assert again.status_code == 200
    assert again.text == "OK"
    other_manifest, other_binary = fake_release(4)
    conflict = seed_upload(
        api.http,
        api.credentials.uploader,
        seq=4,
        device_type=device_type,
        manifest=other_manifest,
        binary=other_binary,
    )
    assert conflict.status_code == 409
    assert "already exists" in conflict.json()["error"]
    got = api.http.get("/update/newest/manifest", params={"deviceType": device_type})
    assert got.content == manifest


def test_if_none_match_gives_304(api: Harness):
    device_type = unique_type()
    manifest, binary = publish(api, device_type, 1)
    for path, data in (("manifest", manifest), ("binary", binary)):
        etag = f'"{sha(data)}"'
        for header in (etag, f"W/{etag}", f'"other", {etag}', "*"):
            response = api.http.get(
                f"/update/newest/{path}",
                params={"deviceType": device_type},
                headers={"if-none-match": header},
            )
            assert response.status_code == 304, (path, header)
            assert response.content == b""
            assert response.headers["etag"] == etag
        response = api.http.get(
            f"/update/newest/{path}",
            params={"deviceType": device_type},
            headers={"if-none-match": '"0000"'},
        )
        assert response.status_code == 200


def test_ranges(api: Harness):
    device_type = unique_type()
    _, binary = publish(api, device_type, 1, size=10_000)
    size = len(binary)
    url, params = "/update/newest/binary", {"deviceType": device_type}

    def get(**headers: str):
        return api.http.get(url, params=params, headers=headers)

    response = get(range="bytes=0-99")
    assert response.status_code == 206
    assert response.content == binary[:100]
    assert response.headers["content-range"] == f"bytes 0-99/{size}"
    assert response.headers["content-length"] == "100"
    response = get(range="bytes=10000-")
    assert response.status_code == 206
    assert response.content == binary[10000:]
    response = get(range="bytes=-300")
    assert response.content == binary[-300:]
    assert response.headers["content-range"] == f"bytes {size - 300}-{size - 1}/{size}"
    response = get(range=f"bytes=500-{size * 2}")
    assert response.content == binary[500:]
    response = get(range=f"bytes={size}-")
    assert response.status_code == 416
    assert response.headers["content-range"] == f"bytes */{size}"
    response = get(range="bytes=-0")
    assert response.status_code == 416
    # several ranges, a foreign unit or garbage: the whole image (documented)
    for header in ("bytes=0-1,5-6", "items=0-1", "bytes=9-2", "bytes=x"):
        response = get(range=header)
        assert response.status_code == 200, header
        assert response.content == binary
    etag = f'"{sha(binary)}"'
    response = get(range="bytes=0-9", **{"if-range": etag})
    assert response.status_code == 206
    response = get(range="bytes=0-9", **{"if-range": '"stale"'})
    assert response.status_code == 200
    assert response.content == binary


def test_head_requests(api: Harness):
    device_type = unique_type()
    manifest, binary = publish(api, device_type, 1)
    response = api.http.head("/update/newest/manifest", params={"deviceType": device_type})
    assert response.status_code == 200
    assert response.headers["content-length"] == str(len(manifest))
    response = api.http.head("/update/newest/binary", params={"deviceType": device_type})
    assert response.headers["content-length"] == str(len(binary))


def test_v1_listing_and_release_metadata(api: Harness):
    device_type = unique_type()
    manifest, binary = publish(api, device_type, 1)
    publish(api, device_type, 2)
    listing = api.http.get("/api/v1/device-types", headers=api.credentials.uploader)
    assert listing.status_code == 200
    entry = next(item for item in listing.json() if item["device_type"] == device_type)
    assert entry == {"device_type": device_type, "newest": 2, "releases": 2}
    releases = api.http.get(
        f"/api/v1/device-types/{device_type}/releases", headers=api.credentials.uploader
    ).json()
    assert [r["id"] for r in releases] == [1, 2]
    first = releases[0]
    assert first["manifest_sha256"] == sha(manifest)
    assert first["binary_sha256"] == sha(binary)
    assert first["manifest_size"] == len(manifest)
    assert first["binary_size"] == len(binary)
    assert first["fw_name"] == "app"
    assert first["uploader"].startswith("uploader")
    assert first["yanked"] is False
    assert first["uploaded_at"].endswith("Z") or "+00:00" in first["uploaded_at"]
    one = api.http.get(
        f"/api/v1/device-types/{device_type}/releases/1", headers=api.credentials.admin
    )
    assert one.json() == first
    missing = api.http.get(
        f"/api/v1/device-types/{device_type}/releases/99", headers=api.credentials.admin
    )
    assert missing.status_code == 404
    unknown = api.http.get(
        f"/api/v1/device-types/{unique_type()}/releases", headers=api.credentials.admin
    )
    assert unknown.status_code == 404
    assert api.http.get("/api/v1/device-types").status_code == 401


def test_v1_downloads_by_id_and_newest(api: Harness):
    device_type = unique_type()
    m1, b1 = publish(api, device_type, 1)
    m2, b2 = publish(api, device_type, 2)
    base = f"/api/v1/device-types/{device_type}"
    assert api.http.get(f"{base}/releases/1/manifest").content == m1
    assert api.http.get(f"{base}/releases/1/binary").content == b1
    response = api.http.get(f"{base}/releases/2/binary", headers={"range": "bytes=512-1023"})
    assert response.status_code == 206
    assert response.content == b2[512:1024]
    response = api.http.get(f"{base}/releases/2/manifest")
    assert response.headers["x-fota-release"] == "2"
    assert response.headers["etag"] == f'"{sha(m2)}"'
    assert api.http.get(f"{base}/newest/manifest").content == m2
    assert api.http.get(f"{base}/newest/binary").content == b2
    assert api.http.get(f"{base}/releases/3/binary").status_code == 404
    assert api.http.get(f"/api/v1/device-types/{unique_type()}/newest/binary").status_code == 404


def test_v1_upload_created_then_retry(api: Harness):
    device_type = unique_type()
    manifest, binary = fake_release(3)
    url = f"/api/v1/device-types/{device_type}/releases"
    response = api.http.post(
        url,
        headers=api.credentials.uploader,
        data={"id": "3", "fwName": "fw"},
        files=upload_files(manifest, binary),
    )
    assert response.status_code == 201, response.text
    body = response.json()
    assert body["created"] is True
    assert body["release"]["id"] == 3
    assert body["release"]["binary_sha256"] == sha(binary)
    retry = api.http.post(
        url,
        headers=api.credentials.uploader,
        data={"id": "3", "fwName": "fw"},
        files=upload_files(manifest, binary),
    )
    assert retry.status_code == 200
    assert retry.json()["created"] is False
    mismatch = api.http.post(
        url,
        headers=api.credentials.uploader,
        data={"id": "4", "fwName": "fw", "deviceType": "other"},
        files=upload_files(manifest, binary),
    )
    assert mismatch.status_code == 422
    assert mismatch.json()["field"] == "deviceType"


def test_yank_unyank_delete_fall_back(api: Harness):
    device_type = unique_type()
    m1, _ = publish(api, device_type, 1)
    m2, _ = publish(api, device_type, 2)
    base = f"/api/v1/device-types/{device_type}/releases"

    def newest() -> bytes:
        return api.http.get("/update/newest/manifest", params={"deviceType": device_type}).content

    assert newest() == m2
    assert api.http.post(f"{base}/2/yank", headers=api.credentials.uploader).status_code == 403
    response = api.http.post(f"{base}/2/yank", headers=api.credentials.admin)
    assert response.status_code == 200
    assert response.json()["yanked"] is True
    assert newest() == m1
    assert api.http.get(f"{base}/2/binary").status_code == 404  # withdrawn from devices
    assert api.http.post(f"{base}/2/unyank", headers=api.credentials.admin).status_code == 200
    assert newest() == m2
    response = api.http.delete(f"{base}/2", headers=api.credentials.admin)
    assert response.status_code == 204
    assert newest() == m1
    assert api.http.delete(f"{base}/2", headers=api.credentials.admin).status_code == 404
    assert api.http.post(f"{base}/1/yank", headers=api.credentials.admin).status_code == 200
    response = api.http.get("/update/newest/manifest", params={"deviceType": device_type})
    assert response.status_code == 404
    listing = api.http.get("/api/v1/device-types", headers=api.credentials.admin).json()
    entry = next(item for item in listing if item["device_type"] == device_type)
    assert entry == {"device_type": device_type, "newest": None, "releases": 1}


def test_basic_auth_admin_and_roles(api: Harness):
    device_type = unique_type()
    publish(api, device_type, 1)
    response = api.http.post(
        f"/api/v1/device-types/{device_type}/releases/1/yank", auth=("admin", ADMIN_PASSWORD)
    )
    assert response.status_code == 200


def test_ops_endpoints(api: Harness):
    assert api.http.get("/healthz").json() == {"status": "ok"}
    ready = api.http.get("/readyz")
    assert ready.status_code == 200
    assert ready.json() == {"status": "ok", "database": "ok", "storage": "ok"}
    text = api.http.get("/metrics").text
    assert "fota_http_requests_total" in text
    assert 'route="/update/newest/manifest"' in text
    assert "fota_bytes_served_total" in text
    assert 'fota_uploads_total{result="created"}' in text
    assert "fota_not_modified_total" in text
    spec = api.http.get("/openapi.json").json()
    for path in (
        "/uploadFile",
        "/update/newest/manifest",
        "/update/newest/binary",
        "/api/v1/device-types",
        "/api/v1/device-types/{device_type}/releases/{release_id}/binary",
        "/healthz",
        "/readyz",
        "/metrics",
    ):
        assert path in spec["paths"], path
