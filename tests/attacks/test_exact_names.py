"""Names compare exactly on every database (issue 14, class 5).

MariaDB's default collation folds case: ``ALICE`` signed in as ``alice`` with a lock-out counter
of its own (72 extra guesses while ``alice`` was locked), and device types ``Sensor`` and
``sensor`` were one type. Against a real server over TLS on SQLite, PostgreSQL and MariaDB.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest

from secure_fota.errors import ConflictError
from secure_fota.keys.tls import generate_tls
from secure_fota.server.auth import hash_password, token_digest
from secure_fota.server.db.engine import create_engine
from secure_fota.server.db.repository import Repository
from secure_fota.wire import API_V1, DEVICE_TYPES
from tests.integration.server.conftest import (
    DATABASES,
    Harness,
    fake_release,
    harness,
    seed_upload,
)

PASSWORD = "alice-password-123"
MAX_FAILURES = 5


@pytest.fixture(scope="module", params=DATABASES)
def names(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Harness]:
    directory = tmp_path_factory.mktemp(f"names-{request.param}")
    tls_dir = directory / "tls"
    generate_tls(tls_dir, ["127.0.0.1", "localhost"])
    with harness(
        request,
        directory,
        database=request.param,
        tls=tls_dir,
        auth_max_failures=MAX_FAILURES,
        auth_lockout_seconds=600,
    ) as h:
        _add_user(h, "alice")
        yield h


def _repository_call(h: Harness, method: str, *args: object, **kwargs: object) -> object:
    async def run() -> object:
        engine = create_engine(h.settings.database_url)
        try:
            return await getattr(Repository(engine), method)(*args, **kwargs)
        finally:
            await engine.dispose()

    return asyncio.run(run())


def _add_user(h: Harness, name: str) -> None:
    _repository_call(h, "add_user", name, hash_password(PASSWORD), "uploader", replace=False)


def test_a_name_in_other_case_is_not_the_account(names: Harness):
    ok = names.http.get(f"{API_V1}{DEVICE_TYPES}", auth=("alice", PASSWORD))
    assert ok.status_code == 200
    for other in ("ALICE", "Alice", "alicE"):
        response = names.http.get(f"{API_V1}{DEVICE_TYPES}", auth=(other, PASSWORD))
        assert response.status_code == 401, (other, response.status_code)


def test_lockout_cannot_be_dodged_by_changing_case(names: Harness):
    _add_user(names, "bob")
    url = f"{API_V1}{DEVICE_TYPES}"
    for i in range(MAX_FAILURES):
        # a different client address per attempt is not possible from here: the address
        # counter allows 4x as many, so the account's counter is what trips first
        names.http.get(url, auth=("bob", f"wrong-guess-{i:04d}"))
    assert names.http.get(url, auth=("bob", PASSWORD)).status_code == 429
    # the attacker switches to BOB, Bob, ...: none of them is bob's account, so none signs
    # in with bob's password (before: BOB signed in as bob, on a fresh counter)
    for other in ("BOB", "Bob", "bOB"):
        response = names.http.get(url, auth=(other, PASSWORD))
        assert response.status_code in (401, 429), (other, response.status_code)


def test_user_names_differing_in_case_are_two_accounts(names: Harness):
    _add_user(names, "carol")
    _add_user(names, "Carol")  # before: "user 'Carol' already exists" on MariaDB
    users = _repository_call(names, "users")
    assert {"carol", "Carol"} <= {user.name for user in users}  # type: ignore[attr-defined]
    with pytest.raises(ConflictError):
        _add_user(names, "carol")


def test_token_names_differing_in_case_are_two_tokens(names: Harness):
    for name, secret in (("ci-Token", "a" * 64), ("ci-token", "b" * 64)):
        _repository_call(
            names,
            "add_token",
            name,
            token_digest(secret),
            "uploader",
            device_type=None,
            per_device=False,
        )
    tokens = _repository_call(names, "tokens")
    assert {"ci-Token", "ci-token"} <= {token.name for token in tokens}  # type: ignore[attr-defined]


def test_device_types_differing_in_case_are_two_types(names: Harness):
    uploads = {}
    for device_type in ("Sensor", "sensor"):
        manifest, binary = fake_release(1)
        uploads[device_type] = manifest
        response = seed_upload(
            names.http,
            names.credentials.uploader,
            seq=1,
            device_type=device_type,
            manifest=manifest,
            binary=binary,
            fw_name=f"fw-{device_type}",
        )
        assert response.status_code == 200, (device_type, response.text)
    for device_type, manifest in uploads.items():
        newest = names.http.get("/update/newest/manifest", params={"deviceType": device_type})
        assert newest.status_code == 200
        assert newest.content == manifest, device_type
    listed = names.http.get(f"{API_V1}{DEVICE_TYPES}", headers=names.credentials.uploader)
    assert listed.status_code == 200
    assert {"Sensor", "sensor"} <= {entry["device_type"] for entry in listed.json()}
