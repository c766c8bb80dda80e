"""The dashboard in a real browser (Chromium via Playwright) against ``fota server run`` over
TLS: sign in, see an uploaded release, yank and unyank it, delete it after confirming; the
session cookie's flags, the Content-Security-Policy (and no violation of it on any page),
CSRF refusals, a viewer who can look but not act, and bad query parameters."""

from __future__ import annotations

import re
from typing import Any

from secure_fota.server.ui.security import CSP, SESSION_COOKIE
from tests.browser.conftest import (
    ADMIN,
    ADMIN_PASSWORD,
    VIEWER,
    VIEWER_PASSWORD,
    Dashboard,
    screenshot,
    sign_in,
)


def _newest(dashboard: Dashboard, device_type: str) -> int | None:
    with dashboard.http() as http:
        answer = http.get(f"/update/newest/manifest?deviceType={device_type}")
    return int(answer.headers["x-fota-release"]) if answer.status_code == 200 else None


def test_sign_in_see_a_release_yank_unyank_and_delete_it(page: Any, dashboard: Dashboard):
    dashboard.upload("greenhouse-sensor", 1)
    dashboard.upload("greenhouse-sensor", 2)
    dashboard.upload("door-lock", 5)
    page.goto(dashboard.url + "/ui/releases")
    assert "/ui/login" in page.url  # not signed in: sent to the sign-in page
    screenshot(page, "login")
    sign_in(page, dashboard, ADMIN, ADMIN_PASSWORD)

    page.goto(dashboard.url + "/ui/device-types")
    row = page.locator("#device-types tr", has_text="greenhouse-sensor")
    assert "greenhouse-sensor/2" in row.inner_text()
    screenshot(page, "device-types")

    page.click("nav >> text=Releases")
    page.wait_for_selector("#releases")
    release = page.locator("#release-greenhouse-sensor-2")
    assert "live" in release.inner_text()
    screenshot(page, "releases")

    release.locator("button", has_text="Yank").click()
    page.wait_for_selector("#release-greenhouse-sensor-2 .badge.bad")
    assert "yanked" in page.locator("#release-greenhouse-sensor-2").inner_text()
    assert _newest(dashboard, "greenhouse-sensor") == 1  # devices are offered release 1 now

    page.locator("#release-greenhouse-sensor-2 button", has_text="Unyank").click()
    page.wait_for_selector("#release-greenhouse-sensor-2 .badge.ok")
    assert _newest(dashboard, "greenhouse-sensor") == 2

    page.locator("#release-door-lock-5 a", has_text="Delete").click()
    page.wait_for_selector("#confirm-delete")
    screenshot(page, "confirm-delete")
    page.click("#confirm-delete")
    page.wait_for_selector("text=No release matches.")
    assert _newest(dashboard, "door-lock") is None
    assert page.csp_violations == []
    assert page.js_errors == []


def test_session_cookie_flags_and_security_headers(page: Any, dashboard: Dashboard):
    answers = []

    def seen(answer: Any) -> None:  # Playwright wants a Python function, not a bound builtin
        answers.append(answer)

    page.on("response", seen)
    sign_in(page, dashboard, ADMIN, ADMIN_PASSWORD)
    cookies = {c["name"]: c for c in page.context.cookies()}
    session = cookies[SESSION_COOKIE]
    assert session["secure"] is True
    assert session["httpOnly"] is True
    assert session["sameSite"] == "Strict"
    assert session["path"] == "/"
    # the page cannot read it
    assert SESSION_COOKIE not in page.evaluate("document.cookie")
    pages = [a for a in answers if "text/html" in a.headers.get("content-type", "")]
    assert pages
    for answer in pages:
        headers = answer.headers
        assert headers["content-security-policy"] == CSP
        assert "frame-ancestors 'none'" in CSP and "script-src 'self'" in CSP
        assert headers["x-content-type-options"] == "nosniff"
        assert headers["cache-control"] == "no-store"
    # no inline script or handler: every <script> has a src
    for script in page.locator("script").all():
        assert script.get_attribute("src")
    html = page.content()
    assert not re.search(r"\son[a-z]+\s*=", html), "inline event handler"
    assert " style=" not in html
    assert page.csp_violations == []


def _session(page: Any) -> dict[str, str]:
    """The browser's session cookie, for requests made outside the page."""
    return {c["name"]: c["value"] for c in page.context.cookies() if c["name"] == SESSION_COOKIE}


def test_state_changing_requests_without_the_csrf_token_are_refused(
    page: Any, dashboard: Dashboard
):
    dashboard.upload("csrf-target", 1)
    sign_in(page, dashboard, ADMIN, ADMIN_PASSWORD)
    page.goto(dashboard.url + "/ui/releases?type=csrf-target")
    token = page.locator("#releases input[name=csrf_token]").first.get_attribute("value")
    assert token
    url = "/ui/releases/csrf-target/1/yank"
    # every attempt carries the browser's valid session cookie
    with dashboard.http(cookies=_session(page)) as http:
        missing = http.post(url, data={"next": "/ui/releases"})
        assert missing.status_code == 403
        assert "CSRF" in missing.text
        wrong = http.post(url, data={"csrf_token": "x" * 43})
        assert wrong.status_code == 403
        foreign = http.post(
            url, data={"csrf_token": token}, headers={"origin": "https://evil.example"}
        )
        assert foreign.status_code == 403
        assert _newest(dashboard, "csrf-target") == 1  # nothing was yanked
        # the same request with the token (as htmx sends it, in a header) goes through
        ok = http.post(url, headers={"x-csrf-token": token})
        assert ok.status_code == 303
    assert _newest(dashboard, "csrf-target") is None


def test_a_viewer_looks_but_cannot_act(page: Any, dashboard: Dashboard):
    dashboard.upload("viewer-sees", 3)
    sign_in(page, dashboard, VIEWER, VIEWER_PASSWORD)
    page.goto(dashboard.url + "/ui/releases?type=viewer-sees")
    row = page.locator("#release-viewer-sees-3")
    assert "live" in row.inner_text()
    assert row.locator("button").count() == 0
    headers = page.locator("body").get_attribute("hx-headers")
    assert headers is not None
    csrf = re.search(r'"X-CSRF-Token": "([^"]+)"', headers)
    assert csrf is not None
    with dashboard.http(cookies=_session(page)) as http:
        answer = http.post(
            "/ui/releases/viewer-sees/3/yank", headers={"x-csrf-token": csrf.group(1)}
        )
    assert answer.status_code == 403
    assert "needs an admin" in answer.text
    assert _newest(dashboard, "viewer-sees") == 3


def test_sign_in_failures_and_sign_out(page: Any, dashboard: Dashboard):
    page.goto(dashboard.url + "/ui/login")
    page.fill("input[name=username]", ADMIN)
    page.fill("input[name=password]", "not-the-password")
    page.click("button[type=submit]")
    page.wait_for_selector(".error")
    assert "wrong user name or password" in page.inner_text(".error")
    sign_in(page, dashboard, ADMIN, ADMIN_PASSWORD)
    old = {c["name"]: c["value"] for c in page.context.cookies()}[SESSION_COOKIE]
    page.click("text=Sign out")
    page.wait_for_selector("input[name=username]")
    # the old cookie opens nothing any more (the session row is gone)
    with dashboard.http(cookies={SESSION_COOKIE: old}) as http:
        answer = http.get("/ui/releases")
    assert answer.status_code == 303
    assert answer.headers["location"].startswith("/ui/login")


def test_bad_query_parameters_get_a_page_not_a_500(page: Any, dashboard: Dashboard):
    sign_in(page, dashboard, VIEWER, VIEWER_PASSWORD)
    for query, status in (
        ("page=abc", 422),
        ("page=0", 422),
        ("page=99999999999", 422),
        ("per_page=100000", 422),
        ("state=gone", 422),
        ("type=../etc", 422),
        ("type=" + "x" * 200, 422),
    ):
        answer = page.goto(f"{dashboard.url}/ui/releases?{query}")
        assert answer is not None
        assert answer.status == status, query
        assert page.locator(".error").count() == 1, query
    answer = page.goto(dashboard.url + "/ui/releases/no-such-type/7/delete")
    assert answer is not None and answer.status == 403  # a viewer may not even ask
    answer = page.goto(dashboard.url + "/ui/nothing-here")
    assert answer is not None and answer.status == 404
