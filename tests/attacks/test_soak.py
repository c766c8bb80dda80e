"""The short soak (200 devices, 30 s) in every `make test`; the long one is
`python -m tests.attacks.soak --long` (figures in docs/SECURITY.md). Against each HTTP server."""

from __future__ import annotations

import pytest

from tests.attacks.soak import run_soak
from tests.http_servers import HTTP_SERVERS, server_env


@pytest.mark.slow
@pytest.mark.parametrize("http_server", HTTP_SERVERS)
def test_short_soak(http_server: str) -> None:
    result = run_soak(devices=200, duration=30, poll_interval=2.0, env=server_env(http_server))
    summary = result.summary()
    assert result.problems == [], summary
    assert summary["errors"] == 0 and summary["rejected"] == 0
    assert summary["devices_on_newest"] == 200, summary
    assert summary["polls"] > 1000, summary
