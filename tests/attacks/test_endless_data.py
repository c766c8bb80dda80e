"""Endless data and slow retrieval: a server, mirror or man in the middle that never stops
sending, or sends so slowly that it never finishes."""

from __future__ import annotations

import asyncio
import hashlib
import time
from collections.abc import AsyncIterator

import pytest

from secure_fota.errors import TransportError
from tests.attacks.conftest import Lab, refused
from tests.attacks.infra import Forward, Mitm, Request, Response

CAP = 64 * 1024 * 1024  # the MITM gives up after 64 MiB; the device must stop long before


async def _endless(prefix: AsyncIterator[bytes] | bytes) -> AsyncIterator[bytes]:
    sent = 0
    if isinstance(prefix, bytes):
        yield prefix
    else:
        async for chunk in prefix:
            yield chunk
    while sent < CAP:
        sent += 65536
        yield b"\xa5" * 65536


def test_binary_that_never_ends(lab: Lab) -> None:
    device = lab.device()
    files = lab.publish("1.1.0", 2)

    async def endless(request: Request, forward: Forward) -> Response:
        response = await forward(request)
        if "/binary" in request.target:
            return Response(200, response.without("content-length"), _endless(response.body))
        return response

    with Mitm(lab.server.url, lab.pki.ca_file, lab.pki.server_cert, lab.pki.server_key,
              endless) as mitm:  # fmt: skip
        refused(device, "image_size_mismatch", client=lab.client_via(mitm.url, device))
    # the device hung up within a few chunks of enc_size (TLS and socket buffers aside)
    assert mitm.sent_bytes < files.claims.enc_size + 8 * 1024 * 1024, mitm.sent_bytes
    longer = files.binary.read_bytes() + b"\xa5" * 4096
    lab.assert_c_rejects(device, files.manifest, longer, "image_size_mismatch")


def test_manifest_that_never_ends(lab: Lab) -> None:
    device = lab.device()
    lab.publish("1.1.0", 2)

    async def endless(request: Request, forward: Forward) -> Response:
        response = await forward(request)
        if "/manifest" in request.target:
            return Response(200, response.without("content-length"), _endless(response.body))
        return response

    with Mitm(lab.server.url, lab.pki.ca_file, lab.pki.server_cert, lab.pki.server_key,
              endless) as mitm:  # fmt: skip
        refused(device, "manifest_too_large", client=lab.client_via(mitm.url, device))
    assert mitm.sent_bytes < 8 * 1024 * 1024
    lab.assert_c_rejects(device, b"A" * 16385, None, "manifest_too_large")


def test_server_database_announces_a_larger_binary(lab: Lab) -> None:
    """An insider grows the binary's row size and appends to its blob: the server itself now
    streams more than the manifest's enc_size."""
    device = lab.device()
    files = lab.publish("1.1.0", 2)
    row = lab.row(2)
    grown = files.binary.read_bytes() + b"\x00" * 1024 * 1024
    digest = hashlib.sha256(grown).hexdigest()
    blob = lab.server.blob(digest)
    blob.parent.mkdir(parents=True, exist_ok=True)
    blob.write_bytes(grown)  # a new, consistent blob, so the server's own check passes
    with lab.server.database() as db:
        db.execute(
            "UPDATE releases SET binary_size = ?, binary_sha256 = ? WHERE pk = ?",
            (len(grown), digest, row["pk"]),
        )
    refused(device, "image_size_mismatch")
    lab.assert_c_rejects(device, files.manifest, blob, "image_size_mismatch")


def _trickle(body: AsyncIterator[bytes] | bytes, size: int, pause: float) -> AsyncIterator[bytes]:
    async def slow() -> AsyncIterator[bytes]:
        data = body if isinstance(body, bytes) else b"".join([c async for c in body])
        for start in range(0, len(data), size):
            yield data[start : start + size]
            await asyncio.sleep(pause)

    return slow()


@pytest.mark.parametrize(("target", "piece"), [("/binary", 512), ("/manifest", 48)])
def test_slow_retrieval(lab: Lab, target: str, piece: int) -> None:
    """TUF's slow-retrieval attack: every chunk arrives just in time for the read timeout,
    so the transfer never "times out" but never ends either. The device gives up once the
    transfer falls below its minimum average rate (here 16 KiB/s after 2 s of slack; the
    default is 1 KiB/s after the 10 s timeout), keeps what it has, and is unchanged."""
    device = lab.device()
    lab.publish("1.1.0", 2)

    async def trickle(request: Request, forward: Forward) -> Response:
        response = await forward(request)
        if target in request.target:
            return Response(response.status, response.headers, _trickle(response.body, piece, 0.1))
        return response

    before = device.status()
    with Mitm(lab.server.url, lab.pki.ca_file, lab.pki.server_cert, lab.pki.server_key,
              trickle) as mitm:  # fmt: skip
        client = lab.client_via(mitm.url, device, timeout=2, min_rate=16 * 1024)
        started = time.monotonic()
        with pytest.raises(TransportError, match="slow retrieval"):
            device.perform_update(client=client)
        assert time.monotonic() - started < 12
    assert device.status() == before
    assert device.perform_update().result == "updated"  # the honest server still works
