"""The reason codes are one list: secure_fota.reasons, the C core's so_reason_t (same order,
so the numbers of SECURE_OTA_ERR_* never move) and its names (so_util.c)."""

from __future__ import annotations

import re
from pathlib import Path

from secure_fota.reasons import Reason

CORE = Path(__file__).resolve().parents[2] / "esp32/components/secure_ota/core"


def test_c_enum_follows_reasons_py_in_order() -> None:
    header = (CORE / "include/so_core.h").read_text()
    body = header[header.index("typedef enum {\n    SO_OK = 0,") : header.index("} so_reason_t;")]
    names = re.findall(r"SO_REASON_([A-Z0-9_]+)", body)
    assert names[-1] == "COUNT"
    assert names[:-1] == [reason.name for reason in Reason]


def test_c_names_are_the_reason_strings() -> None:
    source = (CORE / "src/so_util.c").read_text()
    pairs = dict(re.findall(r'\[SO_REASON_([A-Z0-9_]+)\] = "([a-z0-9_]+)"', source))
    assert pairs == {reason.name: reason.value for reason in Reason}
