"""The wire contract, pinned to the spellings docs/api.md documents (the seed's names included):
servers, devices and the author tool all build their requests from ``secure_fota.wire``, so a
change there must show up here first."""

from __future__ import annotations

import pytest

from secure_fota import wire
from secure_fota.errors import InputError


def test_paths_and_names_are_the_documented_ones() -> None:
    assert (wire.NEWEST_MANIFEST, wire.NEWEST_BINARY, wire.UPLOAD) == (
        "/update/newest/manifest",
        "/update/newest/binary",
        "/uploadFile",
    )
    assert wire.API_V1 + wire.RELEASE_BINARY == (
        "/api/v1/device-types/{device_type}/releases/{release_id}/binary"
    )
    assert wire.API_V1 + wire.TYPE_NEWEST_MANIFEST == (
        "/api/v1/device-types/{device_type}/newest/manifest"
    )
    assert (wire.ID, wire.DEVICE_TYPE, wire.FW_NAME, wire.NONCE) == (
        "id",
        "deviceType",
        "fwName",
        "nonce",
    )
    assert (wire.MANIFEST_FILE, wire.FIRMWARE_FILE) == ("manifestFile", "firmwareFile")
    assert wire.FRESHNESS_HEADER.lower() == "x-fota-freshness"
    assert wire.RELEASE_HEADER.lower() == "x-fota-release"
    assert (wire.SERVICE_UPLOAD, wire.FIRMWARE_PATH) == ("/upload", "firmwarePath")


def test_url_builders() -> None:
    base = "https://fota.example:8443/"
    assert wire.newest_manifest_url(base) == "https://fota.example:8443/update/newest/manifest"
    assert wire.poll_query("sensor") == {"deviceType": "sensor"}
    assert wire.poll_query("sensor", "ab" * 16) == {"deviceType": "sensor", "nonce": "ab" * 16}
    assert wire.release_binary_url(base, "sensor-v2", 7) == (
        "https://fota.example:8443/api/v1/device-types/sensor-v2/releases/7/binary"
    )
    assert wire.newest_binary_url(base, "sensor.v2") == (
        "https://fota.example:8443/update/newest/binary?deviceType=sensor.v2"
    )
    assert wire.upload_url(base) == "https://fota.example:8443/uploadFile"
    assert wire.upload_fields(3, "sensor", "app") == {
        "id": "3",
        "deviceType": "sensor",
        "fwName": "app",
    }
    assert wire.error_body("id is required", "id") == {"error": "id is required", "field": "id"}


def test_the_nonce_rule() -> None:
    nonce = wire.new_nonce()
    assert wire.check_nonce(nonce) == nonce and len(nonce) == 32
    assert wire.new_nonce() != nonce
    assert wire.check_nonce(None) is None
    assert wire.check_nonce("0" * 64) == "0" * 64
    for bad in ("0" * 31, "0" * 65, "A" * 32, "g" * 32, ""):
        with pytest.raises(InputError) as caught:
            wire.check_nonce(bad)
        assert caught.value.field == "nonce"
