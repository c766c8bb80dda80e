"""Password guessing spread over workers and hosts meets one lock-out (issue 14, class 5).

Before, each worker process counted failed sign-ins in its own memory: with N workers (or N
hosts behind a load balancer) an attacker had N times the guesses before a lock-out, and a
restart forgot them. Now password failures are counted in the database. Two servers (two
``create_app`` on one database, as two workers or two hosts are) over TLS, on SQLite,
PostgreSQL and MariaDB.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from secure_fota.keys.tls import generate_tls
from secure_fota.server.auth import hash_password
from secure_fota.server.db.engine import create_engine
from secure_fota.server.db.repository import Repository
from secure_fota.wire import API_V1, DEVICE_TYPES
from tests.integration.server.conftest import DATABASES, Harness, RunningServer, harness

PASSWORD = "dave-password-123"
MAX_FAILURES = 6
URL = f"{API_V1}{DEVICE_TYPES}"


@pytest.fixture(scope="module", params=DATABASES)
def pair(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[Harness, httpx.Client]]:
    directory = tmp_path_factory.mktemp(f"lockout-{request.param}")
    tls_dir = directory / "tls"
    generate_tls(tls_dir, ["127.0.0.1", "localhost"])
    with harness(
        request,
        directory,
        database=request.param,
        tls=tls_dir,
        auth_max_failures=MAX_FAILURES,
        auth_lockout_seconds=600,
    ) as first:
        second = RunningServer(first.settings, tls_dir).start()
        try:
            with second.client() as other:
                yield first, other
        finally:
            second.stop()


def _add_user(h: Harness, name: str) -> None:
    async def run() -> None:
        engine = create_engine(h.settings.database_url)
        try:
            await Repository(engine).add_user(
                name, hash_password(PASSWORD), "uploader", replace=False
            )
        finally:
            await engine.dispose()

    asyncio.run(run())


def test_failures_on_two_servers_add_up_to_one_lockout(pair: tuple[Harness, httpx.Client]):
    first, second = pair
    _add_user(first, "dave")
    servers = (first.http, second)
    for i in range(MAX_FAILURES):
        # alternate: each server sees half of the guesses (before: neither reached its limit)
        answer = servers[i % 2].get(URL, auth=("dave", f"wrong-guess-{i:04d}"))
        assert answer.status_code == 401, answer.text
    for http in servers:
        locked = http.get(URL, auth=("dave", PASSWORD))
        assert locked.status_code == 429, locked.text
        assert 590 <= int(locked.headers["retry-after"]) <= 600


def test_concurrent_failures_are_all_counted_and_never_a_server_error(
    pair: tuple[Harness, httpx.Client],
):
    first, second = pair
    _add_user(first, "erin")
    servers = (first.http, second)

    def guess(i: int) -> int:
        return servers[i % 2].get(URL, auth=("erin", f"wrong-guess-{i:04d}")).status_code

    # httpx clients are thread-safe; 8 at a time on each server, same account
    with ThreadPoolExecutor(max_workers=8) as pool:
        statuses = list(pool.map(guess, range(2 * MAX_FAILURES)))
    assert set(statuses) <= {401, 429}, statuses
    assert statuses.count(401) >= MAX_FAILURES  # each counted: the lock came no earlier
    assert first.http.get(URL, auth=("erin", PASSWORD)).status_code == 429
    assert second.get(URL, auth=("erin", PASSWORD)).status_code == 429


def test_a_sign_in_clears_the_accounts_failures(pair: tuple[Harness, httpx.Client]):
    first, second = pair
    _add_user(first, "frank")
    for server in (first.http, second, first.http):
        for i in range(MAX_FAILURES - 1):
            assert server.get(URL, auth=("frank", f"guess-{i}")).status_code == 401
        assert server.get(URL, auth=("frank", PASSWORD)).status_code == 200
