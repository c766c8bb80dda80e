"""Forwarded headers (issue 14, class 8): a client cannot pick its own address.

uvicorn (and our granian wrapper) believed `X-Forwarded-For` from 127.0.0.1 by default, so a
client on the server's host, or behind any loopback relay, dodged the per-address sign-in
lock-out by sending a new address with every guess. Now forwarded headers are believed only
from the proxies in `forwarded_allow_ips` (none by default), on both HTTP servers; against
`fota server run` over TLS.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

import pytest

from secure_fota.server.auth import CLIENT_FACTOR
from tests.attacks.conftest import Pki, server_for
from tests.attacks.infra import ServerProcess

SERVERS = ["uvicorn", "granian"]
MAX_FAILURES = 2
CLIENT_LIMIT = MAX_FAILURES * CLIENT_FACTOR
URL = "/api/v1/device-types"


@contextlib.contextmanager
def _server(root: Path, pki: Pki, http_server: str, **env: str) -> Iterator[ServerProcess]:
    if http_server == "granian":
        pytest.importorskip("granian", reason="granian is not installed")
    options = {
        "FOTA_HTTP_SERVER": http_server,
        "FOTA_AUTH_MAX_FAILURES": str(MAX_FAILURES),
        "FOTA_AUTH_LOCKOUT_SECONDS": "600",
        **env,
    }
    with server_for(root, pki, env=options) as server:
        yield server


def _guesses(server: ServerProcess, forwarded: list[str]) -> list[int]:
    """One wrong password per entry, each for a user name of its own (so that only the
    per-address counter can trip), sent with that entry as X-Forwarded-For."""
    statuses = []
    with server.http() as http:
        for i, address in enumerate(forwarded):
            response = http.get(
                URL,
                auth=(f"nobody-{i:03d}", "wrong-password-xyz"),
                headers={"x-forwarded-for": address, "x-forwarded-proto": "https"},
            )
            statuses.append(response.status_code)
    return statuses


@pytest.mark.parametrize("http_server", SERVERS)
def test_varying_x_forwarded_for_does_not_dodge_the_lockout(
    http_server: str, pki: Pki, tmp_path: Path
):
    with _server(tmp_path, pki, http_server) as server:
        addresses = [f"203.0.113.{i}" for i in range(CLIENT_LIMIT + 2)]
        statuses = _guesses(server, addresses)
        # before: every guess came "from" another address, and none was ever refused
        assert statuses[:CLIENT_LIMIT] == [401] * CLIENT_LIMIT, statuses
        assert statuses[CLIENT_LIMIT:] == [429, 429], statuses


@pytest.mark.parametrize("http_server", SERVERS)
def test_a_configured_proxy_is_believed(http_server: str, pki: Pki, tmp_path: Path):
    """With the proxy's address in forwarded_allow_ips, the client it names is the client:
    one forwarded address gets locked out, another behind the same proxy does not."""
    with _server(tmp_path, pki, http_server, FOTA_FORWARDED_ALLOW_IPS="127.0.0.1") as server:
        statuses = _guesses(server, ["198.51.100.7"] * (CLIENT_LIMIT + 1))
        assert statuses[-1] == 429, statuses
        assert _guesses(server, ["198.51.100.8"]) == [401]
