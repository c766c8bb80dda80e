"""Reports signed by the ESP32 C core (``secure_ota_host report``) sent to the real update
server over HTTPS (uvicorn with TLS, SQLite): the first one registers the device's key (trust
on first use), the inventory (``GET /api/v1/devices``) shows what it said, a replayed report is
refused, and with ``device_auth = device-token`` only the device's own token is accepted.

The tokens are made by the C code; the HTTP client is Python's (the component's
esp_http_client transport runs only on a device).
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from secure_fota.wire import API_V1, REPORT_CONTENT_TYPE, REPORTS
from tests.integration.server.conftest import Harness, harness, unique_type

REPO = Path(__file__).resolve().parents[3]
HOST_TOOL = Path(os.environ.get("SECURE_OTA_HOST", REPO / "build/esp32-host/secure_ota_host"))

pytestmark = pytest.mark.skipif(
    not HOST_TOOL.exists(), reason=f"{HOST_TOOL} is not built (run `make host-test`)"
)


class CDevice:
    """A device whose report key and reports are the C core's."""

    def __init__(self, directory: Path, device_id: str, device_type: str) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        self.key = directory / f"{device_id}.key"
        subprocess.run(
            [str(HOST_TOOL), "report-key", str(self.key)], check=True, capture_output=True
        )
        self.device_id = device_id
        self.device_type = device_type
        self.counter = 0

    def report(self, event: str, **members: Any) -> str:
        self.counter += 1
        values: dict[str, Any] = {
            "device-id": self.device_id,
            "device-type": self.device_type,
            "event": event,
            "seq": 1,
            "secure-version": 0,
            "version": "1.0.0",
            "release": 0,
            "counter": self.counter,
            **{name.replace("_", "-"): value for name, value in members.items()},
        }
        args = [str(HOST_TOOL), "report", "--key", str(self.key)]
        for name, value in values.items():
            args += [f"--{name}", str(value)]
        done = subprocess.run(args, capture_output=True, text=True, check=True)
        return done.stdout.strip()


def post(http: httpx.Client, token: str, bearer: str | None = None) -> httpx.Response:
    headers = {"content-type": REPORT_CONTENT_TYPE}
    if bearer:
        headers["authorization"] = f"Bearer {bearer}"
    return http.post(API_V1 + REPORTS, content=token.encode(), headers=headers)


@pytest.fixture(scope="module")
def server(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory, tls_dir: Path
) -> Iterator[Harness]:
    directory = tmp_path_factory.mktemp("c-reports")
    with harness(request, directory, database="sqlite", tls=tls_dir) as h:
        yield h


def test_c_signed_reports_reach_the_inventory(server: Harness, tmp_path: Path) -> None:
    assert server.server.base_url.startswith("https://")
    device = CDevice(tmp_path, unique_type("esp32"), unique_type("type"))
    first = device.report("installed", seq=3, release=4)
    response = post(server.http, first)
    assert response.status_code == 200, response.text
    assert response.json()["key_source"] == "tofu"

    rejected = device.report("rejected", reason="secure_version_too_low", seq=4, release=5)
    assert post(server.http, rejected).status_code == 200
    assert post(server.http, rejected).status_code == 409  # replayed: counter not above

    confirmed = device.report("confirmed", seq=4, release=4, secure_version=1, version="2.0")
    assert post(server.http, confirmed).status_code == 200
    listed = server.http.get(
        API_V1 + "/devices",
        params={"deviceType": device.device_type},
        headers=server.credentials.admin,
    )
    assert listed.status_code == 200, listed.text
    (shown,) = listed.json()["devices"]
    assert shown["device_id"] == device.device_id
    assert shown["device_type"] == device.device_type
    assert shown["running_seq"] == 4
    assert shown["version"] == "2.0"
    assert shown["last_release"] == 4
    assert shown["secure_version"] == 1
    assert shown["last_event"] == "confirmed"

    # another C key for the same device id is refused (the first key was registered)
    impostor = CDevice(tmp_path / "other", device.device_id, device.device_type)
    impostor.counter = 100
    assert post(server.http, impostor.report("confirmed", seq=9)).status_code == 403


def test_device_token_mode_needs_the_devices_own_token(
    request: pytest.FixtureRequest, tmp_path: Path, tls_dir: Path
) -> None:
    with harness(
        request,
        tmp_path,
        database="sqlite",
        tls=tls_dir,
        device_auth="device-token",
        device_tokens={"unit-7": ("type-a", True), "unit-8": ("type-a", True)},
    ) as api:
        tokens = api.credentials.device_tokens
        device = CDevice(tmp_path, "unit-7", "type-a")
        assert post(api.http, device.report("checking")).status_code == 401
        assert post(api.http, device.report("checking"), tokens["unit-8"]).status_code == 403
        response = post(api.http, device.report("checking"), tokens["unit-7"])
        assert response.status_code == 200, response.text
        assert response.json()["device_id"] == "unit-7"
