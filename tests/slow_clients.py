"""Raw TLS client sockets for the slowloris tests (request-head deadline), shared by the
uvicorn fault tests and the granian tests."""

from __future__ import annotations

import socket
import ssl
from pathlib import Path


def tls_socket(port: int, ca: Path) -> ssl.SSLSocket:
    """A TLS connection to 127.0.0.1:``port`` (certificate checked against ``ca``), no request."""
    context = ssl.create_default_context(cafile=str(ca))
    raw = socket.create_connection(("127.0.0.1", port), timeout=10)
    return context.wrap_socket(raw, server_hostname="127.0.0.1")


def closed_by_server(sock: ssl.SSLSocket) -> bool:
    """Whether the server has closed ``sock`` (looks for at most 50 ms)."""
    sock.settimeout(0.05)
    try:
        return sock.recv(4096) == b""
    except TimeoutError:
        return False
    except OSError:
        return True
