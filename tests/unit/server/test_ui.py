"""The dashboard's small pure parts: where a sign-in may send the browser back to (never
another site), query parameters (422 for anything but plain ASCII numbers in range), the
pager's arithmetic, and the security headers every page carries."""

from __future__ import annotations

import pytest
from starlette.requests import Request

from secure_fota.errors import InputError
from secure_fota.limits import UI_MAX_PAGE, UI_MAX_PAGE_SIZE, UI_PAGE_SIZE
from secure_fota.server.db.records import Page
from secure_fota.server.ui.render import PageView, local_next, page_numbers, query_choice
from secure_fota.server.ui.security import CSP, SECURITY_HEADERS

HOME = "/ui/device-types"


@pytest.mark.parametrize(
    "target",
    [
        "https://evil.example/ui/",
        "//evil.example/ui/",
        "/ui//evil.example",
        "/ui/\\evil",
        "/uix/releases",
        "/api/v1/device-types",
        "/ui/releases\r\nSet-Cookie: x=1",
        "/ui/" + "a" * 600,
        "",
        None,
    ],
)
def test_next_never_leaves_the_dashboard(target: str | None):
    assert local_next(target, HOME) == HOME


@pytest.mark.parametrize(
    "target", ["/ui", "/ui/releases?type=sensor&state=yanked", "/ui/rollouts/3"]
)
def test_next_keeps_dashboard_paths(target: str):
    assert local_next(target, HOME) == target


def _request(query: str) -> Request:
    return Request({"type": "http", "query_string": query.encode(), "headers": []})


@pytest.mark.parametrize(
    "query",
    [
        "page=0",
        "page=-1",
        "page=1.5",
        "page=%C2%B2",
        "page=%EF%BC%91",  # a fullwidth 1
        f"page={UI_MAX_PAGE + 1}",
        "page=99999999999999999999",
        "per_page=0",
        f"per_page={UI_MAX_PAGE_SIZE + 1}",
    ],
)
def test_bad_page_numbers_are_input_errors(query: str):
    with pytest.raises(InputError):
        page_numbers(_request(query))


def test_page_numbers_default_and_in_range():
    assert page_numbers(_request("")) == (1, UI_PAGE_SIZE)
    assert page_numbers(_request(f"page={UI_MAX_PAGE}&per_page=7")) == (UI_MAX_PAGE, 7)


def test_choices_are_checked():
    assert query_choice(_request(""), "state", ("all", "live")) == "all"
    with pytest.raises(InputError, match="state: must be one of all, live"):
        query_choice(_request("state=gone"), "state", ("all", "live"))


def test_the_pager_counts():
    view = PageView.of(Page(list(range(50)), 120), 2, 50)
    assert (view.first, view.last, view.has_next) == (51, 100, True)
    last = PageView.of(Page(list(range(20)), 120), 3, 50)
    assert (last.first, last.last, last.has_next) == (101, 120, False)
    empty = PageView.of(Page([], 0), 1, 50)
    assert (empty.first, empty.last, empty.has_next) == (0, 0, False)


def test_the_csp_forbids_inline_scripts_framing_and_foreign_origins():
    directives = dict(part.strip().split(" ", 1) for part in CSP.split(";"))
    assert directives["default-src"] == "'self'"
    assert directives["script-src"] == "'self'"  # no 'unsafe-inline', no 'unsafe-eval'
    assert directives["style-src"] == "'self'"
    assert directives["object-src"] == "'none'"
    assert directives["frame-ancestors"] == "'none'"
    assert directives["base-uri"] == "'none'"
    assert directives["form-action"] == "'self'"
    assert SECURITY_HEADERS["content-security-policy"] == CSP
    assert SECURITY_HEADERS["x-frame-options"] == "DENY"
