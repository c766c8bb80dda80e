"""The dashboard's server side over real HTTPS on SQLite, PostgreSQL and MariaDB: sign-in
with the double-submit token, sessions in the database (ended by sign-out and by a new
password), pagination and filtering in the database, bad parameters as 4xx pages, the viewer
role on the API. (The browser tests are in tests/browser.)"""

from __future__ import annotations

import asyncio
import contextlib
import re
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from secure_fota.server.auth import hash_password
from secure_fota.server.ui.security import CSP, LOGIN_COOKIE, SESSION_COOKIE
from secure_fota.wire import API_V1
from tests.integration.server.conftest import (
    ADMIN_PASSWORD,
    DATABASES,
    Harness,
    fake_release,
    harness,
    seed_upload,
    unique_type,
)


@pytest.fixture(scope="module", params=DATABASES)
def ui(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory, tls_dir: Path
) -> Iterator[Harness]:
    directory = tmp_path_factory.mktemp(f"ui-{request.param}")
    with harness(request, directory, database=request.param, tls=tls_dir) as h:
        yield h


@contextlib.contextmanager
def _sign_in(
    ui: Harness, name: str = "admin", password: str = ADMIN_PASSWORD
) -> Iterator[httpx.Client]:
    with ui.server.client() as client:
        yield _signed_in(client, name, password)


def _signed_in(client: httpx.Client, name: str, password: str) -> httpx.Client:
    form = client.get("/ui/login")
    assert form.status_code == 200
    token = re.search(r'name="csrf_token" value="([^"]+)"', form.text)
    assert token is not None
    answer = client.post(
        "/ui/login", data={"csrf_token": token.group(1), "username": name, "password": password}
    )
    assert answer.status_code == 303, answer.text
    assert SESSION_COOKIE in client.cookies
    return client


DASH = "\N{EN DASH}"  # as the pager writes "1 to 3 of 7"


def _csrf(page: str) -> str:
    found = re.search(r'"X-CSRF-Token": "([^"]+)"', page)
    assert found is not None
    return found.group(1)


def test_sign_in_needs_the_forms_own_token(ui: Harness):
    with ui.server.client() as client:
        client.get("/ui/login")
        assert LOGIN_COOKIE in client.cookies
        answer = client.post(
            "/ui/login",
            data={"csrf_token": "forged", "username": "admin", "password": ADMIN_PASSWORD},
        )
        assert answer.status_code == 403
        assert SESSION_COOKIE not in client.cookies
    with ui.server.client() as client:  # no cookie at all: a cross-site form
        answer = client.post(
            "/ui/login", data={"csrf_token": "x", "username": "admin", "password": ADMIN_PASSWORD}
        )
        assert answer.status_code == 403


def test_releases_are_paginated_and_filtered_in_the_database(ui: Harness):
    device_type = unique_type("page")
    for seq in range(1, 8):
        manifest, binary = fake_release(seq)
        answer = seed_upload(
            ui.http,
            ui.credentials.uploader,
            seq=seq,
            device_type=device_type,
            manifest=manifest,
            binary=binary,
        )
        assert answer.status_code == 200
    with _sign_in(ui) as client:
        first = client.get(f"/ui/releases?type={device_type}&per_page=3")
        assert first.status_code == 200
        assert first.headers["content-security-policy"] == CSP
        assert first.text.count(f'id="release-{device_type}-') == 3
        assert f"1{DASH}3 of 7" in first.text
        last = client.get(f"/ui/releases?type={device_type}&per_page=3&page=3")
        assert f"7{DASH}7 of 7" in last.text
        token = _csrf(first.text)
        yank = client.post(f"/ui/releases/{device_type}/4/yank", headers={"x-csrf-token": token})
        assert yank.status_code == 303
        yanked = client.get(f"/ui/releases?type={device_type}&state=yanked")
        assert f"1{DASH}1 of 1" in yanked.text
        assert f"{device_type}/4" in yanked.text
        live = client.get(f"/ui/releases?type={device_type}&state=live")
        assert f"1{DASH}6 of 6" in live.text
        types = client.get("/ui/device-types")
        assert f"{device_type}/7" in types.text
        for query in (
            "page=x",
            "per_page=0",
            "state=1",
            "type=a%00b",
            "page=1e3",
            "page=%C2%B2",  # '²' is a digit to str.isdigit, not to int()
            "page=%D9%A1",  # an Arabic-Indic one
        ):
            answer = client.get(f"/ui/releases?{query}")
            assert answer.status_code == 422, query
            assert "text/html" in answer.headers["content-type"]


async def _users(ui: Harness, *changes: tuple[str, str, str]) -> None:
    """Add or replace users straight in the server's database (as `fota server user add`)."""
    from secure_fota.server.context import open_database
    from secure_fota.server.db.repository import Repository

    engine = await open_database(ui.settings, migrate=False)
    try:
        for name, password, role in changes:
            await Repository(engine).add_user(name, hash_password(password), role, replace=True)
    finally:
        await engine.dispose()


def test_sessions_end_with_sign_out_and_with_a_new_password(ui: Harness):
    with _sign_in(ui) as client:
        token = _csrf(client.get("/ui/device-types").text)
        assert client.post("/ui/logout", headers={"x-csrf-token": token}).status_code == 303
        assert client.get("/ui/device-types").status_code == 303  # to the sign-in page

    with _sign_in(ui) as client:
        assert client.get("/ui/device-types").status_code == 200
        asyncio.run(_users(ui, ("admin", ADMIN_PASSWORD, "admin")))
        answer = client.get("/ui/device-types")
        assert answer.status_code == 303
        assert answer.headers["location"].startswith("/ui/login")


def test_sign_in_and_sign_out_are_in_the_audit_log(ui: Harness):
    asyncio.run(_users(ui, ("ursula", "ursula-password-1", "uploader")))
    with _sign_in(ui, "ursula", "ursula-password-1") as client:
        token = _csrf(client.get("/ui/device-types").text)
        assert client.post("/ui/logout", headers={"x-csrf-token": token}).status_code == 303
    with ui.server.client() as client:  # a refused sign-in is no event (it is throttled)
        form = client.get("/ui/login")
        found = re.search(r'name="csrf_token" value="([^"]+)"', form.text)
        assert found is not None
        refused = client.post(
            "/ui/login",
            data={"csrf_token": found.group(1), "username": "ursula", "password": "wrong-one"},
        )
        assert refused.status_code == 401
    audit = ui.http.get(f"{API_V1}/audit", headers=ui.credentials.admin)
    assert audit.status_code == 200, audit.text
    events = [
        (e["actor"], e["action"], e["detail"])
        for e in audit.json()
        if e["target"] == "ursula" and e["action"].startswith("ui-")
    ]
    assert sorted(events) == [
        ("ursula", "ui-sign-in", "from 127.0.0.1"),
        ("ursula", "ui-sign-out", ""),
    ], events


def test_a_viewer_reads_the_api_and_the_pages_but_changes_nothing(ui: Harness):
    asyncio.run(_users(ui, ("viola", "viola-password-1", "viewer")))
    auth = ("viola", "viola-password-1")
    assert ui.http.get("/api/v1/device-types", auth=auth).status_code == 200
    manifest, binary = fake_release(1)
    device_type = unique_type("viewer")
    refused = seed_upload(
        ui.http,
        {"authorization": httpx.BasicAuth(*auth)._auth_header},
        seq=1,
        device_type=device_type,
        manifest=manifest,
        binary=binary,
    )
    assert refused.status_code == 403
    assert "viewer" in refused.json()["error"]
    with _sign_in(ui, *auth) as client:
        assert client.get("/ui/releases").status_code == 200
