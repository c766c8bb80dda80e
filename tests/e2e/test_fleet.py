"""The fleet simulator against the real server: every device ends on the newest release."""

from __future__ import annotations

import asyncio

import pytest

from secure_fota.device.fleet import FleetConfig, simulate
from secure_fota.errors import InputError
from tests.e2e.conftest import DEVICE_TYPE, Fleet


def test_fleet_updates_and_polls_without_errors(fleet: Fleet) -> None:
    fleet.publish("1.1.0", 2)
    report = asyncio.run(
        simulate(
            FleetConfig(
                server=fleet.url,
                device_type=DEVICE_TYPE,
                devices=100,
                duration=6.0,
                poll_interval=0.5,
                ca_file=fleet.ca,
                keys_dir=fleet.keys,
                installed_seq=1,
            )
        )
    )
    summary = report.summary()
    assert summary["errors"] == 0, summary["error_samples"]
    assert summary["rejected"] == 0
    assert summary["updates"] == 100
    assert set(report.final_seqs.values()) == {2}
    assert summary["not_modified"] > 0  # later polls are conditional and answered 304
    assert summary["polls"] >= 300


def test_fleet_is_bounded_to_loopback() -> None:
    with pytest.raises(InputError, match="loopback"):
        FleetConfig(server="https://example.com", device_type="t").validated()
    with pytest.raises(InputError):
        FleetConfig(server="https://127.0.0.1:1", device_type="t", devices=0).validated()
