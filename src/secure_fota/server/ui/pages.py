"""The dashboard's pages (``/ui/``): sign-in, device types, releases (yank, unyank, delete
with confirmation). Each page reads the database through the repository and the services,
with the same role rules as the API (yank, unyank and delete need an admin)."""

from __future__ import annotations

from typing import Annotated, Final

from fastapi import APIRouter, Path, Request
from starlette.responses import Response

from secure_fota.errors import InputError, NotFoundError
from secure_fota.formats.names import check_name, check_seq
from secure_fota.server.context import ServerContext
from secure_fota.server.errors import AuthenticationRequired, Throttled
from secure_fota.server.routes.common import client_of, context_of, require_tls
from secure_fota.server.ui.render import (
    PageView,
    UiRoute,
    local_next,
    page_numbers,
    query_builder,
    query_choice,
    query_name,
    redirect,
    render,
    secure_static,
    static_file,
)
from secure_fota.server.ui.security import UiUser as User
from secure_fota.server.ui.security import (
    check_csrf,
    check_login_token,
    end_session,
    new_login_token,
    read_form,
    set_login_cookie,
    set_session_cookie,
    start_session,
    user_of,
)
from secure_fota.wire import UI

__all__ = ["acting", "fallback", "router", "user_and_context"]

router = APIRouter(prefix=UI, route_class=UiRoute, include_in_schema=False)

_HOME: Final = f"{UI}/device-types"
_RELEASE_STATES: Final = ("all", "live", "yanked")
TypePath = Annotated[str, Path()]
SeqPath = Annotated[str, Path()]


async def user_and_context(request: Request) -> tuple[ServerContext, User]:
    """The context and the signed-in user (TLS required, like every credential)."""
    context = context_of(request)
    require_tls(request, context)
    user = await user_of(request, context)
    request.state.ui_user = user
    return context, user


async def acting(request: Request) -> tuple[ServerContext, User, dict[str, str]]:
    """A state-changing request: signed in, with this session's CSRF token; its form."""
    context, user = await user_and_context(request)
    form = await read_form(request) if request.headers.get("content-type") else {}
    check_csrf(request, user, form)
    return context, user, form


# sign-in ------------------------------------------------------------------------------------


@router.get("")
async def root_redirect() -> Response:
    return redirect(f"{UI}/")


@router.get("/")
async def home(request: Request) -> Response:
    await user_and_context(request)
    return redirect(_HOME)


def _login_page(
    request: Request, *, error: str | None = None, status: int = 200, username: str = ""
) -> Response:
    # the double-submit token: the same random value in the form and in a cookie
    token = new_login_token()
    response = render(
        "login.html",
        user=None,
        status=status,
        title="Sign in",
        error=error,
        next=local_next(request.query_params.get("next"), _HOME),
        username=username,
        login_token=token,
    )
    set_login_cookie(response, token)
    return response


@router.get("/login")
async def login_form(request: Request) -> Response:
    require_tls(request, context_of(request))
    return _login_page(request)


@router.post("/login")
async def login(request: Request) -> Response:
    context = context_of(request)
    require_tls(request, context)
    form = await read_form(request)
    check_login_token(request, form)
    name = form.get("username", "")
    try:
        principal = await context.auth.sign_in(name, form.get("password", ""), client_of(request))
    except (AuthenticationRequired, Throttled) as exc:
        return _login_page(request, error=exc.message, status=exc.http_status, username=name[:64])
    response = redirect(local_next(form.get("next"), _HOME))
    set_session_cookie(response, await start_session(context, principal, client_of(request)))
    return response


@router.post("/logout")
async def logout(request: Request) -> Response:
    context, user, _ = await acting(request)
    await end_session(context, user)
    response = redirect(f"{UI}/login")
    set_session_cookie(response, None)
    return response


# device types and releases ------------------------------------------------------------------


@router.get("/device-types")
async def device_types(request: Request) -> Response:
    context, user = await user_and_context(request)
    from secure_fota.server.ui.fleet_pages import distribution_chart

    rows = await context.repository.newest_per_type()
    return render(
        "device_types.html",
        user=user,
        section="/device-types",
        title="Device types",
        rows=rows,
        distribution=await distribution_chart(request, context),
    )


@router.get("/releases")
async def releases(request: Request) -> Response:
    context, user = await user_and_context(request)
    device_type = query_name(request, "type")
    state = query_choice(request, "state", _RELEASE_STATES)
    number, size = page_numbers(request)
    found = await context.repository.release_page(
        device_type=device_type,
        yanked=None if state == "all" else state == "yanked",
        offset=(number - 1) * size,
        limit=size,
    )
    types = [summary.device_type for summary in await context.repository.device_types()]
    return render(
        "releases.html",
        user=user,
        section="/releases",
        title="Releases",
        page=PageView.of(found, number, size),
        filters={"type": device_type or "", "state": state},
        types=types,
        query=query_builder(request),
        here=request.url.path + (f"?{request.url.query}" if request.url.query else ""),
    )


def _release_names(device_type: str, seq: str) -> tuple[str, int]:
    return check_name("device type", device_type), check_seq("release", seq)


async def _set_yanked(request: Request, device_type: str, seq: str, yanked: bool) -> Response:
    context, user, form = await acting(request)
    name, number = _release_names(device_type, seq)
    user.need_admin("yanking and unyanking releases")
    await context.releases.set_yanked(name, number, yanked, actor=user.name)
    return redirect(local_next(form.get("next"), f"{UI}/releases"))


@router.post("/releases/{device_type}/{seq}/yank")
async def yank(request: Request, device_type: TypePath, seq: SeqPath) -> Response:
    return await _set_yanked(request, device_type, seq, True)


@router.post("/releases/{device_type}/{seq}/unyank")
async def unyank(request: Request, device_type: TypePath, seq: SeqPath) -> Response:
    return await _set_yanked(request, device_type, seq, False)


@router.get("/releases/{device_type}/{seq}/delete")
async def confirm_delete(request: Request, device_type: TypePath, seq: SeqPath) -> Response:
    context, user = await user_and_context(request)
    name, number = _release_names(device_type, seq)
    user.need_admin("deleting releases")
    release = await context.releases.release(name, number)
    return render(
        "confirm_delete.html", user=user, section="/releases", title="Delete", release=release
    )


@router.post("/releases/{device_type}/{seq}/delete")
async def delete(request: Request, device_type: TypePath, seq: SeqPath) -> Response:
    context, user, form = await acting(request)
    name, number = _release_names(device_type, seq)
    user.need_admin("deleting releases")
    if form.get("confirm") != f"{name}/{number}":
        raise InputError("confirm", f"must repeat the release's name, {name}/{number}")
    await context.releases.delete(name, number, actor=user.name)
    return redirect(f"{UI}/releases?type={name}")


# static files and unknown paths -------------------------------------------------------------


@router.get("/static/{name}")
async def static(name: str) -> Response:
    found = static_file(name)
    if found is None:
        raise NotFoundError(f"no static file {name!r}")
    return secure_static(found.body, found.content_type)


#: included after every other dashboard router: unknown paths below /ui/ get an HTML 404
fallback = APIRouter(prefix=UI, route_class=UiRoute, include_in_schema=False)


@fallback.get("/{rest:path}")
async def unknown(request: Request, rest: str) -> Response:
    await user_and_context(request)
    raise NotFoundError(f"the dashboard has no page {UI}/{rest[:80]}")
