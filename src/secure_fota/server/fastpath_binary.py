"""Image downloads without the framework: ``GET|HEAD
/api/v1/device-types/{device_type}/releases/{release_id}/binary`` and the seed's ``GET|HEAD
/update/newest/binary?deviceType=T`` answered from the release and image caches before
FastAPI's middleware, routing and dependency layers.

The ESP-IDF component's default (resumable) path fetches a whole image as 16 KiB ``Range``
requests of the by-id URL, and the seed's devices download ``/update/newest/binary``, so a
fleet that updates sends one such request per 16 KiB (docs/PERFORMANCE.md §2).
:class:`BinaryAnswerer` answers the common case (open device access, a valid device type and
id, a release that exists and is not yanked, or the cached newest release of the device type,
its image in the worker's memory, a part short enough for one body message) with the functions
the route uses (:func:`~secure_fota.server.delivery.binary_answer`, :func:`~.memory_answer`), so
status, headers and body are the route's, ``Range``/``If-Range``/``If-None-Match`` included,
and counts it in the same metrics. The plain ``GET`` with one ``Range`` (what a downloading
device sends) takes a shorter road to the same answer: what ``binary_answer`` said about that
``Range`` of that release (a pure function of both) is remembered with its raw headers, so the
next device asking for the same chunk of the same release costs a dictionary lookup and a
slice. Anything else (device tokens, presigned downloads, an invalid name or id, a repeated
header or query parameter, an unknown or yanked release, a device type without releases, an
image not in memory or too long for one message, any exception) is left to the app, whose
route answers it, errors included.
"""

from __future__ import annotations

import time
from typing import Final

from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from secure_fota.formats.names import check_name, check_seq
from secure_fota.server.context import ServerContext
from secure_fota.server.db.records import ReleaseInfo
from secure_fota.server.delivery import MAX_MEMORY_BODY, binary_answer, memory_answer
from secure_fota.server.fastpath import query_pairs
from secure_fota.wire import API_V1, DEVICE_TYPE, DEVICE_TYPES, ID, NEWEST_BINARY, RELEASE_BINARY

__all__ = ["BINARY_TEMPLATE", "BinaryAnswerer", "binary_target", "is_binary"]

#: the route's template (what its requests are counted under)
BINARY_TEMPLATE: Final = API_V1 + RELEASE_BINARY
_PREFIX: Final = API_V1 + DEVICE_TYPES + "/"
_SUFFIX: Final = "/binary"
_METHODS: Final = frozenset({"GET", "HEAD"})
_RANGE: Final = b"range"
_IF_RANGE: Final = b"if-range"
_IF_NONE_MATCH: Final = b"if-none-match"
_MAX_TARGETS: Final = 10_000
#: remembered (release, Range) answers; a 16 KiB chunk's header is ~22 characters
_MAX_PARTS: Final = 8_192
_MAX_RANGE_KEY: Final = 64

#: what binary_answer says about a GET with one Range header and nothing else:
#: (the release, kept so that its id is not reused; status; raw headers; start; length)
_Part = tuple[ReleaseInfo, int, list[tuple[bytes, bytes]], int, int]


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


def is_binary(scope: Scope) -> bool:
    """An image download this fast path may answer: by release id, or the seed's newest."""
    if scope["type"] != "http" or scope["method"] not in _METHODS or scope.get("root_path"):
        return False
    path: str = scope["path"]
    return path == NEWEST_BINARY or (path.startswith(_PREFIX) and path.endswith(_SUFFIX))


def _raw(headers: dict[str, str]) -> list[tuple[bytes, bytes]]:
    """``headers`` as Starlette's ``Response`` sends them."""
    return [
        (name.lower().encode("latin-1"), value.encode("latin-1")) for name, value in headers.items()
    ]


def _conditions(
    headers: list[tuple[bytes, bytes]],
) -> tuple[str | None, str | None, str | None] | None:
    """``Range``, ``If-Range`` and ``If-None-Match`` (``None``: one of them is repeated)."""
    range_header = if_range = if_none_match = None
    for header, value in headers:
        if header == _RANGE:
            if range_header is not None:
                return None
            range_header = value.decode("latin-1")
        elif header == _IF_RANGE:
            if if_range is not None:
                return None
            if_range = value.decode("latin-1")
        elif header == _IF_NONE_MATCH:
            if if_none_match is not None:
                return None
            if_none_match = value.decode("latin-1")
    return range_header, if_range, if_none_match


class BinaryAnswerer:
    """One app's fast path for images, with its bounded memo tables (nothing is shared
    between apps)."""

    def __init__(self) -> None:
        #: path -> (device type, id) for paths whose parameters passed check_name and
        #: check_seq (pure, so the answer never changes)
        self._targets: dict[str, tuple[str, int]] = {}
        #: device types that passed check_name
        self._valid_names: set[str] = set()
        #: (id(release), Range header) -> binary_answer's part, for plain ranged GETs
        self._parts: dict[tuple[int, str], _Part] = {}

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

    def _newest_type(self, query: bytes) -> str | None:
        """The checked ``deviceType`` of the seed's query (``None``: missing or repeated)."""
        device_type = None
        for name, value in query_pairs(query):
            if name == DEVICE_TYPE:
                if device_type is not None:
                    return None  # repeated: the route decides what it means
                device_type = value
        if device_type is not None and device_type not in self._valid_names:
            check_name(DEVICE_TYPE, device_type)
            if len(self._valid_names) < _MAX_TARGETS:
                self._valid_names.add(device_type)
        return device_type

    def _part(
        self, context: ServerContext, release: ReleaseInfo, range_header: str
    ) -> _Part | Response | None:
        """binary_answer's answer to a GET of ``release`` with this one ``Range`` header and
        no other condition: a part (remembered), a 416 answer, or ``None`` when the part is too
        long for one body message."""
        key = (id(release), range_header)
        part = self._parts.get(key)
        if part is not None and part[0] is release:
            return part
        planned = binary_answer(
            context,
            release,
            method="GET",
            if_none_match=None,
            if_range=None,
            range_header=range_header,
        )
        if isinstance(planned, Response):
            return planned  # 416
        if planned.length > MAX_MEMORY_BODY:
            return None
        part = (release, planned.status, _raw(planned.headers), planned.start, planned.length)
        if len(range_header) <= _MAX_RANGE_KEY:
            if len(self._parts) >= _MAX_PARTS:
                self._parts.clear()
            self._parts[key] = part
        return part

    async def _release(
        self, context: ServerContext, scope: Scope
    ) -> tuple[str, ReleaseInfo] | None:
        """The route template and the release the request names (``None``: the route
        answers)."""
        path = scope["path"]
        if path == NEWEST_BINARY:
            device_type = self._newest_type(scope["query_string"])
            if device_type is None:
                return None
            entry = await context.cache.newest(device_type)
            return None if entry is None else (NEWEST_BINARY, entry.release)
        target = self._target(path)
        if target is None:
            return None
        release = await context.release_cache.release(*target)
        if release is None or release.yanked:
            return None
        return BINARY_TEMPLATE, release

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
        method = scope["method"]
        try:
            found = await self._release(context, scope)
            if found is None:
                return False
            template, release = found
            conditions = _conditions(scope["headers"])
            if conditions is None:
                return False  # a repeated header: the route decides what it means
            range_header, if_range, if_none_match = conditions
            fast: tuple[int, list[tuple[bytes, bytes]], bytes] | None = None
            answer: Response | None = None
            if (
                method == "GET"
                and range_header is not None
                and if_range is None
                and if_none_match is None
            ):
                part = self._part(context, release, range_header)
                if part is None:
                    return False  # too long for one message: the route streams it
                if isinstance(part, Response):
                    answer = part
                else:
                    data = context.blobs.peek(release.binary_sha256, release.binary_size)
                    if data is None:
                        return False  # the route loads it (and the next request finds it here)
                    _, status, raw_headers, start, length = part
                    fast = (status, raw_headers, data[start : start + length])
                    context.metrics.bytes_served_binary.inc(length)
            else:
                planned = binary_answer(
                    context,
                    release,
                    method=method,
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
                    answer = memory_answer(context, planned, data)
                    if answer is None:
                        return False  # too long for one message: the route streams it
        except Exception:  # noqa: BLE001 -- the route answers (and logs) every failure itself
            return False
        status = 500
        try:
            if fast is not None:
                status = fast[0]
                await send({"type": "http.response.start", "status": status, "headers": fast[1]})
                await send({"type": "http.response.body", "body": fast[2]})
            elif answer is not None:
                status = answer.status_code
                await answer(scope, receive, send)
        finally:
            context.metrics.observe(template, method, status, time.perf_counter() - started)
        return True
