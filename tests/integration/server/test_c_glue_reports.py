"""The ESP32 component's report path run on the host against the real server over TLS
(``secure_ota_glue_report``: src/secure_ota_report.c, the POST of secure_ota_http.c and
secure_ota_nvs.c, linked with host replacements of NVS and esp_http_client, esp32/host/glue).

Each run of the tool is one boot of the device; its NVS lives in a file between runs. What
this shows is the glue's own logic — the report key generated once and kept, the counter
committed before signing, a report kept in NVS when the server cannot be reached and sent
first at the next call, the outcome remembered by ``secure_ota_mark_running_valid()`` reported
by the next check, the device id, the token — and that the server accepts what it sends. It is
not ESP-IDF: NVS and the HTTP client are the host's (esp32/host/glue/idf_host.c).
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from secure_fota.crypto.report import Event, open_report
from secure_fota.devtools.harness import free_port
from secure_fota.keys.tls import CA_FILE
from secure_fota.wire import API_V1
from tests.integration.server.conftest import Harness, harness, unique_type

REPO = Path(__file__).resolve().parents[3]
BUILD = Path(os.environ.get("SECURE_OTA_HOST", REPO / "build/esp32-host/secure_ota_host")).parent
GLUE = BUILD / "secure_ota_glue_report"
MAC_ID = "esp32c3-7cdfa1e2f3a4"  # CONFIG_IDF_TARGET of the host build, the default host MAC

pytestmark = pytest.mark.skipif(
    not GLUE.exists(), reason=f"{GLUE} is not built (run `make host-test`)"
)


class GlueDevice:
    """One device: its NVS file, its configuration."""

    def __init__(self, directory: Path, server: str, ca: Path, device_type: str, **env: str):
        directory.mkdir(parents=True, exist_ok=True)
        self.nvs_file = directory / "nvs.txt"
        self.server = server
        self.ca = ca
        self.device_type = device_type
        self.env = {**os.environ, "SO_HOST_NVS": str(self.nvs_file), **env}

    def run(
        self, *command: str, server: str | None = None, **options: str
    ) -> subprocess.CompletedProcess[str]:
        args = [str(GLUE), "--server", server or self.server, "--ca", str(self.ca)]
        args += ["--device-type", self.device_type, "--timeout-ms", "3000"]
        for name, value in options.items():
            args += [f"--{name.replace('_', '-')}", value]
        return subprocess.run(
            [*args, *command], env=self.env, capture_output=True, text=True, timeout=60, check=False
        )

    def nvs(self) -> dict[str, tuple[int, bytes]]:
        """The device's NVS, namespace secure_ota: key -> (type, bytes)."""
        if not self.nvs_file.exists():
            return {}
        entries = {}
        for line in self.nvs_file.read_text().splitlines():
            namespace, key, kind, value = line.split()
            assert namespace == "secure_ota"
            entries[key] = (int(kind), b"" if value == "-" else bytes.fromhex(value))
        return entries

    def counter(self) -> int:
        return int.from_bytes(self.nvs()["report_ctr"][1], "little")

    def pending(self) -> str | None:
        entry = self.nvs().get("report_pend")
        return entry[1].rstrip(b"\0").decode() if entry else None


def unreachable() -> str:
    return f"https://localhost:{free_port()}"  # nothing listens there


@pytest.fixture(scope="module")
def server(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory, tls_dir: Path
) -> Iterator[Harness]:
    directory = tmp_path_factory.mktemp("c-glue-reports")
    with harness(request, directory, database="sqlite", tls=tls_dir) as h:
        yield h


def url_of(h: Harness) -> str:
    # mbedTLS 2.28 verifies DNS names only: the development certificate names localhost too
    return h.server.base_url.replace("127.0.0.1", "localhost")


def device_row(h: Harness, device_id: str) -> dict[str, Any]:
    response = h.http.get(f"{API_V1}/devices/{device_id}", headers=h.credentials.admin)
    assert response.status_code == 200, response.text
    return response.json()  # type: ignore[no-any-return]


def test_reports_keep_key_and_counter_and_wait_in_nvs(
    server: Harness, tls_dir: Path, tmp_path: Path
) -> None:
    device_id = unique_type("esp32")
    device = GlueDevice(
        tmp_path, url_of(server), tls_dir / CA_FILE, unique_type("type"),
        SO_HOST_APP_VERSION="2.1.0", SO_HOST_SECURE_VERSION="1",
    )  # fmt: skip

    done = device.run("report", "installed", "3", device_id=device_id)
    assert done.returncode == 0 and "reported installed" in done.stderr, done.stderr
    key = device.nvs()["report_key"][1]
    assert len(key) == 44 and key[:5] == b"SORK\x01"
    assert device.counter() == 1 and device.pending() is None
    row = device_row(server, device_id)
    assert (row["last_event"], row["last_release"], row["version"]) == ("installed", 3, "2.1.0")
    assert row["secure_version"] == 1 and row["key_source"] == "tofu"

    # the server is unreachable: the report is signed (counter 2) and kept in NVS
    done = device.run("report", "failed", "3", "-", "write failed", server=unreachable(),
                      device_id=device_id)  # fmt: skip
    assert done.returncode == 0 and "kept in NVS" in done.stderr, done.stderr
    assert device.counter() == 2
    waiting = device.pending()
    assert waiting is not None
    report, _ = open_report(waiting)
    assert (report.event, report.counter, report.detail) == (Event.FAILED, 2, "write failed")
    assert device_row(server, device_id)["last_event"] == "installed"

    # the next check sends it (a boot later: a new process, the same NVS and key)
    done = device.run("flush", device_id=device_id)
    assert done.returncode == 0 and device.pending() is None, done.stderr
    row = device_row(server, device_id)
    assert (row["last_event"], row["last_detail"]) == ("failed", "write failed")
    assert device.nvs()["report_key"][1] == key

    # mark-valid remembers "confirmed"; the next check reports it
    assert device.run("later", "confirmed", "3").returncode == 0
    assert "report_next" in device.nvs()
    done = device.run("flush", device_id=device_id)
    assert "reported confirmed" in done.stderr, done.stderr
    assert "report_next" not in device.nvs() and device.counter() == 3
    assert device_row(server, device_id)["last_event"] == "confirmed"

    # a pending report and a new one: the older goes first (none refused as a replay)
    device.run("report", "rejected", "4", "rollback", server=unreachable(), device_id=device_id)
    assert device.pending() is not None and device.counter() == 4
    done = device.run("report", "rolled_back", "4", device_id=device_id)
    assert "refused" not in done.stderr and "reported rolled_back" in done.stderr, done.stderr
    assert device.pending() is None and device.counter() == 5
    row = device_row(server, device_id)
    assert (row["last_event"], row["last_release"]) == ("rolled_back", 4)
    replay = server.http.post(
        API_V1 + "/reports",
        content=waiting.encode(),
        headers={"content-type": "application/jose"},
    )
    assert replay.status_code == 409


def test_device_id_from_the_mac_and_bad_ids(tls_dir: Path, tmp_path: Path) -> None:
    device = GlueDevice(tmp_path, unreachable(), tls_dir / CA_FILE, "sensor")
    assert device.run("device-id").stdout.strip() == MAC_ID
    other = GlueDevice(
        tmp_path / "b", unreachable(), tls_dir / CA_FILE, "sensor", SO_HOST_MAC="0A1B2C3D4E5F"
    )
    assert other.run("device-id").stdout.strip() == "esp32c3-0a1b2c3d4e5f"
    assert device.run("device-id", device_id="a..b").returncode == 1
    # a report with an invalid id is never made: no key, no counter spent
    done = device.run("report", "checking", device_id="has space")
    assert "not a valid name" in done.stderr
    assert device.nvs() == {}


def test_an_unreadable_key_is_never_replaced(
    server: Harness, tls_dir: Path, tmp_path: Path
) -> None:
    device_id = unique_type("esp32")
    device = GlueDevice(tmp_path, url_of(server), tls_dir / CA_FILE, "sensor")
    assert device.run("report", "checking", device_id=device_id).returncode == 0
    text = device.nvs_file.read_text()
    key_hex = device.nvs()["report_key"][1].hex()
    broken = key_hex[:20] + ("0" if key_hex[20] != "0" else "1") + key_hex[21:]
    device.nvs_file.write_text(text.replace(key_hex, broken))
    done = device.run("report", "confirmed", "1", device_id=device_id)
    assert "report key in NVS unreadable" in done.stderr, done.stderr
    assert device.nvs()["report_key"][1].hex() == broken  # left for an operator
    assert device.counter() == 1  # no value spent
    assert device_row(server, device_id)["last_event"] == "checking"


def test_device_token_mode(request: pytest.FixtureRequest, tls_dir: Path, tmp_path: Path) -> None:
    with harness(
        request,
        tmp_path / "server",
        database="sqlite",
        tls=tls_dir,
        device_auth="device-token",
        device_tokens={MAC_ID: ("type-a", True), "unit-8": ("type-a", True)},
    ) as api:
        tokens = api.credentials.device_tokens
        device = GlueDevice(tmp_path / "dev", url_of(api), tls_dir / CA_FILE, "type-a")
        # another device's token: 403, kept for later
        done = device.run("report", "checking", token=tokens["unit-8"])
        assert "HTTP 403" in done.stderr and device.pending() is not None, done.stderr
        # its own token (named like its MAC-derived id): the pending one, then the new one
        done = device.run("report", "confirmed", "2", token=tokens[MAC_ID])
        assert "reported confirmed" in done.stderr, done.stderr
        assert device.pending() is None
        row = device_row(api, MAC_ID)
        assert (row["last_event"], row["device_type"]) == ("confirmed", "type-a")
