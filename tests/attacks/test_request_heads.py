"""Oversized request heads (issue 14, class 3), against `fota server run` over TLS with both
HTTP servers (uvicorn, the default, and granian).

The review sent one 64-120 MiB header within the head deadline: the uvicorn server grew by
215 MiB, stalled ~11 s, and polls fell 25x. Now a request line over 8 KiB answers 414, a header
line over 8 KiB, more than 100 headers or a head over 64 KiB answers 431 and the connection is
closed; the server stays responsive and its memory bounded while the attack goes on.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

from secure_fota.devtools.head_flood import Poller, send_head, tree_rss_kib
from secure_fota.limits import MAX_HEADER_LINE, MAX_HEADERS, MAX_REQUEST_HEAD, MAX_REQUEST_LINE
from secure_fota.wire import HEALTH
from tests.attacks.conftest import Pki, server_for
from tests.attacks.infra import ServerProcess

SERVERS = ["uvicorn", "granian"]
FLOOD = 64 * 1024 * 1024


@pytest.fixture(scope="module", params=SERVERS)
def server(
    request: pytest.FixtureRequest, pki: Pki, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ServerProcess]:
    if request.param == "granian":
        pytest.importorskip("granian", reason="granian is not installed")
    root = tmp_path_factory.mktemp(f"heads-{request.param}")
    process = server_for(root, pki, env={"FOTA_HTTP_SERVER": request.param})
    with process:
        yield process


def _get(target: str, headers: list[bytes] | None = None) -> bytes:
    lines = [f"GET {target} HTTP/1.1".encode(), b"Host: 127.0.0.1", *(headers or [])]
    return b"".join(line + b"\r\n" for line in lines)


def _status(server: ServerProcess, head: bytes) -> int | None:
    return send_head(server.port, server.ca_file, head + b"\r\n", end=False, timeout=10).status


def test_request_line_over_the_bound_answers_414(server: ServerProcess):
    # the request line's other bytes: "GET ", " HTTP/1.1"
    fits = HEALTH + "?" + "a" * (MAX_REQUEST_LINE - len(HEALTH) - 1 - 13)
    assert _status(server, _get(fits)) == 200
    too_long = fits + "a" * 16
    assert _status(server, _get(too_long)) == 414


def test_header_line_over_the_bound_answers_431(server: ServerProcess):
    fits = b"X-Fill: " + b"a" * (MAX_HEADER_LINE - 8)
    assert _status(server, _get(HEALTH, [fits])) == 200
    assert _status(server, _get(HEALTH, [fits + b"a" * 16])) == 431


def test_too_many_headers_answer_431(server: ServerProcess):
    # Host is one header of the head; hyper (granian) counts it too
    fits = [b"X-H%d: v" % i for i in range(MAX_HEADERS - 1)]
    assert _status(server, _get(HEALTH, fits)) == 200
    assert _status(server, _get(HEALTH, [*fits, b"X-One-More: v", b"X-Two-More: v"])) == 431


def test_head_over_the_bound_answers_431(server: ServerProcess):
    # lines that each fit, and a count that fits, but too many bytes in all
    line = b"X-Fill-%02d: " + b"a" * (MAX_HEADER_LINE - 16)
    count = MAX_REQUEST_HEAD // MAX_HEADER_LINE + 2
    assert _status(server, _get(HEALTH, [line % i for i in range(count)])) == 431


def test_a_huge_header_is_cut_off_and_polls_go_on(server: ServerProcess):
    """One connection streams a 64 MiB header value; two keep-alive clients poll meanwhile.
    The server stops reading after the bound (not after 64 MiB), its memory stays put and the
    polls keep being answered."""
    url = server.url + "/update/newest/manifest?deviceType=head-flood"
    before = tree_rss_kib(server.pid)
    with Poller(url, server.ca_file, clients=2) as poller:
        time.sleep(1.0)
        start = time.monotonic()
        result = send_head(server.port, server.ca_file, _get(HEALTH), flood=FLOOD, timeout=30)
        peak = tree_rss_kib(server.pid)
        time.sleep(0.5)
        stop = time.monotonic()
    grown_mib = (peak - before) / 1024
    # what the server took: the bound, plus what socket and TLS buffers held on the way
    assert result.sent < 16 * 1024 * 1024, result
    assert result.status in (431, None), result
    assert grown_mib < 24, (grown_mib, result)
    print(
        f"{server.env.get('FOTA_HTTP_SERVER')}: took {result.sent} bytes in {result.seconds:.2f} s,"
        f" RSS +{grown_mib:.1f} MiB, polls {poller.rate(start, stop):.0f}/s,"
        f" longest gap {poller.longest_gap(start, stop):.2f} s"
    )
    assert poller.longest_gap(start, stop) < 3.0, poller.longest_gap(start, stop)
    assert poller.rate(start, stop) > 0
    with server.http() as client:
        assert client.get(HEALTH).status_code == 200
