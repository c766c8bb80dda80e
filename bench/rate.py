"""A constant-rate HTTPS load generator (wrk2-style) for latency at a fixed offered load.

Requests are scheduled at fixed times (``rate`` per second in total, round-robin over
``connections`` keep-alive TLS connections). Latency is measured from the *scheduled* send
time, so a slow answer also counts against the requests queued behind it (no coordinated
omission). Every answer's status is checked against ``expect``; anything else, a timeout or
a broken connection counts as an error.

    .venv/bin/python bench/rate.py --url https://127.0.0.1:8443/update/newest/manifest?deviceType=T \
        --ca tls/ca.pem --rate 500 --duration 10 [--header 'If-None-Match: "..."'] [--expect 304]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import ssl
import time
from urllib.parse import urlsplit


async def _read_response(reader: asyncio.StreamReader) -> tuple[int, bool]:
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split(" ", 2)[1])
    length = 0
    close = False
    for line in lines[1:]:
        name, _, value = line.partition(":")
        name = name.strip().lower()
        if name == "content-length":
            length = int(value.strip())
        elif name == "connection" and value.strip().lower() == "close":
            close = True
    if length:
        await reader.readexactly(length)
    return status, close


async def run(
    url: str,
    *,
    ca: str,
    rate: float,
    duration: float,
    connections: int = 16,
    headers: list[str] | None = None,
    expect: int = 200,
    method: str = "GET",
    timeout: float = 5.0,
) -> dict[str, object]:
    parts = urlsplit(url)
    host, port = parts.hostname or "127.0.0.1", parts.port or 443
    target = parts.path + (f"?{parts.query}" if parts.query else "")
    context = ssl.create_default_context(cafile=ca)
    extra = "".join(f"{h}\r\n" for h in headers or [])
    request = f"{method} {target} HTTP/1.1\r\nHost: {host}:{port}\r\n{extra}\r\n".encode()
    total = int(rate * duration)
    interval = 1.0 / rate
    latencies: list[float] = []
    errors: list[str] = []
    start = time.perf_counter() + 0.5  # time to open the connections

    async def connection(index: int) -> None:
        reader = writer = None
        for n in range(index, total, connections):
            scheduled = start + n * interval
            delay = scheduled - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            try:
                if writer is None:
                    reader, writer = await asyncio.wait_for(
                        asyncio.open_connection(host, port, ssl=context), timeout
                    )
                assert reader is not None
                writer.write(request)
                status, close = await asyncio.wait_for(_read_response(reader), timeout)
                latencies.append(time.perf_counter() - scheduled)
                if status != expect:
                    errors.append(f"status {status}")
                if close:
                    writer.close()
                    reader = writer = None
            except (TimeoutError, OSError, asyncio.IncompleteReadError, ValueError) as exc:
                errors.append(type(exc).__name__)
                if writer is not None:
                    writer.close()
                reader = writer = None
        if writer is not None:
            writer.close()

    await asyncio.gather(*(connection(i) for i in range(min(connections, total))))
    ordered = sorted(latencies)

    def pct(fraction: float) -> float:
        if not ordered:
            return float("nan")
        return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))] * 1000

    return {
        "offered_rate": rate,
        "duration": duration,
        "requests": total,
        "completed": len(latencies),
        "errors": len(errors),
        "error_samples": errors[:5],
        "p50_ms": pct(0.50),
        "p90_ms": pct(0.90),
        "p99_ms": pct(0.99),
        "max_ms": ordered[-1] * 1000 if ordered else float("nan"),
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--url", required=True)
    parser.add_argument("--ca", required=True)
    parser.add_argument("--rate", type=float, default=500)
    parser.add_argument("--duration", type=float, default=10)
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--header", action="append", default=[])
    parser.add_argument("--expect", type=int, default=200)
    args = parser.parse_args()
    if args.rate * args.duration > 2_000_000:
        parser.error("at most 2,000,000 requests per run")
    result = asyncio.run(
        run(
            args.url,
            ca=args.ca,
            rate=args.rate,
            duration=args.duration,
            connections=args.connections,
            headers=args.header,
            expect=args.expect,
        )  # fmt: skip
    )
    print(json.dumps(result))


if __name__ == "__main__":
    main()
