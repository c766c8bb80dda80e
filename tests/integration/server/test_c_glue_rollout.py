"""The ESP32 component's check (src/secure_ota_check.c with the core) polls the real server over
TLS while a staged rollout is active (``secure_ota_glue_report check``, esp32/host/glue).

The poll carries the device's id (``deviceId``): a device whose id falls in the rollout's
current stage is offered the held release, verifies it (manifest, freshness statement for its
nonce) and finds it an update; a device outside the stage is offered the previous release; the
server counts the offer for the device that polled. With per-device tokens, the id the poll
sends is the token's name (the id its reports carry), and another device's token is refused.
NVS and the HTTP client are the host's (esp32/host/glue/idf_host.c), not ESP-IDF's.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from secure_fota.author.release import ReleaseRequest, build_release
from secure_fota.formats.app_image_builder import ImageSpec, build_app_image
from secure_fota.keys.directory import load_author_keys
from secure_fota.keys.tls import CA_FILE
from secure_fota.server.fleet import in_stage
from secure_fota.wire import API_V1
from tests.integration.server.conftest import (
    Harness,
    harness,
    seed_upload,
    unique_type,
    upload_files,
)
from tests.integration.server.test_c_glue_reports import GLUE, MAC_ID, GlueDevice, url_of

pytestmark = pytest.mark.skipif(
    not GLUE.exists(), reason=f"{GLUE} is not built (run `make host-test`)"
)

STAGE = 50  # percent of the first stage


@dataclass(frozen=True)
class Files:
    manifest: bytes
    binary: bytes


def release(key_dir: Path, directory: Path, device_type: str, seq: int) -> Files:
    """A real release (author tool, the session's keys) of an ESP32 image (chip id 0, as the
    host build's CONFIG_IDF_FIRMWARE_CHIP_ID)."""
    out = directory / f"r{seq}"
    out.mkdir()
    firmware = out / "app.bin"
    image = ImageSpec(chip="esp32", size=24 * 1024, seed=seq, version=f"1.{seq}.0")
    firmware.write_bytes(build_app_image(image))
    files = build_release(
        ReleaseRequest(
            firmware=firmware, seq=seq, device_type=device_type, fw_name="app", out_dir=out
        ),
        load_author_keys(key_dir, secure_boot_version="v1"),
        now=int(time.time()),
    )
    return Files(files.manifest.read_bytes(), files.binary.read_bytes())


def publish_with_rollout(h: Harness, key_dir: Path, directory: Path, device_type: str) -> int:
    """Release 1 for everyone, release 2 held and rolled out to STAGE % first; the rollout id."""
    first = release(key_dir, directory, device_type, 1)
    response = seed_upload(
        h.http, h.credentials.uploader, seq=1, device_type=device_type,
        manifest=first.manifest, binary=first.binary,
    )  # fmt: skip
    assert response.status_code == 200, response.text
    second = release(key_dir, directory, device_type, 2)
    response = h.http.post(
        "/uploadFile",
        params={"hold": "1"},
        headers=h.credentials.uploader,
        data={"id": "2", "deviceType": device_type, "fwName": "app"},
        files=upload_files(second.manifest, second.binary),
    )
    assert response.status_code == 200, response.text
    response = h.http.post(
        f"{API_V1}/rollouts",
        json={"device_type": device_type, "seq": 2, "stages": [STAGE, 100], "stage_wait": 3600},
        headers=h.credentials.admin,
    )
    assert response.status_code == 201, response.text
    time.sleep(0.2)  # cache_ttl
    return int(response.json()["id"])


def check(device: GlueDevice, key_dir: Path, **options: str) -> dict[str, Any]:
    done = device.run("check", device_keys=str(key_dir), **options)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert len(lines) == 1, (done.stdout, done.stderr)
    return json.loads(lines[0])  # type: ignore[no-any-return]


def ids(device_type: str) -> tuple[str, str]:
    """A device id inside the first stage and one outside it."""
    candidates = [f"{device_type}-{i:04d}" for i in range(200)]
    inside = next(d for d in candidates if in_stage(d, STAGE))
    outside = next(d for d in candidates if not in_stage(d, STAGE))
    return inside, outside


@pytest.fixture(scope="module")
def server(
    request: pytest.FixtureRequest,
    tmp_path_factory: pytest.TempPathFactory,
    tls_dir: Path,
    key_dir: Path,
) -> Iterator[Harness]:
    directory = tmp_path_factory.mktemp("c-glue-rollout")
    with harness(
        request, directory, database="sqlite", tls=tls_dir,
        freshness_key_file=key_dir / "freshness_key.pem", rollout_tick=0.1,
    ) as h:  # fmt: skip
        yield h


def test_a_device_in_the_stage_is_offered_the_held_release(
    server: Harness, tls_dir: Path, key_dir: Path, tmp_path: Path
) -> None:
    assert (key_dir / "freshness_pub.pem").exists()  # the device requires statements
    device_type = unique_type("c-roll")
    rollout_id = publish_with_rollout(server, key_dir, tmp_path, device_type)
    inside, outside = ids(device_type)
    url, ca = url_of(server), tls_dir / CA_FILE

    got = check(GlueDevice(tmp_path / "in", url, ca, device_type), key_dir, device_id=inside)
    assert got == {"ret": "ESP_OK", "verdict": "ESP_OK", "available": True, "seq": 2,
                   "server_release": 2}  # fmt: skip
    got = check(GlueDevice(tmp_path / "out", url, ca, device_type), key_dir, device_id=outside)
    assert got == {"ret": "ESP_OK", "verdict": "ESP_OK", "available": True, "seq": 1,
                   "server_release": 1}  # fmt: skip
    # without a configured id the device polls as <target>-<MAC>, the id its reports carry
    got = check(GlueDevice(tmp_path / "mac", url, ca, device_type), key_dir)
    assert got["available"] and got["seq"] == (2 if in_stage(MAC_ID, STAGE) else 1)

    # the server counted an offer for the device of the stage that polled (and for the MAC
    # id if it is in the stage), none for the one outside
    progress = server.http.get(
        f"{API_V1}/rollouts/{rollout_id}", headers=server.credentials.admin
    ).json()["progress"]
    assert progress[0]["pending"] == 1 + in_stage(MAC_ID, STAGE), progress


def test_per_device_tokens_poll_as_their_own_id(
    request: pytest.FixtureRequest, tls_dir: Path, key_dir: Path, tmp_path: Path
) -> None:
    device_type = unique_type("c-tok")
    inside, outside = ids(device_type)
    with harness(
        request, tmp_path / "server", database="sqlite", tls=tls_dir,
        freshness_key_file=key_dir / "freshness_key.pem", rollout_tick=0.1,
        device_auth="device-token",
        device_tokens={inside: (device_type, True), outside: (device_type, True)},
    ) as api:  # fmt: skip
        publish_with_rollout(api, key_dir, tmp_path, device_type)
        tokens = api.credentials.device_tokens
        url, ca = url_of(api), tls_dir / CA_FILE
        device = GlueDevice(tmp_path / "in", url, ca, device_type)
        got = check(device, key_dir, device_id=inside, token=tokens[inside])
        assert (got["ret"], got["seq"]) == ("ESP_OK", 2)
        got = check(device, key_dir, device_id=outside, token=tokens[outside])
        assert (got["ret"], got["seq"]) == ("ESP_OK", 1)
        # another device's token: the server refuses the poll (403), nothing is judged
        got = check(device, key_dir, device_id=inside, token=tokens[outside])
        assert got["ret"] == "unexpected_status" and got["seq"] is None, got
