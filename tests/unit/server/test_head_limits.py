"""HeadScanner: each bound at N and N+1, a head split at every byte, what follows a head."""

from __future__ import annotations

import pytest

from secure_fota.limits import MAX_HEADER_LINE, MAX_HEADERS, MAX_REQUEST_HEAD, MAX_REQUEST_LINE
from secure_fota.server.head_limits import HeadScanner, HeadTooLarge, head_error_response


def _head(target_size: int = 1, headers: list[bytes] | None = None) -> bytes:
    request_line = b"GET /" + b"a" * (target_size - 1) + b" HTTP/1.1"
    lines = [request_line, *([b"Host: x"] if headers is None else headers)]
    return b"".join(line + b"\r\n" for line in lines) + b"\r\n"


def _scan(data: bytes, chunk: int | None = None) -> int:
    scanner = HeadScanner()
    chunk = chunk or len(data)
    for offset in range(0, len(data), chunk):
        end = scanner.scan(data[offset : offset + chunk])
        if end >= 0:
            return offset + end
    return -1


def _status(data: bytes) -> int | None:
    try:
        _scan(data)
    except HeadTooLarge as error:
        return error.status
    return None


def test_a_head_ends_after_its_empty_line_however_it_is_split():
    head = _head(headers=[b"Host: x", b"Accept: */*"])
    data = head + b"BODY"
    for chunk in range(1, len(data) + 1):
        assert _scan(data, chunk) == len(head), chunk
    assert _scan(head[:-2]) == -1


def test_bare_line_feeds_and_leading_empty_lines():
    assert _scan(b"GET / HTTP/1.1\nHost: x\n\nrest") == len(b"GET / HTTP/1.1\nHost: x\n\n")
    head = b"\r\n\r\nGET / HTTP/1.1\r\nHost: x\r\n\r\n"
    assert _scan(head) == len(head)


def test_request_line_bound_n_and_n_plus_1():
    # "GET " + target + " HTTP/1.1" is 13 bytes more than the target
    assert _status(_head(MAX_REQUEST_LINE - 13)) is None
    assert _status(_head(MAX_REQUEST_LINE - 12)) == 414


def test_request_line_too_long_before_its_end_arrives():
    scanner = HeadScanner()
    with pytest.raises(HeadTooLarge) as caught:
        scanner.scan(b"GET /" + b"a" * MAX_REQUEST_LINE)
    assert caught.value.status == 414


def test_header_line_bound_n_and_n_plus_1():
    fits = b"X: " + b"v" * (MAX_HEADER_LINE - 3)
    assert _status(_head(headers=[fits])) is None
    assert _status(_head(headers=[fits + b"v"])) == 431
    for chunk in (1, 7, 4096):  # a CR LF split across chunks is still a line end
        assert _scan(_head(headers=[fits]), chunk) > 0


def test_header_count_bound_n_and_n_plus_1():
    headers = [b"H%d: v" % i for i in range(MAX_HEADERS)]
    assert _status(_head(headers=headers)) is None
    assert _status(_head(headers=[*headers, b"One-More: v"])) == 431


def test_whole_head_bound_n_and_n_plus_1():
    request_and_end = len(_head(headers=[]))  # request line, its CR LF, the empty line
    room = MAX_REQUEST_HEAD - request_and_end
    line = b"X: " + b"v" * (MAX_HEADER_LINE - 3)
    headers = [line] * (room // (len(line) + 2))
    rest = room - len(headers) * (len(line) + 2)
    headers.append(b"Y: " + b"v" * (rest - 5))
    head = _head(headers=headers)
    assert len(head) == MAX_REQUEST_HEAD
    assert _status(head) is None
    headers[-1] += b"v"
    assert _status(_head(headers=headers)) == 431


def test_restart_counts_unseen_bytes():
    scanner = HeadScanner()
    scanner.restart(MAX_REQUEST_HEAD - 10)
    with pytest.raises(HeadTooLarge):
        scanner.scan(b"X: " + b"v" * 20)
    with pytest.raises(HeadTooLarge):
        HeadScanner().restart(MAX_REQUEST_HEAD + 1)


def test_error_response_is_complete_http():
    raw = head_error_response(HeadTooLarge(431, "too big"))
    head, body = raw.split(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 431 Request Header Fields Too Large\r\n")
    assert b"content-length: %d" % len(body) in head
    assert body == b'{"error":"too big","field":null}'
