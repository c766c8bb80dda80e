"""The ASGI application: ``create_app(settings)``; everything stateful is built in the
lifespan of each worker process, nothing at import time."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from secure_fota import __version__
from secure_fota.server import http_errors
from secure_fota.server.context import build_context
from secure_fota.server.metrics import Metrics, MetricsMiddleware
from secure_fota.server.routes import ops, seed_compat, v1
from secure_fota.server.settings import ServerSettings, settings_from_environment

__all__ = ["app_from_environment", "create_app"]


def create_app(settings: ServerSettings) -> FastAPI:
    metrics = Metrics()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        context = await build_context(settings, metrics)
        app.state.context = context
        try:
            yield
        finally:
            app.state.context = None
            await context.close()

    app = FastAPI(
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
    routers = (seed_compat.router, v1.router, ops.router)
    for router in routers:
        app.include_router(router)
    http_errors.index_routes(app, routers)
    app.add_middleware(MetricsMiddleware, metrics=metrics)
    return app


def app_from_environment() -> FastAPI:
    """uvicorn factory for worker processes: the parent's settings come in the environment."""
    return create_app(settings_from_environment(dict(os.environ)))
