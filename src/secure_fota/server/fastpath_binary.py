"""Image downloads by release id without the framework:
``GET|HEAD /api/v1/device-types/{device_type}/releases/{release_id}/binary`` answered from the
release and image caches before FastAPI's middleware, routing and dependency layers.

The ESP-IDF component's default (resumable) path fetches a whole image as 16 KiB ``Range``
requests of this URL, so a fleet that updates sends one such request per 16 KiB
(docs/PERFORMANCE.md §2). :class:`BinaryAnswerer` answers the common case (open device access,
a valid device type and id, a release that exists and is not yanked, its image in the worker's
memory, a part short enough for one body message) with the functions the route uses
(:func:`~secure_fota.server.delivery.binary_answer`, :func:`~.memory_answer`), so status,
headers and body are the route's, ``Range``/``If-Range``/``If-None-Match`` included, and counts
it in the same metrics. Anything else (device tokens, presigned downloads, an invalid name or
id, a repeated header, an unknown or yanked release, an image not in memory or too long for one
message, any exception) is left to the app, whose route answers it, errors included.
"""

from __future__ import annotations

import time
from typing import Final

from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from secure_fota.formats.names import check_name, check_seq
from secure_fota.server.context import ServerContext
from secure_fota.server.delivery import binary_answer, memory_answer
from secure_fota.wire import API_V1, DEVICE_TYPE, DEVICE_TYPES, ID, RELEASE_BINARY

__all__ = ["BINARY_TEMPLATE", "BinaryAnswerer", "binary_target", "is_binary_by_id"]

#: the route's template (what its requests are counted under)
BINARY_TEMPLATE: Final = API_V1 + RELEASE_BINARY
_PREFIX: Final = API_V1 + DEVICE_TYPES + "/"
_SUFFIX: Final = "/binary"
_METHODS: Final = frozenset({"GET", "HEAD"})
_RANGE: Final = b"range"
_IF_RANGE: Final = b"if-range"
_IF_NONE_MATCH: Final = b"if-none-match"
_MAX_TARGETS: Final = 10_000


def binary_target(path: str) -> tuple[str, str] | None:
    """The raw ``(device_type, release_id)`` path parameters when ``path`` is exactly the
    route's (each a non-empty segment without ``/``, as Starlette's ``[^/]+``), else ``None``."""
    if (
        len(path) <= len(_PREFIX) + len(_SUFFIX)
        or not path.startswith(_PREFIX)
        or not path.endswith(_SUFFIX)
    ):
        return None
    parts = path[len(_PREFIX) : -len(_SUFFIX)].split("/")
    if len(parts) != 3 or parts[1] != "releases" or not parts[0] or not parts[2]:
        return None
    return parts[0], parts[2]


def is_binary_by_id(scope: Scope) -> bool:
    return (
        scope["type"] == "http"
        and scope["method"] in _METHODS
        and scope["path"].startswith(_PREFIX)
        and scope["path"].endswith(_SUFFIX)
        and not scope.get("root_path")
    )


class BinaryAnswerer:
    """One app's fast path for images by id, with its bounded memo table (nothing is shared
    between apps)."""

    def __init__(self) -> None:
        #: path -> (device type, id) for paths whose parameters passed check_name and
        #: check_seq (pure, so the answer never changes)
        self._targets: dict[str, tuple[str, int]] = {}

    def _target(self, path: str) -> tuple[str, int] | None:
        target = self._targets.get(path)
        if target is None:
            raw = binary_target(path)
            if raw is None:
                return None
            target = (check_name(DEVICE_TYPE, raw[0]), check_seq(ID, raw[1]))
            if len(self._targets) >= _MAX_TARGETS:
                self._targets.clear()
            self._targets[path] = target
        return target

    async def __call__(self, context: object, scope: Scope, receive: Receive, send: Send) -> bool:
        """Send the answer and return True, or return False having sent nothing (the caller
        then hands the request to the app)."""
        started = time.perf_counter()
        if (
            not isinstance(context, ServerContext)
            or context.auth.device_mode != "open"
            or context.settings.s3_presign_downloads
        ):
            return False
        try:
            target = self._target(scope["path"])
            if target is None:
                return False
            range_header = if_range = if_none_match = None
            for header, value in scope["headers"]:
                if header == _RANGE:
                    if range_header is not None:
                        return False
                    range_header = value.decode("latin-1")
                elif header == _IF_RANGE:
                    if if_range is not None:
                        return False
                    if_range = value.decode("latin-1")
                elif header == _IF_NONE_MATCH:
                    if if_none_match is not None:
                        return False
                    if_none_match = value.decode("latin-1")
            release = await context.release_cache.release(*target)
            if release is None or release.yanked:
                return False
            planned = binary_answer(
                context,
                release,
                method=scope["method"],
                if_none_match=if_none_match,
                if_range=if_range,
                range_header=range_header,
            )
            if isinstance(planned, Response):
                answer = planned  # 304, 416 or HEAD: no bytes needed
            else:
                data = context.blobs.peek(release.binary_sha256, release.binary_size)
                if data is None:
                    return False  # the route loads it (and the next request finds it here)
                from_memory = memory_answer(context, planned, data)
                if from_memory is None:
                    return False  # too long for one message: the route streams it
                answer = from_memory
        except Exception:  # noqa: BLE001 -- the route answers (and logs) every failure itself
            return False
        try:
            await answer(scope, receive, send)
        finally:
            context.metrics.observe(
                BINARY_TEMPLATE, scope["method"], answer.status_code, time.perf_counter() - started
            )
        return True
