from __future__ import annotations

import pytest

from secure_fota.errors import ReleaseRejected
from secure_fota.formats.manifest import ManifestClaims
from secure_fota.policy import DeviceFacts, decide
from secure_fota.reasons import Reason
from tests.unit.test_manifest import BASE

CLAIMS = ManifestClaims.from_dict({**BASE, "exp": 1_700_000_100})
FACTS = DeviceFacts(device_type="sensor-v2", chip_id=0, installed_seq=6, secure_version=1)


def reason(claims: ManifestClaims = CLAIMS, facts: DeviceFacts = FACTS, now: int | None = None):
    try:
        decide(claims, facts, now=now)
    except ReleaseRejected as exc:
        return exc.reason
    return None


def test_acceptable_update() -> None:
    assert reason() is None
    assert reason(now=1_700_000_099) is None


@pytest.mark.parametrize(
    ("facts", "expected"),
    [
        (DeviceFacts("other", 0, 6, 1), Reason.WRONG_DEVICE_TYPE),
        (DeviceFacts("sensor-v2", 5, 6, 1), Reason.WRONG_CHIP),
        (DeviceFacts("sensor-v2", 0, 7, 1), Reason.ALREADY_INSTALLED),
        (DeviceFacts("sensor-v2", 0, 8, 1), Reason.ROLLBACK),
        (DeviceFacts("sensor-v2", 0, 6, 2), Reason.SECURE_VERSION_TOO_LOW),
        (DeviceFacts("sensor-v2", 0, 6, 1, slot_size=999), Reason.IMAGE_TOO_LARGE),
    ],
)
def test_each_rule(facts: DeviceFacts, expected: Reason) -> None:
    assert reason(facts=facts) is expected


def test_expiry_needs_a_clock() -> None:
    assert reason(now=1_700_000_100) is Reason.EXPIRED
    assert reason(now=None) is None


def test_rules_apply_in_documented_order() -> None:
    everything_wrong = DeviceFacts("other", 5, 9, 9, slot_size=1)
    assert reason(facts=everything_wrong, now=2_000_000_000) is Reason.WRONG_DEVICE_TYPE
    assert reason(facts=DeviceFacts("sensor-v2", 5, 9, 9, 1)) is Reason.WRONG_CHIP
    assert reason(facts=DeviceFacts("sensor-v2", 0, 9, 9, 1)) is Reason.ROLLBACK
    assert reason(facts=DeviceFacts("sensor-v2", 0, 1, 9, 1)) is Reason.SECURE_VERSION_TOO_LOW
    assert reason(facts=DeviceFacts("sensor-v2", 0, 1, 0, 1), now=2_000_000_000) is Reason.EXPIRED


def test_installed_release_past_its_expiry_is_a_freeze() -> None:
    installed = DeviceFacts("sensor-v2", 0, 7, 1)
    assert reason(facts=installed, now=1_700_000_099) is Reason.ALREADY_INSTALLED
    assert reason(facts=installed, now=1_700_000_100) is Reason.EXPIRED
    assert reason(facts=installed, now=None) is Reason.ALREADY_INSTALLED  # no clock, no bound
