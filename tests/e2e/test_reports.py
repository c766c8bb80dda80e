"""The reference device reports each update to the real server, signed with its own key:
the inventory then shows what it runs, and only a confirmed boot counts as success."""

from __future__ import annotations

import ssl
from typing import Any

import httpx

from secure_fota.crypto.report import Event
from secure_fota.device.transport import ServerClient
from secure_fota.devtools.harness import free_port
from secure_fota.wire import API_V1
from tests.e2e.conftest import PASSWORD, USER, Fleet


def inventory(fleet: Fleet, device_id: str) -> dict[str, Any]:
    verify = ssl.create_default_context(cafile=str(fleet.ca))
    with httpx.Client(verify=verify, auth=(USER, PASSWORD)) as http:
        response = http.get(f"{fleet.url}{API_V1}/devices/{device_id}")
    assert response.status_code == 200, response.text
    return response.json()


def test_update_is_reported_as_confirmed(fleet: Fleet) -> None:
    fleet.publish("1.1.0", 2)
    device = fleet.device()
    assert device.config.device_id is not None
    assert device.perform_update().result == "updated"
    shown = inventory(fleet, device.config.device_id)
    assert shown["last_event"] == "confirmed"
    assert (shown["running_seq"], shown["version"]) == (2, "1.1.0")
    assert shown["key_source"] == "tofu"
    assert device.state.load_nvs().pending_reports == []
    # downloading, installed, confirmed: three counters used
    assert device.state.load_nvs().report_counter == 3


def test_rollback_is_reported_as_rolled_back(fleet: Fleet) -> None:
    fleet.publish("1.1.0", 2)
    device = fleet.device(self_test=lambda _boot: False)
    assert device.perform_update().result == "rolled-back"
    assert device.config.device_id is not None
    shown = inventory(fleet, device.config.device_id)
    assert shown["last_event"] == "rolled_back"
    assert shown["last_release"] == 2
    assert shown["running_seq"] == 1


def test_undelivered_reports_wait_in_nvs_and_go_out_in_order(fleet: Fleet) -> None:
    device = fleet.device()
    assert device.config.device_id is not None
    nowhere = ServerClient(f"https://127.0.0.1:{free_port()}", ca_file=fleet.ca, timeout=2)
    running = (1, 0, "1.0.0")
    assert not device.reporter.report(nowhere, running, Event.CHECKING)
    assert not device.reporter.report(nowhere, running, Event.FAILED, detail="no network")
    assert len(device.state.load_nvs().pending_reports) == 2
    with ServerClient(fleet.url, ca_file=fleet.ca) as client:
        assert device.reporter.flush(client)
    assert device.state.load_nvs().pending_reports == []
    shown = inventory(fleet, device.config.device_id)
    assert shown["last_event"] == "failed"
    assert shown["last_detail"] == "no network"
