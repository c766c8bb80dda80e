"""The seed's clients: plain curl uploads with the seed's multipart contract, and resumes a
download with ``curl -r`` ranges, over TLS with the development CA."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.server.conftest import (
    UPLOADER_PASSWORD,
    Harness,
    RealRelease,
    harness,
)

pytestmark = pytest.mark.skipif(shutil.which("curl") is None, reason="curl is not installed")


@pytest.fixture(scope="module", params=["local", "s3"])
def api(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory, tls_dir: Path
) -> Iterator[Harness]:
    directory = tmp_path_factory.mktemp("curl")
    with harness(request, directory, storage=request.param, tls=tls_dir) as h:
        yield h


def curl(api: Harness, *args: str) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        ["curl", "--silent", "--show-error", "--cacert", str(api.server.ca), *args],
        capture_output=True,
        timeout=60,
        check=False,
    )


def test_curl_upload_and_ranged_download(api: Harness, real_release: RealRelease, tmp_path: Path):
    base = api.server.base_url
    result = curl(
        api,
        "--user",
        f"uploader:{UPLOADER_PASSWORD}",
        "-F",
        f"manifestFile=@{real_release.manifest}",
        "-F",
        f"firmwareFile=@{real_release.binary}",
        "-F",
        f"id={real_release.seq}",
        "-F",
        "deviceType=sensor",
        "-F",
        "fwName=app",
        "--write-out",
        "\n%{http_code}",
        f"{base}/uploadFile",
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout == b"OK\n200"

    manifest = curl(api, "--fail", f"{base}/update/newest/manifest?deviceType=sensor")
    assert manifest.stdout == real_release.manifest.read_bytes()

    binary = real_release.binary.read_bytes()
    url = f"{base}/update/newest/binary?deviceType=sensor"
    # an interrupted download resumed in three ranges, like esp_https_ota's partial download
    pieces = []
    for spec in ("0-4095", "4096-20000", "20001-"):
        result = curl(api, "--fail", "-r", spec, url)
        assert result.returncode == 0, result.stderr
        pieces.append(result.stdout)
    assert b"".join(pieces) == binary
    result = curl(api, "--fail", "-r", "-100", url)
    assert result.stdout == binary[-100:]
    # curl -C - resumes a partial file
    partial = tmp_path / "partial.bin"
    partial.write_bytes(binary[:1000])
    result = curl(api, "--fail", "-C", "-", "-o", str(partial), url)
    assert result.returncode == 0, result.stderr
    assert partial.read_bytes() == binary
    # a range beyond the end: 416, which curl --fail reports as error 22
    result = curl(
        api, "-r", f"{len(binary)}-", "--write-out", "%{http_code}", "-o", "/dev/null", url
    )
    assert result.stdout == b"416"
