from __future__ import annotations

import contextlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from secure_fota.errors import InputError
from secure_fota.formats.names import check_name, check_seq


@pytest.mark.parametrize("good", ["ESP32", "sensor-v2", "a", "fw_1.0", "x" * 64])
def test_good_names(good: str) -> None:
    assert check_name("name", good) == good


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        ("", "empty"),
        ("x" * 65, "65 characters"),
        ("a/b", "separators"),
        ("a\\b", "separators"),
        ("a..b", "'..'"),
        ("tab\there", "control"),
        ("-lead", "start with"),
        ("spa ce", "letters"),
        ("ünï", "letters"),
    ],
)
def test_bad_names(bad: str, message: str) -> None:
    with pytest.raises(InputError, match=message):
        check_name("--name", bad)


@pytest.mark.parametrize("good", [1, "1", " 42 ", 2**31 - 1])
def test_good_seq(good: object) -> None:
    assert check_seq("--seq", good) == int(str(good).strip())


@pytest.mark.parametrize(
    "bad", [0, -1, "0", "-3", "1.5", "abc", "", "١٢", True, 2**31, "9" * 30, 1.0]
)
def test_bad_seq(bad: object) -> None:
    with pytest.raises(InputError):
        check_seq("--seq", bad)


@given(st.text(max_size=80))
def test_names_never_raise_anything_else(text: str) -> None:
    with contextlib.suppress(InputError):
        check_name("name", text)
