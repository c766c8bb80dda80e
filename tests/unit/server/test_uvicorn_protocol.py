"""The uvicorn protocol's write coalescing (server/protocol.py), on a real event loop."""

from __future__ import annotations

import asyncio
import ssl
from pathlib import Path

import pytest

from secure_fota.keys.tls import generate_tls
from secure_fota.server.uvicorn_protocol import COALESCE_LIMIT, CoalescingTransport


class Recorder(asyncio.Transport):
    """The wrapped transport: records what reaches it."""

    def __init__(self) -> None:
        super().__init__()
        self.writes: list[bytes] = []
        self.closed = False
        self.aborted = False

    def write(self, data: bytes | bytearray | memoryview) -> None:
        assert not self.closed, "write after close"
        self.writes.append(bytes(data))

    def close(self) -> None:
        self.closed = True

    def abort(self) -> None:
        self.aborted = True

    def is_closing(self) -> bool:
        return self.closed or self.aborted

    def get_extra_info(self, name: str, default: object = None) -> object:
        return {"peername": ("127.0.0.1", 1)}.get(name, default)


async def one_turn() -> None:
    await asyncio.sleep(0)


def test_small_writes_of_one_turn_reach_the_transport_as_one() -> None:
    async def run() -> None:
        inner = Recorder()
        outer = CoalescingTransport(inner, asyncio.get_running_loop())
        outer.write(b"HTTP/1.1 200 OK\r\ncontent-length: 4\r\n\r\n")
        outer.write(memoryview(b"body"))
        outer.write(b"")
        assert inner.writes == []  # nothing before the end of this turn
        await one_turn()
        assert inner.writes == [b"HTTP/1.1 200 OK\r\ncontent-length: 4\r\n\r\nbody"]
        outer.write(b"next")
        await one_turn()
        assert inner.writes[1:] == [b"next"]
        await one_turn()
        assert len(inner.writes) == 2  # no empty or repeated write

    asyncio.run(run())


def test_a_large_write_goes_on_at_once_with_what_was_pending() -> None:
    async def run() -> None:
        inner = Recorder()
        outer = CoalescingTransport(inner, asyncio.get_running_loop())
        outer.write(b"head")
        big = b"x" * COALESCE_LIMIT
        outer.write(big)
        assert inner.writes == [b"head" + big]  # flow control sees it now
        outer.write(big)
        assert inner.writes[1:] == [big]
        await one_turn()
        assert len(inner.writes) == 2

    asyncio.run(run())


def test_close_sends_what_is_pending_abort_drops_it() -> None:
    async def run() -> None:
        loop = asyncio.get_running_loop()
        inner = Recorder()
        outer = CoalescingTransport(inner, loop)
        outer.write(b"last words")
        outer.close()
        assert inner.writes == [b"last words"] and inner.closed
        await one_turn()  # the scheduled flush finds nothing and writes nothing after close
        assert inner.writes == [b"last words"]

        inner = Recorder()
        outer = CoalescingTransport(inner, loop)
        outer.write(b"never")
        outer.abort()
        await one_turn()
        assert inner.writes == [] and inner.aborted

    asyncio.run(run())


def test_everything_else_is_the_wrapped_transports() -> None:
    async def run() -> None:
        inner = Recorder()
        outer = CoalescingTransport(inner, asyncio.get_running_loop())
        assert outer.get_extra_info("peername") == ("127.0.0.1", 1)
        assert outer.is_closing() is False
        inner.close()
        assert outer.is_closing() is True
        outer.write(b"late")
        await one_turn()
        assert inner.writes == []  # a closed transport is not written to

    asyncio.run(run())


def test_over_real_tls_a_response_arrives_whole(tmp_path: Path) -> None:
    """The wrapper around a real TLS transport: a server protocol writing a head and a body
    in one turn, and a keep-alive second answer, reach a real TLS client intact."""

    generate_tls(tmp_path, ["localhost"])  # what `fota keys tls` makes
    server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_ctx.load_cert_chain(tmp_path / "server.pem", tmp_path / "server.key")
    client_ctx = ssl.create_default_context(cafile=str(tmp_path / "ca.pem"))

    class Answer(asyncio.Protocol):
        def connection_made(self, transport: asyncio.BaseTransport) -> None:
            assert isinstance(transport, asyncio.Transport)
            self.out = CoalescingTransport(transport, asyncio.get_running_loop())

        def data_received(self, data: bytes) -> None:
            self.out.write(b"head:")
            self.out.write(data.upper())
            if data == b"bye":
                self.out.close()

    async def run() -> None:
        loop = asyncio.get_running_loop()
        server = await loop.create_server(Answer, "127.0.0.1", 0, ssl=server_ctx)
        port = server.sockets[0].getsockname()[1]
        reader, writer = await asyncio.open_connection(
            "127.0.0.1", port, ssl=client_ctx, server_hostname="localhost"
        )
        writer.write(b"poll")
        assert await reader.readexactly(9) == b"head:POLL"
        writer.write(b"bye")
        assert await reader.read() == b"head:BYE"  # written before the close
        writer.close()
        server.close()
        await server.wait_closed()

    asyncio.run(asyncio.wait_for(run(), 20))


@pytest.mark.parametrize("size", [1, COALESCE_LIMIT - 1, COALESCE_LIMIT, 3 * COALESCE_LIMIT + 5])
def test_bytes_arrive_in_order_whatever_the_sizes(size: int) -> None:
    async def run() -> None:
        inner = Recorder()
        outer = CoalescingTransport(inner, asyncio.get_running_loop())
        pieces = [bytes([i % 251]) * (size + i) for i in range(5)]
        for piece in pieces:
            outer.write(piece)
        await one_turn()
        assert b"".join(inner.writes) == b"".join(pieces)

    asyncio.run(run())
