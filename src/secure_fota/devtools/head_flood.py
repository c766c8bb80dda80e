"""An oversized request head and a well-behaved poller, for the attack test
(tests/attacks/test_request_heads.py) and the benchmark (bench/head_buffer.py).

* :func:`send_head`: one TLS connection that sends a request head (a request line, header
  lines and optionally one header of ``flood`` bytes sent in chunks without a line end) and
  reports how much the server took before it answered or closed, and what it answered.
* :class:`Poller`: threads that poll a URL over keep-alive TLS and record every answer's time,
  so that the rate and the longest gap during an attack can be read off.
* :func:`tree_rss_kib`: resident memory of a process and all its descendants (granian's workers
  are child processes).
"""

from __future__ import annotations

import itertools
import socket
import ssl
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Self

import httpx

from secure_fota.tls_client import client_context

__all__ = ["HeadResult", "Poller", "send_head", "tree_rss_kib"]

_CHUNK = 64 * 1024


@dataclass(frozen=True)
class HeadResult:
    status: int | None  # the answer's status code; None: closed without one
    sent: int  # bytes of the head the server took before it answered or closed
    seconds: float


def _status(sock: ssl.SSLSocket, timeout: float) -> int | None:
    sock.settimeout(timeout)
    data = b""
    try:
        while b"\r\n" not in data and len(data) < 4096:
            chunk = sock.recv(4096)
            if not chunk:
                break
            data += chunk
    except (OSError, ssl.SSLError):
        pass
    parts = data.split(b" ", 2)
    if len(parts) >= 2 and parts[0].startswith(b"HTTP/") and parts[1].isdigit():
        return int(parts[1])
    return None


def send_head(
    port: int,
    ca: Path,
    head: bytes,
    *,
    flood: int = 0,
    end: bool = True,
    timeout: float = 30.0,
) -> HeadResult:
    """Send ``head`` (request line and header lines, each ending in CR LF), then ``flood``
    bytes of one more header's value (``X-Flood: aaaa…``), then (``end``) the empty line; read
    the answer's status line. Sending stops when the server closes the connection (``sent``
    is then what it took, give or take the socket buffers); the status of an answer sent just
    before such a close may be lost (None)."""
    context = client_context(ca)
    started = time.monotonic()
    sent = 0
    with (
        socket.create_connection(("127.0.0.1", port), timeout=timeout) as raw,
        context.wrap_socket(raw, server_hostname="127.0.0.1") as sock,
    ):
        try:
            sock.sendall(head)
            sent += len(head)
            if flood:
                sock.sendall(b"X-Flood: ")
                chunk = b"a" * _CHUNK
                while sent < flood + len(head):
                    sock.sendall(chunk)
                    sent += len(chunk)  # a server that stops reading resets: send fails
                sock.sendall(b"\r\n")
            if end:
                sock.sendall(b"\r\n")
        except (OSError, ssl.SSLError):
            pass  # the server stopped reading and closed: what it answered is below
        status = _status(sock, timeout)
    return HeadResult(status, sent, time.monotonic() - started)


@dataclass
class Poller:
    """``clients`` threads, each polling ``url`` on its own keep-alive TLS connection."""

    url: str
    ca: Path
    clients: int = 2
    times: list[float] = field(default_factory=list)
    errors: int = 0
    _stop: threading.Event = field(default_factory=threading.Event)
    _threads: list[threading.Thread] = field(default_factory=list)

    def _run(self) -> None:
        with httpx.Client(verify=client_context(self.ca), timeout=30) as client:
            while not self._stop.is_set():
                try:
                    ok = client.get(self.url).status_code < 500
                except httpx.HTTPError:
                    ok = False
                if ok:
                    self.times.append(time.monotonic())
                else:
                    self.errors += 1

    def __enter__(self) -> Self:
        for _ in range(self.clients):
            thread = threading.Thread(target=self._run, daemon=True)
            thread.start()
            self._threads.append(thread)
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(35)

    def rate(self, start: float, stop: float) -> float:
        """Answers per second between two ``time.monotonic()`` instants."""
        count = sum(1 for t in list(self.times) if start <= t < stop)
        return count / max(stop - start, 1e-9)

    def longest_gap(self, start: float, stop: float) -> float:
        """The longest time without an answer between the two instants (seconds)."""
        inside = [start, *(t for t in list(self.times) if start <= t < stop), stop]
        return max(b - a for a, b in itertools.pairwise(inside))


def _children(pid: int) -> list[int]:
    found: list[int] = []
    try:
        tasks = list(Path(f"/proc/{pid}/task").iterdir())
    except OSError:
        return found
    for task in tasks:
        try:
            found += [int(c) for c in (task / "children").read_text().split()]
        except OSError:
            continue
    return found


def tree_rss_kib(pid: int) -> int:
    """VmRSS of ``pid`` and all its descendants, in KiB."""
    total, queue = 0, [pid]
    while queue:
        current = queue.pop()
        try:
            status = Path(f"/proc/{current}/status").read_text()
        except OSError:
            continue
        for line in status.splitlines():
            if line.startswith("VmRSS:"):
                total += int(line.split()[1])
        queue += _children(current)
    return total
