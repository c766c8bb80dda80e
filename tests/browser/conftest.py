"""Browser fixtures: Debian's Chromium driven by Playwright (never ``playwright install``),
against a real ``fota server run`` over TLS (:class:`secure_fota.devtools.harness.LocalServer`).

Chromium trusts exactly the server's certificate key (``--ignore-certificate-errors-spki-list``
with its SPKI hash), so the pages are fetched over real, checked TLS. Screenshots go to
``build/dashboard-screenshots/`` (``FOTA_SCREENSHOTS=DIR`` elsewhere, e.g. ``docs/dashboard``).
"""

from __future__ import annotations

import base64
import hashlib
import os
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from secure_fota.devtools.harness import LocalServer
from secure_fota.keys.tls import CERT_FILE
from secure_fota.tls_client import client_context
from tests.conftest import REPO
from tests.integration.server.conftest import fake_release, seed_upload

CHROMIUM = Path(os.environ.get("FOTA_CHROMIUM", "/usr/bin/chromium"))
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
ADMIN, ADMIN_PASSWORD = "ada", "ada-password-123"
VIEWER, VIEWER_PASSWORD = "vic", "vic-password-123"
UPLOADER, UPLOADER_PASSWORD = "ulla", "ulla-password-123"
SCREENSHOTS = Path(os.environ.get("FOTA_SCREENSHOTS", REPO / "build" / "dashboard-screenshots"))


def _spki_hash(certificate: Path) -> str:
    cert = x509.load_pem_x509_certificate(certificate.read_bytes())
    spki = cert.public_key().public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)
    return base64.b64encode(hashlib.sha256(spki).digest()).decode()


@pytest.fixture(scope="module")
def chromium() -> Iterator[Any]:
    """One Chromium per module, stopped at its end (the sync API runs an asyncio loop on this
    thread while open: kept for the session it broke every later ``asyncio.run``)."""
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.skip("playwright is not installed (pip install -e '.[test]')")
    if not CHROMIUM.exists() and not shutil.which("chromium"):
        pytest.skip(f"no Chromium at {CHROMIUM} (apt-get install chromium)")
    with sync_playwright() as playwright:
        yield playwright


@dataclass
class Dashboard:
    server: LocalServer
    root: Path

    @property
    def url(self) -> str:
        return self.server.url

    def http(self, **options: Any) -> httpx.Client:
        return httpx.Client(
            base_url=self.url, verify=client_context(self.server.ca_file), timeout=30, **options
        )

    def upload(self, device_type: str, seq: int) -> None:
        manifest, binary = fake_release(seq)
        with self.http() as http:
            answer = seed_upload(
                http,
                {"authorization": _basic(UPLOADER, UPLOADER_PASSWORD)},
                seq=seq,
                device_type=device_type,
                manifest=manifest,
                binary=binary,
            )
        assert answer.status_code == 200, answer.text  # the seed's endpoint answers 200


def _basic(name: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{name}:{password}".encode()).decode()


@pytest.fixture(scope="module")
def dashboard(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Dashboard]:
    """``fota server run`` over TLS (its development certificate), with three users."""
    root = tmp_path_factory.mktemp("dashboard")
    data = root / "data"
    server = LocalServer(data, ca_file=data / "tls" / "ca.pem", env={"FOTA_CACHE_TTL": "0.05"})
    with server:
        server.add_user(ADMIN, ADMIN_PASSWORD, "admin")
        server.add_user(VIEWER, VIEWER_PASSWORD, "viewer")
        server.add_user(UPLOADER, UPLOADER_PASSWORD, "uploader")
        yield Dashboard(server, root)


@pytest.fixture(scope="module")
def browser(chromium: Any, dashboard: Dashboard) -> Iterator[Any]:
    spki = _spki_hash(dashboard.server.data_dir / "tls" / CERT_FILE)
    browser = chromium.chromium.launch(
        executable_path=str(CHROMIUM) if CHROMIUM.exists() else shutil.which("chromium"),
        args=[*CHROMIUM_ARGS, f"--ignore-certificate-errors-spki-list={spki}"],
    )
    try:
        yield browser
    finally:
        browser.close()


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    """A fresh browser context (no cookies), 1280x800, recording CSP violations and script
    errors."""
    context = browser.new_context(viewport={"width": 1280, "height": 800})
    page = context.new_page()
    page.csp_violations = []
    page.js_errors = []

    def console(message: Any) -> None:
        if "Content Security Policy" in message.text or "Content-Security-Policy" in message.text:
            page.csp_violations.append(message.text)
        elif message.type == "error":
            page.js_errors.append(message.text)

    def error(exc: Any) -> None:
        page.js_errors.append(str(exc))

    page.on("console", console)
    page.on("pageerror", error)
    try:
        yield page
    finally:
        context.close()


def screenshot(page: Any, name: str) -> Path:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path


def sign_in(page: Any, dashboard: Dashboard, name: str, password: str) -> None:
    page.goto(dashboard.url + "/ui/")
    page.fill("input[name=username]", name)
    page.fill("input[name=password]", password)
    page.click("button[type=submit]")
    page.wait_for_selector("#who")
