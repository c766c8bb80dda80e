"""Templates, static files and the answers every dashboard page shares: HTML with the security
headers, the error page, the redirect to the sign-in page, and query-parameter parsing that
turns bad values into 400/422 pages instead of tracebacks."""

from __future__ import annotations

import datetime
import functools
import hashlib
import logging
from collections.abc import Callable, Coroutine, Mapping
from dataclasses import dataclass
from importlib import resources
from typing import Any, Final, Generic, TypeVar
from urllib.parse import urlencode

import jinja2
from fastapi.routing import APIRoute
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response

from secure_fota.errors import FotaError, InputError
from secure_fota.formats.names import check_name
from secure_fota.limits import UI_MAX_PAGE, UI_MAX_PAGE_SIZE, UI_PAGE_SIZE
from secure_fota.server.db.records import Page
from secure_fota.server.ui.security import SECURITY_HEADERS, SignInRequired, UiUser
from secure_fota.wire import UI, UI_CSRF_FIELD, UI_CSRF_HEADER

__all__ = [
    "NAV",
    "PageView",
    "StaticFile",
    "UiRoute",
    "local_next",
    "page_numbers",
    "query_builder",
    "query_choice",
    "query_int",
    "query_name",
    "redirect",
    "render",
    "secure_static",
    "static_file",
]

_log = logging.getLogger("secure_fota.server")
_Item = TypeVar("_Item")

#: the navigation bar: (path below /ui, label)
NAV: Final = (
    ("/device-types", "Device types"),
    ("/releases", "Releases"),
    ("/devices", "Devices"),
    ("/rollouts", "Rollouts"),
    ("/audit", "Audit log"),
)
_STATIC_TYPES: Final = {".js": "text/javascript; charset=utf-8", ".css": "text/css; charset=utf-8"}
_MAX_NEXT: Final = 512
_TITLES: Final = {
    400: "Bad request",
    403: "Not allowed",
    404: "Not found",
    409: "Conflict",
    413: "Too large",
    415: "Unsupported form",
    422: "Invalid value",
    429: "Too many attempts",
    503: "Temporarily unavailable",
}


@dataclass(frozen=True, slots=True)
class StaticFile:
    body: bytes
    content_type: str
    version: str


@functools.cache
def _static_files() -> dict[str, StaticFile]:
    files: dict[str, StaticFile] = {}
    for entry in resources.files("secure_fota.server.ui").joinpath("static").iterdir():
        suffix = "." + entry.name.rpartition(".")[2]
        if entry.is_file() and suffix in _STATIC_TYPES:
            body = entry.read_bytes()
            version = hashlib.sha256(body).hexdigest()[:12]
            files[entry.name] = StaticFile(body, _STATIC_TYPES[suffix], version)
    return files


def static_file(name: str) -> StaticFile | None:
    return _static_files().get(name)


def _static_url(name: str) -> str:
    found = static_file(name)
    if found is None:
        raise KeyError(name)
    return f"{UI}/static/{name}?v={found.version}"


def _ago(value: datetime.datetime) -> str:
    """``2026-12-04 03:15 UTC (5 min ago)``."""
    seconds = int((datetime.datetime.now(datetime.UTC) - value).total_seconds())
    stamp = value.astimezone(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC")
    if seconds < 0:
        return stamp
    for size, unit in ((86400, "d"), (3600, "h"), (60, "min")):
        if seconds >= size:
            return f"{stamp} ({seconds // size} {unit} ago)"
    return f"{stamp} ({seconds} s ago)"


def _filesize(value: int) -> str:
    size = float(value)
    for unit in ("B", "KiB", "MiB"):
        if size < 1024 or unit == "MiB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{value} B"  # pragma: no cover


@functools.cache
def _environment() -> jinja2.Environment:
    environment = jinja2.Environment(
        loader=jinja2.PackageLoader("secure_fota.server.ui", "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    environment.filters["ago"] = _ago
    environment.filters["filesize"] = _filesize
    environment.globals.update(
        ui=UI,
        nav=NAV,
        static=_static_url,
        csrf_header=UI_CSRF_HEADER,
        csrf_field=UI_CSRF_FIELD,
    )
    return environment


def _secure(response: Response, *, cache: bool = False) -> Response:
    response.headers.update(SECURITY_HEADERS)
    if not cache:
        response.headers["cache-control"] = "no-store"
    return response


def render(
    template: str,
    *,
    user: UiUser | None,
    status: int = 200,
    headers: Mapping[str, str] | None = None,
    **values: Any,
) -> HTMLResponse:
    values.setdefault("section", "")
    values.setdefault("title", "")
    html = _environment().get_template(template).render(user=user, **values)
    return _secure(HTMLResponse(html, status, headers=dict(headers or {})))  # type: ignore[return-value]


def redirect(location: str) -> Response:
    return _secure(RedirectResponse(location, status_code=303))


def secure_static(body: bytes, content_type: str) -> Response:
    response = Response(body, media_type=content_type)
    response.headers["cache-control"] = "public, max-age=31536000, immutable"
    return _secure(response, cache=True)


def local_next(value: str | None, default: str) -> str:
    """A dashboard path to go back to (never another site: no scheme, no ``//``)."""
    if (
        not value
        or len(value) > _MAX_NEXT
        or not (value == UI or value.startswith(UI + "/"))
        or "//" in value
        or "\\" in value
        or any(ord(c) < 0x21 or ord(c) == 0x7F for c in value)
    ):
        return default
    return value


# query parameters ------------------------------------------------------------------------


def query_name(request: Request, field: str) -> str | None:
    """A device type (or other name) filter; empty means none."""
    value = request.query_params.get(field)
    return check_name(field, value) if value else None


def query_choice(request: Request, field: str, choices: tuple[str, ...]) -> str:
    """One of ``choices`` (the first when absent)."""
    value = request.query_params.get(field) or choices[0]
    if value not in choices:
        raise InputError(field, f"must be one of {', '.join(choices)}")
    return value


def query_int(request: Request, field: str, default: int | None, highest: int) -> int | None:
    """A whole number from 1 to ``highest`` (``default`` when absent or empty)."""
    if not request.query_params.get(field):
        return default
    return _query_int(request, field, 1, highest)


def _query_int(request: Request, field: str, default: int, highest: int) -> int:
    text = request.query_params.get(field)
    if not text:
        return default
    if len(text) > 9 or not (text.isascii() and text.isdigit()):
        raise InputError(field, f"must be a whole number from 1 to {highest}")
    value = int(text)
    if not 1 <= value <= highest:
        raise InputError(field, f"must be a whole number from 1 to {highest}")
    return value


def page_numbers(request: Request) -> tuple[int, int]:
    """``(page, per_page)`` from ``?page=N&per_page=M`` (422 when out of range)."""
    return (
        _query_int(request, "page", 1, UI_MAX_PAGE),
        _query_int(request, "per_page", UI_PAGE_SIZE, UI_MAX_PAGE_SIZE),
    )


@dataclass(frozen=True, slots=True)
class PageView(Generic[_Item]):
    """One page of a listing as the templates show it."""

    items: list[_Item]
    total: int
    number: int
    size: int

    @classmethod
    def of(cls, page: Page[_Item], number: int, size: int) -> PageView[_Item]:
        return cls(page.items, page.total, number, size)

    @property
    def first(self) -> int:
        return min(self.total, (self.number - 1) * self.size + 1)

    @property
    def last(self) -> int:
        return (self.number - 1) * self.size + len(self.items)

    @property
    def has_next(self) -> bool:
        return self.last < self.total


def query_builder(request: Request) -> Callable[..., str]:
    """``query(page=3)``: this request's query string with some parameters replaced."""

    def query(**changes: object) -> str:
        values = {k: v for k, v in request.query_params.items() if k not in changes and v}
        values.update({k: str(v) for k, v in changes.items() if v is not None})
        return urlencode(values)

    return query


# errors ----------------------------------------------------------------------------------------


def _error_page(exc: FotaError, user: UiUser | None) -> Response:
    status = exc.http_status
    message = exc.message if status != 500 else "internal server error (see the server's log)"
    if isinstance(exc, InputError):
        message = f"{exc.field} {exc.detail}"
    headers = {}
    if status == 503:
        headers["retry-after"] = "5"
    retry = getattr(exc, "retry_after", None)
    if isinstance(retry, int):
        headers["retry-after"] = str(retry)
    return render(
        "error.html",
        user=user,
        status=status,
        headers=headers,
        title=_TITLES.get(status, "Error"),
        message=message,
        back=f"{UI}/",
    )


class UiRoute(APIRoute):
    """A dashboard route: errors become HTML pages with the right status (never a traceback),
    a missing session becomes a redirect to the sign-in page, and every answer carries the
    security headers."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def answer(request: Request) -> Response:
            try:
                return await handler(request)
            except SignInRequired:
                target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
                if request.method != "GET":
                    target = f"{UI}/"
                return redirect(f"{UI}/login?{urlencode({'next': target})}")
            except FotaError as exc:
                return _error_page(exc, getattr(request.state, "ui_user", None))
            except Exception:  # noqa: BLE001 -- logged in full; the browser gets a 500 page
                _log.exception("dashboard error for %s %s", request.method, request.url.path)
                return _error_page(FotaError("internal"), getattr(request.state, "ui_user", None))

        return answer
