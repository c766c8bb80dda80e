"""Prometheus metrics (each app has its own registry; no globals).

With several workers (``fota server run --workers N``) the parent sets
``PROMETHEUS_MULTIPROC_DIR`` before the workers start, prometheus_client keeps every value in
shared files there, and ``/metrics`` on any worker answers the sum over all of them.
"""

from __future__ import annotations

import os
import time
from typing import Any, Final

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from starlette.types import ASGIApp, Message, Receive, Scope, Send

__all__ = ["MULTIPROC_ENV", "Metrics", "MetricsMiddleware"]

#: prometheus_client's switch to multi-process mode (read when it is first imported)
MULTIPROC_ENV: Final = "PROMETHEUS_MULTIPROC_DIR"


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        labels = {"pid": str(os.getpid())}
        self.requests = Counter(
            "fota_http_requests",
            "HTTP requests by route template, method and status",
            ["route", "method", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "fota_http_request_duration_seconds",
            "Time to the end of the response, by route template",
            ["route"],
            buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1, 5),
            registry=self.registry,
        )
        self.bytes_served = Counter(
            "fota_bytes_served",
            "Body bytes sent, by artifact",
            ["artifact"],
            registry=self.registry,
        )
        self.not_modified = Counter(
            "fota_not_modified",
            "304 answers to If-None-Match, by artifact",
            ["artifact"],
            registry=self.registry,
        )
        self.uploads = Counter(
            "fota_uploads", "Upload attempts by result", ["result"], registry=self.registry
        )
        self.errors = Counter(
            "fota_errors", "Error answers by kind", ["kind", "status"], registry=self.registry
        )
        self.cache_loads = Counter(
            "fota_newest_cache_loads",
            "Newest-manifest cache misses (database and storage reads)",
            registry=self.registry,
        )
        # label children used on every poll and Range request, looked up once
        self.not_modified_manifest = self.not_modified.labels("manifest")
        self.bytes_served_manifest = self.bytes_served.labels("manifest")
        self.not_modified_binary = self.not_modified.labels("binary")
        self.bytes_served_binary = self.bytes_served.labels("binary")
        # (route, method, status) -> (counter, histogram): label lookups cost more than the
        # poll they measure; routes are templates, so this stays small
        self._children: dict[tuple[str, str, int], tuple[Any, Any]] = {}
        info = Gauge(
            "fota_worker_info",
            "Live worker processes",
            ["pid"],
            registry=self.registry,
            multiprocess_mode="liveall",
        )
        info.labels(**labels).set(1)

    def observe(self, template: str, method: str, status: int, seconds: float) -> None:
        """Count one answered request and its duration under its route template."""
        key = (template, method, status)
        children = self._children.get(key)
        if children is None:
            children = (
                self.requests.labels(template, method, str(status)),
                self.latency.labels(template),
            )
            self._children[key] = children
        children[0].inc()
        children[1].observe(seconds)

    def render(self) -> bytes:
        directory = os.environ.get(MULTIPROC_ENV)
        if directory:
            from prometheus_client import multiprocess

            registry = CollectorRegistry()
            multiprocess.MultiProcessCollector(registry, path=directory)  # type: ignore[no-untyped-call]
            return generate_latest(registry)
        return generate_latest(self.registry)

    @staticmethod
    def worker_exiting() -> None:
        if os.environ.get(MULTIPROC_ENV):
            from prometheus_client import multiprocess

            multiprocess.mark_process_dead(os.getpid())  # type: ignore[no-untyped-call]


class MetricsMiddleware:
    """Counts every HTTP request by the route template it matched (never the raw path)."""

    def __init__(self, app: ASGIApp, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        status = 500
        started = time.perf_counter()

        async def send_wrapper(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        finally:
            route: Any = scope.get("route")
            template = getattr(route, "path", None) or "unmatched"
            self.metrics.observe(
                template, scope.get("method", "?"), status, time.perf_counter() - started
            )
