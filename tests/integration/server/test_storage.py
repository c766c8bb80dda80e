"""Storage behaviour on both backends: content addressing, garbage collection of blobs no
release references, and (S3) downloads redirected to presigned URLs."""

from __future__ import annotations

import hashlib
from pathlib import Path

import httpx
import pytest

from secure_fota.devtools.harness import run_fota
from tests.integration.server.conftest import (
    Harness,
    fake_release,
    harness,
    seed_upload,
    unique_type,
    wait_until,
)


def _env(api: Harness) -> dict[str, str]:
    settings = api.settings
    env = {"FOTA_DATABASE_URL": settings.effective_database_url(), "FOTA_STORAGE": settings.storage}
    if settings.storage == "s3":
        env.update(
            FOTA_S3_ENDPOINT_URL=str(settings.s3_endpoint_url),
            FOTA_S3_BUCKET=str(settings.s3_bucket),
            FOTA_S3_ACCESS_KEY_ID="testing",
            FOTA_S3_SECRET_ACCESS_KEY="testing",
        )
    return env


def _blob_names(api: Harness) -> set[str]:
    settings = api.settings
    if settings.storage == "local":
        return {p.name for p in (settings.data_dir / "blobs" / "sha256").rglob("*") if p.is_file()}
    import boto3

    client = boto3.client(
        "s3",
        endpoint_url=settings.s3_endpoint_url,
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )
    listing = client.list_objects_v2(Bucket=settings.s3_bucket, Prefix=settings.s3_prefix)
    client.close()
    return {item["Key"].removeprefix(settings.s3_prefix) for item in listing.get("Contents", [])}


@pytest.mark.parametrize("storage", ["local", "s3"])
def test_content_addressing_and_garbage_collection(
    request: pytest.FixtureRequest, tmp_path: Path, tls_dir: Path, storage: str
):
    with harness(request, tmp_path, storage=storage, tls=tls_dir) as api:
        kept_type, dropped_type = unique_type(), unique_type()
        kept = fake_release(1)
        dropped = fake_release(2)
        for device_type, (manifest, binary) in ((kept_type, kept), (dropped_type, dropped)):
            response = seed_upload(
                api.http,
                api.credentials.uploader,
                seq=1,
                device_type=device_type,
                manifest=manifest,
                binary=binary,
            )
            assert response.status_code == 200
        # the same bytes under another device type are stored once
        response = seed_upload(
            api.http,
            api.credentials.uploader,
            seq=5,
            device_type=unique_type(),
            manifest=kept[0],
            binary=kept[1],
        )
        assert response.status_code == 200
        digests = {hashlib.sha256(data).hexdigest() for data in (*kept, *dropped)}
        assert _blob_names(api) == digests
        response = api.http.delete(
            f"/api/v1/device-types/{dropped_type}/releases/1", headers=api.credentials.admin
        )
        assert response.status_code == 204
        # within the grace period nothing is removed (an upload may be between blob and row)
        result = run_fota("server", "gc", "--data-dir", str(api.settings.data_dir), env=_env(api))
        assert result.returncode == 0, result.stderr
        assert "removed 0" in result.stdout
        result = run_fota(
            "server", "gc", "--grace", "0", "--data-dir", str(api.settings.data_dir), env=_env(api)
        )
        assert result.returncode == 0, result.stderr
        assert "removed 2" in result.stdout
        assert _blob_names(api) == {hashlib.sha256(data).hexdigest() for data in kept}
        response = api.http.get("/update/newest/binary", params={"deviceType": kept_type})
        assert response.content == kept[1]


def test_presigned_downloads(request: pytest.FixtureRequest, tmp_path: Path, tls_dir: Path):
    with harness(request, tmp_path, storage="s3", tls=tls_dir, s3_presign_downloads=True) as api:
        device_type = unique_type()
        manifest, binary = fake_release(1, size=5000)
        seed_upload(
            api.http,
            api.credentials.uploader,
            seq=1,
            device_type=device_type,
            manifest=manifest,
            binary=binary,
        )
        response = api.http.get("/update/newest/binary", params={"deviceType": device_type})
        assert response.status_code == 302
        location = response.headers["location"]
        assert location.startswith(str(api.settings.s3_endpoint_url))
        assert "Signature" in location or "X-Amz-Signature" in location
        assert httpx.get(location).content == binary
        part = httpx.get(location, headers={"range": "bytes=100-199"})
        assert part.status_code == 206
        assert part.content == binary[100:200]
        # conditional requests are still answered by the server; manifests are never redirected
        etag = f'"{hashlib.sha256(binary).hexdigest()}"'
        response = api.http.get(
            "/update/newest/binary",
            params={"deviceType": device_type},
            headers={"if-none-match": etag},
        )
        assert response.status_code == 304
        response = api.http.get("/update/newest/manifest", params={"deviceType": device_type})
        assert response.status_code == 200
        assert response.content == manifest


def test_start_up_collects_old_orphans_only(
    request: pytest.FixtureRequest, tmp_path: Path, tls_dir: Path
):
    import os

    objects = tmp_path / "data" / "blobs" / "sha256"
    old, young = hashlib.sha256(b"old").hexdigest(), hashlib.sha256(b"young").hexdigest()
    for digest, age in ((old, 7200), (young, 60)):
        path = objects / digest[:2] / digest
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"x")
        os.utime(path, (path.stat().st_mtime - age,) * 2)
    with harness(request, tmp_path, tls=tls_dir):
        assert wait_until(lambda: not (objects / old[:2] / old).exists(), 5)
        assert (objects / young[:2] / young).exists()  # may belong to an upload in flight


def test_s3_bucket_removed_is_a_clean_error(
    request: pytest.FixtureRequest, tmp_path: Path, tls_dir: Path
):
    """The bucket disappears (deleted, or credentials revoked): uploads answer 503, nothing
    becomes visible, /readyz reports it; when the bucket is back, everything works again
    without a restart."""
    import boto3

    with harness(request, tmp_path, tls=tls_dir, storage="s3") as api:
        moto = request.getfixturevalue("moto_server")
        client = boto3.client("s3", **moto.client_options())
        bucket = api.settings.s3_bucket
        device_type = unique_type()
        manifest, binary = fake_release(1)
        listing = client.list_objects_v2(Bucket=bucket).get("Contents", [])
        for item in listing:
            client.delete_object(Bucket=bucket, Key=item["Key"])
        client.delete_bucket(Bucket=bucket)
        try:
            response = seed_upload(
                api.http, api.credentials.uploader, seq=1, device_type=device_type,
                manifest=manifest, binary=binary,
            )  # fmt: skip
            assert response.status_code == 503, response.text
            assert response.json()["error"] and response.headers["retry-after"] == "5"
            assert api.http.get("/readyz").status_code == 503
            params = {"deviceType": device_type}
            assert api.http.get("/update/newest/manifest", params=params).status_code == 404
            assert not any((api.settings.data_dir).rglob("*.part"))
        finally:
            client.create_bucket(Bucket=bucket)
        assert wait_until(lambda: api.http.get("/readyz").status_code == 200, 10)
        response = seed_upload(
            api.http, api.credentials.uploader, seq=1, device_type=device_type,
            manifest=manifest, binary=binary,
        )  # fmt: skip
        assert response.status_code == 200, response.text
        assert api.http.get("/update/newest/binary", params=params).content == binary
        client.close()
