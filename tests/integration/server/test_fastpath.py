"""The device poll's fast path (secure_fota.server.fastpath): it answers exactly what the
route answers, and hands every request it is unsure about to the route."""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from secure_fota.crypto.freshness import open_statement
from secure_fota.keys.directory import load_device_keys
from secure_fota.server import app as app_module
from secure_fota.wire import FRESHNESS_HEADER
from tests.integration.server.conftest import (
    Harness,
    fake_release,
    harness,
    seed_upload,
    spy_answers,
)

DEVICE_TYPE = "fast-sensor"
MANIFEST, BINARY = fake_release(3)


@pytest.fixture(scope="module")
def fast(
    request: pytest.FixtureRequest,
    tmp_path_factory: pytest.TempPathFactory,
    tls_dir: Path,
    key_dir: Path,
) -> Iterator[Harness]:
    directory = tmp_path_factory.mktemp("fastpath")
    with harness(
        request, directory, tls=tls_dir, freshness_key_file=key_dir / "freshness_key.pem"
    ) as h:
        response = seed_upload(
            h.http,
            h.credentials.uploader,
            seq=3,
            device_type=DEVICE_TYPE,
            manifest=MANIFEST,
            binary=BINARY,
        )
        assert response.status_code == 200, response.text
        yield h


@pytest.fixture
def answered(monkeypatch: pytest.MonkeyPatch) -> list[bool]:
    """What the fast path returned for each poll (True: it answered)."""
    return spy_answers(monkeypatch, app_module.PollAnswerer)


def _headers(response: Any) -> dict[str, str]:
    return {
        k: v for k, v in response.headers.items() if k not in ("date", FRESHNESS_HEADER.lower())
    }


def test_answers_like_the_route(fast: Harness, answered: list[bool]):
    manifest = MANIFEST
    etag = f'"{hashlib.sha256(manifest).hexdigest()}"'
    route = f"/api/v1/device-types/{DEVICE_TYPE}/newest/manifest"  # the same answer, via FastAPI
    for method, headers in (
        ("GET", {}),
        ("HEAD", {}),
        ("GET", {"if-none-match": etag}),
        ("GET", {"if-none-match": f"W/{etag}"}),
        ("GET", {"if-none-match": '"other"'}),
        ("HEAD", {"if-none-match": etag}),
    ):
        answered.clear()
        fast_answer = fast.http.request(
            method, "/update/newest/manifest", params={"deviceType": DEVICE_TYPE}, headers=headers
        )
        assert answered == [True], (method, headers)
        routed = fast.http.request(method, route, headers=headers)
        assert fast_answer.status_code == routed.status_code, (method, headers)
        assert _headers(fast_answer) == _headers(routed), (method, headers)
        assert fast_answer.content == routed.content
        assert fast_answer.headers["etag"] == etag
    assert fast.http.get("/update/newest/manifest", params={"deviceType": DEVICE_TYPE}).content == (
        manifest
    )


def test_freshness_statement(fast: Harness, answered: list[bool], key_dir: Path):
    keys = load_device_keys(key_dir)
    manifest = MANIFEST
    nonce = secrets.token_hex(16)
    for headers in ({}, {"if-none-match": f'"{hashlib.sha256(manifest).hexdigest()}"'}):
        response = fast.http.get(
            "/update/newest/manifest",
            params={"deviceType": DEVICE_TYPE, "nonce": nonce},
            headers=headers,
        )
        statement = open_statement(response.headers[FRESHNESS_HEADER], keys.freshness)
        assert statement.nonce == nonce
        assert statement.seq == 3
        assert statement.manifest_sha256 == hashlib.sha256(manifest).hexdigest()
    assert answered == [True, True]


@pytest.mark.parametrize(
    ("query", "status"),
    [
        ("", 400),
        (f"deviceType={DEVICE_TYPE}&nonce=XYZ", 422),
        ("deviceType=a/b", 422),
        ("deviceType=no-such-type", 404),
        (f"deviceType={DEVICE_TYPE}&deviceType=other", None),
    ],
)
def test_hands_anything_else_to_the_route(
    fast: Harness, answered: list[bool], query: str, status: int | None
):
    response = fast.http.get(f"/update/newest/manifest?{query}")
    assert answered == [False]
    if status is not None:
        assert response.status_code == status
        assert "error" in response.json()


def test_repeated_if_none_match_goes_to_the_route(fast: Harness, answered: list[bool]):
    response = fast.http.get(
        "/update/newest/manifest",
        params={"deviceType": DEVICE_TYPE},
        headers=[("if-none-match", '"a"'), ("if-none-match", '"b"')],
    )
    assert answered == [False]
    assert response.status_code == 200


def test_counted_under_the_route_template(fast: Harness):
    def polls() -> float:
        text = fast.http.get("/metrics").text
        for line in text.splitlines():
            if line.startswith("fota_http_requests_total{") and (
                'route="/update/newest/manifest"' in line and 'status="200"' in line
            ):
                return float(line.rsplit(" ", 1)[1])
        return 0.0

    before = polls()
    for _ in range(3):
        fast.http.get("/update/newest/manifest", params={"deviceType": DEVICE_TYPE})
    assert polls() == before + 3
