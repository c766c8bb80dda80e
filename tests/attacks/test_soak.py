"""The short soak (200 devices, 30 s) in every `make test`; the long one is
`python -m tests.attacks.soak --long` (figures in docs/SECURITY.md)."""

from __future__ import annotations

import pytest

from tests.attacks.soak import run_soak


@pytest.mark.slow
def test_short_soak() -> None:
    result = run_soak(devices=200, duration=30, poll_interval=2.0)
    summary = result.summary()
    assert result.problems == [], summary
    assert summary["errors"] == 0 and summary["rejected"] == 0
    assert summary["devices_on_newest"] == 200, summary
    assert summary["polls"] > 1000, summary
