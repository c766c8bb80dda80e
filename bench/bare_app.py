"""A bare ASGI app for bench/breakdown.py: the same bytes and about the same headers as the
update server's poll (``/m``: the manifest named by BARE_MANIFEST) and 16 KiB Range answer
(``/r``), with no routing, lookup, metrics or signing: what granian itself costs per answer."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

_MANIFEST = Path(os.environ["BARE_MANIFEST"]).read_bytes()
_CHUNK = bytes(16 * 1024)
_HEADERS = [
    (b"content-type", b"application/octet-stream"),
    (b"etag", b'"' + b"0" * 64 + b'"'),
    (b"cache-control", b"no-cache"),
    (b"x-fota-release", b"1"),
]
_ANSWERS = {
    "/m": (200, [*_HEADERS, (b"content-length", str(len(_MANIFEST)).encode())], _MANIFEST),
    "/r": (
        206,
        [
            *_HEADERS,
            (b"content-range", b"bytes 16384-32767/1048576"),
            (b"content-length", b"16384"),
        ],
        _CHUNK,
    ),
}


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return
    status, headers, body = _ANSWERS.get(scope["path"], _ANSWERS["/m"])
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
