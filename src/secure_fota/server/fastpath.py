"""The device poll without the framework: ``GET|HEAD /update/newest/manifest`` answered from
the newest-manifest cache before FastAPI's middleware, routing and dependency layers.

A fleet's load is almost only this request, and those layers cost about three quarters of
the server's time per poll (docs/PERFORMANCE.md). :class:`PollAnswerer` answers the common case
(a valid device type and nonce, open device access, a cached newest release) with the same
function the route uses (:func:`~secure_fota.server.delivery.manifest_answer`), so status,
headers and body are the route's, and counts it in the same metrics. Anything else (a missing,
invalid or repeated parameter, a repeated ``If-None-Match``, device tokens, no release, the
database unavailable, any exception) is left to the app, whose route answers it, errors
included, exactly as before.
"""

from __future__ import annotations

import time
from typing import Final
from urllib.parse import parse_qsl

from starlette.types import Scope, Send

from secure_fota.formats.names import check_name
from secure_fota.server.context import ServerContext
from secure_fota.server.delivery import manifest_answer
from secure_fota.wire import DEVICE_ID, DEVICE_TYPE, NEWEST_MANIFEST, NONCE, check_nonce

__all__ = ["PollAnswerer", "is_poll", "query_pairs"]

_METHODS: Final = frozenset({"GET", "HEAD"})
_IF_NONE_MATCH: Final = b"if-none-match"
_MAX_VALID_NAMES: Final = 10_000
_MAX_RAW_HEADERS: Final = 1_000


def query_pairs(raw: bytes) -> list[tuple[str, str]]:
    """``parse_qsl(raw.decode("latin-1"), keep_blank_values=True)``, as Starlette parses the
    query, with a shortcut for the usual query without escapes (same result, a third of the
    time)."""
    if b"%" in raw or b"+" in raw:
        return parse_qsl(raw.decode("latin-1"), keep_blank_values=True)
    pairs = []
    for part in raw.decode("latin-1").split("&"):
        if part:
            name, _, value = part.partition("=")
            pairs.append((name, value))
    return pairs


def _raw(headers: dict[str, str]) -> list[tuple[bytes, bytes]]:
    return [
        (name.lower().encode("latin-1"), value.encode("latin-1")) for name, value in headers.items()
    ]


def is_poll(scope: Scope) -> bool:
    return (
        scope["type"] == "http" and scope["path"] == NEWEST_MANIFEST and scope["method"] in _METHODS
    )


class PollAnswerer:
    """One app's fast path, with its two bounded memo tables (nothing is shared between apps)."""

    def __init__(self) -> None:
        #: device types that passed check_name (pure, so the answer never changes)
        self._valid_names: set[str] = set()
        #: (id(entry), status, method) -> (entry, raw headers) for answers without a nonce;
        #: the entry is kept so that its id is not reused while the key exists
        self._raw_headers: dict[tuple[int, int, str], tuple[object, list[tuple[bytes, bytes]]]] = {}

    async def __call__(self, context: object, scope: Scope, send: Send) -> bool:
        """Send the answer to a device poll and return True, or return False having sent
        nothing (the caller then hands the request to the app)."""
        started = time.perf_counter()
        if not isinstance(context, ServerContext) or context.auth.device_mode != "open":
            return False
        try:
            params: dict[str, str] = {}
            for name, value in query_pairs(scope["query_string"]):
                if name in params:
                    return False  # a repeated parameter: the route decides what it means
                params[name] = value
            device_type = params.get(DEVICE_TYPE)
            if device_type is None:
                return False
            if device_type not in self._valid_names:
                check_name(DEVICE_TYPE, device_type)
                if len(self._valid_names) < _MAX_VALID_NAMES:
                    self._valid_names.add(device_type)
            nonce = check_nonce(params.get(NONCE))
            device_id = params.get(DEVICE_ID)
            if device_id is not None:
                check_name(DEVICE_ID, device_id)
            if_none_match = None
            for header, header_value in scope["headers"]:
                if header == _IF_NONE_MATCH:
                    if if_none_match is not None:
                        return False
                    if_none_match = header_value.decode("latin-1")
            entry = await context.cache.newest(device_type)
            # a rollout offers its release to the devices of its current stage only
            entry = await context.rollouts.offer(device_type, device_id) or entry
            if entry is None:
                return False
            status, headers, body = manifest_answer(
                context,
                method=scope["method"],
                if_none_match=if_none_match,
                release=entry.release,
                manifest=entry.manifest,
                nonce=nonce,
                device_id=device_id,
            )
            if nonce is None:
                key = (id(entry), status, scope["method"])
                table = self._raw_headers
                cached = table.get(key)
                if cached is None or cached[0] is not entry:
                    if len(table) >= _MAX_RAW_HEADERS:
                        table.clear()
                    cached = table[key] = (entry, _raw(headers))
                raw_headers = cached[1]
            else:
                raw_headers = _raw(headers)
        except Exception:  # noqa: BLE001 -- the route answers (and logs) every failure itself
            return False
        await send({"type": "http.response.start", "status": status, "headers": raw_headers})
        await send({"type": "http.response.body", "body": body})
        context.metrics.observe(
            NEWEST_MANIFEST, scope["method"], status, time.perf_counter() - started
        )
        return True
