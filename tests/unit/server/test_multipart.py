"""The streaming multipart reader (pure: fed from an in-memory body in odd-sized chunks)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import httpx
import pytest

from secure_fota.server.errors import BadRequest, PayloadTooLarge, UnsupportedMediaType
from secure_fota.server.multipart import MultipartReader, boundary_of


def _body(**files: bytes) -> tuple[bytes, str]:
    request = httpx.Request(
        "POST",
        "https://x/",
        data={"id": "7", "deviceType": "t"},
        files={name: (name, data, "application/octet-stream") for name, data in files.items()},
    )
    return request.read(), request.headers["content-type"]


async def _chunks(body: bytes, size: int) -> AsyncIterator[bytes]:
    for start in range(0, len(body), size):
        yield body[start : start + size]


async def _read_all(body: bytes, content_type: str, size: int, max_body: int = 10**7):
    reader = MultipartReader(_chunks(body, size), boundary_of(content_type), max_body=max_body)
    parts = {}
    while (part := await reader.next_part()) is not None:
        if part.filename is None:
            parts[part.name] = (await part.text(100)).encode()
        else:
            parts[part.name] = b"".join([c async for c in part.chunks()])
    return parts


@pytest.mark.parametrize("chunk", [1, 7, 64, 4096, 10**6])
def test_parts_survive_any_chunking(chunk: int) -> None:
    big = bytes(range(256)) * 300
    body, content_type = _body(manifestFile=b"m\r\n--x", firmwareFile=big)
    parts = asyncio.run(_read_all(body, content_type, chunk))
    assert parts == {
        "id": b"7",
        "deviceType": b"t",
        "manifestFile": b"m\r\n--x",
        "firmwareFile": big,
    }


def test_unread_parts_are_skipped() -> None:
    body, content_type = _body(a=b"1" * 1000, b=b"2")

    async def run() -> list[str]:
        reader = MultipartReader(_chunks(body, 100), boundary_of(content_type), max_body=10**6)
        names = []
        while (part := await reader.next_part()) is not None:
            names.append(part.name)
        return names

    assert asyncio.run(run()) == ["id", "deviceType", "a", "b"]


def test_limits_and_errors() -> None:
    body, content_type = _body(a=b"1" * 5000)
    with pytest.raises(PayloadTooLarge):
        asyncio.run(_read_all(body, content_type, 512, max_body=1000))
    with pytest.raises(BadRequest):
        asyncio.run(_read_all(body[: len(body) // 2], content_type, 512))
    with pytest.raises(UnsupportedMediaType):
        boundary_of("application/json")
    with pytest.raises(UnsupportedMediaType):
        boundary_of(None)
    with pytest.raises(BadRequest):
        boundary_of("multipart/form-data")
    long_field, ctype = _body(a=b"")
    with pytest.raises(PayloadTooLarge):

        async def tiny() -> None:
            reader = MultipartReader(_chunks(long_field, 50), boundary_of(ctype), max_body=10**6)
            part = await reader.next_part()
            assert part is not None
            await part.text(0)

        asyncio.run(tiny())
