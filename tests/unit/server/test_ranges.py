"""Range and conditional-request rules (pure)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from secure_fota.server.ranges import (
    ByteRange,
    Unsatisfiable,
    etag_matches,
    if_range_allows,
    parse_range,
)

SIZE = 1000


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        (None, None),
        ("bytes=0-99", ByteRange(0, 99)),
        ("bytes=0-0", ByteRange(0, 0)),
        ("bytes=999-999", ByteRange(999, 999)),
        ("bytes=500-", ByteRange(500, 999)),
        ("bytes=-1", ByteRange(999, 999)),
        ("bytes=-5000", ByteRange(0, 999)),
        ("bytes=900-5000", ByteRange(900, 999)),
        ("BYTES = 1-2", ByteRange(1, 2)),
        ("bytes= 1 - 2 ", ByteRange(1, 2)),
        # ignored: whole representation
        ("bytes=0-1,4-5", None),
        ("items=0-1", None),
        ("bytes=5-1", None),
        ("bytes=-", None),
        ("bytes=a-b", None),
        ("bytes 0-1", None),
        ("bytes=" + "9" * 20 + "-", None),
    ],
)
def test_parse_range(header: str | None, expected: ByteRange | None) -> None:
    assert parse_range(header, SIZE) == expected


@pytest.mark.parametrize("header", ["bytes=1000-", "bytes=1000-2000", "bytes=-0", "bytes=5000-"])
def test_unsatisfiable(header: str) -> None:
    with pytest.raises(Unsatisfiable):
        parse_range(header, SIZE)


def test_empty_representation() -> None:
    with pytest.raises(Unsatisfiable):
        parse_range("bytes=-5", 0)
    with pytest.raises(Unsatisfiable):
        parse_range("bytes=0-", 0)


def test_content_range() -> None:
    assert ByteRange(2, 5).content_range(10) == "bytes 2-5/10"
    assert ByteRange(2, 5).length == 4


@given(st.text(max_size=40), st.integers(min_value=0, max_value=10**9))
def test_any_header_is_none_a_range_inside_or_unsatisfiable(header: str, size: int) -> None:
    try:
        found = parse_range(header, size)
    except Unsatisfiable:
        return
    if found is not None:
        assert 0 <= found.start <= found.end < size


def test_etags() -> None:
    tag = '"abc"'
    assert etag_matches(tag, tag)
    assert etag_matches('W/"abc"', tag)
    assert etag_matches('"x", "abc"', tag)
    assert etag_matches("*", tag)
    assert not etag_matches('"abcd"', tag)
    assert not etag_matches(None, tag)
    assert not etag_matches("", tag)
    assert if_range_allows(None, tag)
    assert if_range_allows(tag, tag)
    assert not if_range_allows('W/"abc"', tag)  # strong comparison
    assert not if_range_allows("Wed, 21 Oct 2015 07:28:00 GMT", tag)
