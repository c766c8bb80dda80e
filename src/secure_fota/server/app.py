"""The ASGI application: ``create_app(settings)``; everything stateful is built in the
lifespan of each worker process, nothing at import time."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI
from starlette.types import Receive, Scope, Send

from secure_fota import __version__
from secure_fota.errors import FotaError
from secure_fota.server import http_errors
from secure_fota.server.context import ServerContext, build_context
from secure_fota.server.fastpath import PollAnswerer, is_poll
from secure_fota.server.fastpath_binary import BinaryAnswerer, is_binary
from secure_fota.server.head_limits import HeadLimitsMiddleware
from secure_fota.server.metrics import Metrics, MetricsMiddleware
from secure_fota.server.releases import collect_garbage
from secure_fota.server.routes import fleet, ops, seed_compat, v1
from secure_fota.server.settings import ServerSettings, settings_from_environment
from secure_fota.server.ui import fleet_pages as ui_fleet_pages
from secure_fota.server.ui import pages as ui_pages

__all__ = ["app_from_environment", "create_app", "proxied_app_from_environment"]

_log = logging.getLogger("secure_fota.server")


async def _collect_garbage(context: ServerContext) -> None:
    """Blobs of deleted releases and of uploads that died between blob and row (in the
    background: start-up does not wait for a bucket listing)."""
    try:
        await collect_garbage(
            context.repository, context.store, grace=context.settings.gc_grace_seconds
        )
    except FotaError as exc:
        _log.warning("start-up garbage collection failed: %s", exc)


class FotaApp(FastAPI):
    """FastAPI, with device polls and image downloads by id answered before its middleware
    and routing when they can be answered from the caches (:mod:`secure_fota.server.fastpath`,
    :mod:`secure_fota.server.fastpath_binary`)."""

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        self._answer_poll = PollAnswerer()
        self._answer_binary = BinaryAnswerer()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if is_poll(scope):
            if await self._answer_poll(self.state.context, scope, send):
                return
        elif is_binary(scope) and await self._answer_binary(
            self.state.context, scope, receive, send
        ):
            return
        await super().__call__(scope, receive, send)


def create_app(settings: ServerSettings) -> FastAPI:
    metrics = Metrics()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        context = await build_context(settings, metrics)
        app.state.context = context
        cleanup = asyncio.create_task(_collect_garbage(context)) if settings.gc_on_start else None
        engine = asyncio.create_task(context.fleet.run(settings.rollout_tick))
        try:
            yield
        finally:
            engine.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await engine
            if cleanup is not None:
                cleanup.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await cleanup
            app.state.context = None
            metrics.worker_exiting()
            await context.close()

    app = FotaApp(
        title="secure-fota update server",
        version=__version__,
        description="Stores signed, encrypted ESP32 releases and serves the newest per device "
        "type. See docs/api.md.",
        lifespan=lifespan,
        docs_url=None,
        redoc_url=None,
        openapi_url="/openapi.json",
    )
    app.state.context = None
    http_errors.install(app)
    routers = (seed_compat.router, v1.router, fleet.router, ops.router)
    for router in routers:
        app.include_router(router)
    http_errors.index_routes(app, routers)
    # the dashboard, /ui/ (its own HTML error pages; the fallback's catch-all comes last)
    for ui_router in (ui_pages.router, ui_fleet_pages.router, ui_pages.fallback):
        app.include_router(ui_router)
    app.add_middleware(MetricsMiddleware, metrics=metrics)
    return app


def app_from_environment() -> FastAPI:
    """uvicorn factory for worker processes: the parent's settings come in the environment."""
    return create_app(settings_from_environment(dict(os.environ)))


def proxied_app_from_environment() -> Any:
    """granian factory: :func:`app_from_environment` behind the request-head bounds (granian
    bounds only what it buffers) and, when ``forwarded_allow_ips`` names proxies, behind
    uvicorn's ``X-Forwarded-For`` / ``X-Forwarded-Proto`` handling trusted from those
    addresses only, as uvicorn applies it itself (granian does not)."""
    settings = settings_from_environment(dict(os.environ))
    app: Any = create_app(settings)
    if settings.forwarded_allow_ips:
        from uvicorn.middleware.proxy_headers import ProxyHeadersMiddleware

        app = ProxyHeadersMiddleware(app, trusted_hosts=list(settings.forwarded_allow_ips))
    return HeadLimitsMiddleware(app)
