"""The dashboard's defences: TLS only, sessions in the database behind a ``__Host-`` cookie,
a synchronizer CSRF token per session on every state-changing request, a strict
Content-Security-Policy and the other response headers every page carries.

The session cookie holds 256 random bits; the database keeps only their SHA-256 (a copy of
the table opens no session). The CSRF token is stored with the session and must come back on
every POST, as the ``X-CSRF-Token`` header (htmx sends it, from ``hx-headers`` on ``<body>``)
or as the ``csrf_token`` form field (plain forms). The sign-in form, which has no session yet,
is protected by a double-submit token: a ``__Host-`` cookie and a hidden field that must match.
"""

from __future__ import annotations

import datetime
import hashlib
import hmac
import secrets
from dataclasses import dataclass
from typing import Final
from urllib.parse import parse_qs

from starlette.requests import Request
from starlette.responses import Response

from secure_fota.errors import FotaError
from secure_fota.limits import UI_MAX_FORM_SIZE, UI_SESSION_LIFETIME
from secure_fota.server.auth import USER_ROLES, Principal, Role
from secure_fota.server.context import ServerContext
from secure_fota.server.errors import BadRequest, Forbidden, PayloadTooLarge, UnsupportedMediaType
from secure_fota.wire import UI_CSRF_FIELD, UI_CSRF_HEADER

__all__ = [
    "CSP",
    "LOGIN_COOKIE",
    "SECURITY_HEADERS",
    "SESSION_COOKIE",
    "SignInRequired",
    "UiUser",
    "check_csrf",
    "check_login_token",
    "end_session",
    "new_login_token",
    "read_form",
    "set_login_cookie",
    "set_session_cookie",
    "start_session",
    "user_of",
]

#: ``__Host-``: the browser keeps it only if it is Secure, has Path=/ and no Domain
SESSION_COOKIE: Final = "__Host-fota-session"
LOGIN_COOKIE: Final = "__Host-fota-login"
CSP: Final = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "object-src 'none'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'"
)
SECURITY_HEADERS: Final = {
    "content-security-policy": CSP,
    "x-content-type-options": "nosniff",
    "x-frame-options": "DENY",
    "referrer-policy": "same-origin",
    "cross-origin-opener-policy": "same-origin",
    "cross-origin-resource-policy": "same-origin",
    "permissions-policy": "camera=(), microphone=(), geolocation=()",
}
_FORM_TYPE: Final = "application/x-www-form-urlencoded"
_LOGIN_LIFETIME: Final = 3600
_MAX_FIELDS: Final = 32
_PEOPLE: Final = frozenset(role.value for role in USER_ROLES)


class SignInRequired(FotaError):
    """No valid dashboard session: the answer sends the browser to the sign-in page."""

    http_status = 401


@dataclass(frozen=True, slots=True)
class UiUser:
    """The person behind a request: their session's digest and CSRF token, name and role
    (as the users table has it now)."""

    name: str
    role: Role
    csrf_token: str
    session_digest: str

    @property
    def can_upload(self) -> bool:
        return self.role in (Role.UPLOADER, Role.ADMIN)

    @property
    def is_admin(self) -> bool:
        return self.role is Role.ADMIN

    def need_admin(self, action: str) -> None:
        if not self.is_admin:
            raise Forbidden(f"{action} needs an admin; {self.name!r} is a {self.role.value}")

    def need_uploader(self, action: str) -> None:
        if not self.can_upload:
            raise Forbidden(f"{action} needs an uploader or admin; {self.name!r} is a viewer")


def _digest(session_id: str) -> str:
    return hashlib.sha256(session_id.encode("ascii", "replace")).hexdigest()


async def user_of(request: Request, context: ServerContext) -> UiUser:
    """The signed-in user of this request, or :class:`SignInRequired`."""
    session_id = request.cookies.get(SESSION_COOKIE, "")
    if not session_id or len(session_id) > 128:
        raise SignInRequired("sign in to use the dashboard")
    digest = _digest(session_id)
    found = await context.repository.ui_session(digest)
    if found is None or found.role not in _PEOPLE:
        raise SignInRequired("your session has ended; sign in again")
    return UiUser(found.user_name, Role(found.role), found.csrf_token, digest)


async def start_session(context: ServerContext, principal: Principal, client: str) -> str:
    """A new session for ``principal`` signed in from ``client``; returns the cookie value
    (never stored)."""
    session_id = secrets.token_urlsafe(32)
    await context.repository.add_ui_session(
        _digest(session_id),
        principal.name,
        secrets.token_urlsafe(32),
        lifetime=datetime.timedelta(seconds=UI_SESSION_LIFETIME),
        client=client,
    )
    return session_id


async def end_session(context: ServerContext, user: UiUser) -> None:
    await context.repository.delete_ui_session(user.session_digest, user_name=user.name)


def _cookie(response: Response, name: str, value: str, max_age: int) -> None:
    response.set_cookie(
        name, value, max_age=max_age, path="/", secure=True, httponly=True, samesite="strict"
    )


def set_session_cookie(response: Response, session_id: str | None) -> None:
    """Set (or, with ``None``, clear) the session cookie; the sign-in token goes either way."""
    _cookie(response, SESSION_COOKIE, session_id or "", UI_SESSION_LIFETIME if session_id else 0)
    _cookie(response, LOGIN_COOKIE, "", 0)


def new_login_token() -> str:
    """A fresh double-submit token for the sign-in form (see :func:`set_login_cookie`)."""
    return secrets.token_urlsafe(32)


def set_login_cookie(response: Response, token: str) -> None:
    """The sign-in form's token, also as a cookie (a cross-site form cannot read or set it)."""
    _cookie(response, LOGIN_COOKIE, token, _LOGIN_LIFETIME)


def _same_origin(request: Request) -> None:
    """A browser names the page a POST came from; it must be this server's."""
    origin = request.headers.get("origin")
    if origin is None:  # not a browser, or an old one: the CSRF token decides alone
        return
    expected = f"{request.url.scheme}://{request.headers.get('host', '')}"
    if origin != expected:
        raise Forbidden("cross-origin requests are refused")


def check_login_token(request: Request, form: dict[str, str]) -> None:
    _same_origin(request)
    cookie = request.cookies.get(LOGIN_COOKIE, "")
    field = form.get(UI_CSRF_FIELD, "")
    if not cookie or not field or not hmac.compare_digest(cookie.encode(), field.encode()):
        raise Forbidden("the sign-in form has expired or was not sent from this site; reload it")


def check_csrf(request: Request, user: UiUser, form: dict[str, str] | None = None) -> None:
    """Refuse (403) a state-changing request without this session's CSRF token."""
    _same_origin(request)
    sent = request.headers.get(UI_CSRF_HEADER) or (form or {}).get(UI_CSRF_FIELD, "")
    if not sent or not hmac.compare_digest(sent.encode(), user.csrf_token.encode()):
        raise Forbidden("missing or wrong CSRF token; reload the page")


async def read_form(request: Request) -> dict[str, str]:
    """A small URL-encoded form (bounded; one value per field)."""
    content_type = request.headers.get("content-type", "").partition(";")[0].strip().lower()
    if content_type != _FORM_TYPE:
        raise UnsupportedMediaType("content-type", f"must be {_FORM_TYPE}")
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > UI_MAX_FORM_SIZE:
            raise PayloadTooLarge("form", f"is larger than {UI_MAX_FORM_SIZE} bytes")
    try:
        fields = parse_qs(body.decode("utf-8"), keep_blank_values=True, max_num_fields=_MAX_FIELDS)
    except (UnicodeDecodeError, ValueError):
        raise BadRequest("form", "is not a valid URL-encoded form") from None
    return {name: values[0] for name, values in fields.items()}
