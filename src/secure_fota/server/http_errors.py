"""The one place where the server's errors become HTTP answers: each error's ``http_status``
and ``{"error", "field"}`` (:func:`secure_fota.wire.error_body`).

Client mistakes are 4xx with a message naming the field; backend outages are 503 with
``Retry-After``; anything unexpected is a bare 500 whose details go to the log only.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import Any, Final

from fastapi import APIRouter, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import ClientDisconnect

from secure_fota.errors import FotaError
from secure_fota.server.errors import AuthenticationRequired, Throttled
from secure_fota.wire import describe_error, error_body

__all__ = ["error_response", "index_routes", "install"]

_log = logging.getLogger("secure_fota.server")
_REALM: Final = 'realm="secure-fota"'


def error_response(
    status: int, message: str, field: str | None = None, headers: dict[str, str] | None = None
) -> JSONResponse:
    all_headers = {"cache-control": "no-store"}
    all_headers.update(headers or {})
    return JSONResponse(error_body(message, field), status, headers=all_headers)


def _count(request: Request, kind: str, status: int) -> None:
    context = getattr(request.app.state, "context", None)
    if context is not None:
        context.metrics.errors.labels(kind, str(status)).inc()


async def _fota_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, FotaError)  # noqa: S101 -- registered for FotaError only
    status = exc.http_status
    _count(request, type(exc).__name__, status)
    headers: dict[str, str] = {}
    message, field = describe_error(exc)
    if isinstance(exc, AuthenticationRequired):
        challenges = [f"Bearer {_REALM}"]
        if exc.basic:
            challenges.insert(0, f'Basic {_REALM}, charset="UTF-8"')
        headers["www-authenticate"] = ", ".join(challenges)
    elif isinstance(exc, Throttled):
        headers["retry-after"] = str(exc.retry_after)
    elif status == 503:
        headers["retry-after"] = "5"
        _log.warning("503 for %s %s: %s", request.method, request.url.path, exc.message)
    elif status == 500:
        _log.error("server error for %s %s: %s", request.method, request.url.path, exc.message)
        message = "internal server error"
    return error_response(status, message, field, headers)


async def _validation_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)  # noqa: S101
    errors: list[Any] = list(exc.errors())
    first = errors[0] if errors else {}
    location = [str(part) for part in first.get("loc", ()) if part not in ("query", "path", "body")]
    field = location[-1] if location else None
    missing = first.get("type") == "missing"
    status = 400 if missing else 422
    _count(request, "RequestValidationError", status)
    detail = "is required" if missing else str(first.get("msg", "is invalid"))
    return error_response(status, f"{field or 'request'} {detail}", field)


def _allowed_methods(request: Request) -> str:
    """Every method some route of this path accepts (GET and HEAD, or GET and DELETE, are
    separate routes; Starlette's own Allow names only the first one it found)."""
    methods: set[str] = set()
    path = request.url.path
    for pattern, route_methods in getattr(request.app.state, "route_methods", ()):
        if pattern.match(path):
            methods.update(route_methods)
    return ", ".join(sorted(methods))


def index_routes(app: FastAPI, routers: Iterable[APIRouter]) -> None:
    """Remember which methods each path template accepts (for ``Allow`` on 405)."""
    app.state.route_methods = [
        (route.path_regex, frozenset(route.methods or ()))
        for router in routers
        for route in router.routes
        if isinstance(route, APIRoute)
    ]


async def _http_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)  # noqa: S101
    _count(request, "HTTPException", exc.status_code)
    headers = dict(exc.headers or {})
    if exc.status_code == 405:
        headers = {k: v for k, v in headers.items() if k.lower() != "allow"}
        headers["allow"] = _allowed_methods(request)
    return error_response(exc.status_code, str(exc.detail), None, headers)


async def _disconnect(request: Request, exc: Exception) -> JSONResponse:  # noqa: ARG001
    _count(request, "ClientDisconnect", 400)
    return error_response(400, "client disconnected before the request was complete")


async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
    _count(request, type(exc).__name__, 500)
    _log.error("unexpected error for %s %s", request.method, request.url.path, exc_info=exc)
    return error_response(500, "internal server error")


def install(app: FastAPI) -> None:
    app.add_exception_handler(FotaError, _fota_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(ClientDisconnect, _disconnect)
    app.add_exception_handler(Exception, _unexpected)
