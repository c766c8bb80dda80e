"""Hostile answers to a poll: whatever status, headers and body a mirror, a proxy or a captured
DNS name sends, the reference device ends with a result or a transport reason code, never a
traceback (issue 14, class 6; docs/SECURITY.md "Hostile answers").

Every answer comes from a real HTTPS server on 127.0.0.1 (:class:`ScriptedServer`) that holds a
certificate the device trusts: the worst case, a party that controls the name the device polls.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from secure_fota.device.updater import CheckResult, Device
from secure_fota.errors import TransportError
from secure_fota.reasons import Reason
from tests.attacks.conftest import Lab
from tests.attacks.infra import ScriptedServer, answer

#: the reasons an unusable answer may carry
TRANSPORT = {
    Reason.CONNECTION_FAILED,
    Reason.TIMEOUT,
    Reason.UNEXPECTED_STATUS,
    Reason.BAD_HEADER,
    Reason.UNSUPPORTED_ENCODING,
    Reason.REDIRECT_REFUSED,
}


def poll(lab: Lab, device: Device, server: ScriptedServer) -> CheckResult | TransportError:
    """One check through ``server``: its result, or the TransportError it raised (anything
    else escaping is the crash this file is about)."""
    with lab.client_via(server.url, device, timeout=2) as client:
        try:
            return device.check_for_update(client)
        except TransportError as exc:
            return exc


def transport_reason(outcome: CheckResult | TransportError) -> Reason | None:
    assert isinstance(outcome, TransportError), outcome
    return outcome.reason


@pytest.mark.parametrize("value", ["\u00b2", "\u0663", "1\u00b2", "-1", "99999999999999999999"])
def test_release_header_with_foreign_digits_is_a_bad_header(lab: Lab, value: str) -> None:
    # "²".isdigit() is True and int("²") raises: the device used to crash on this header
    files = lab.release(lab.image("1.1.0"), 2)
    manifest = files.manifest.read_bytes()
    device = lab.device()
    headers = [("Content-Length", str(len(manifest))), ("X-Fota-Release", value)]
    with ScriptedServer(
        lab.pki.server_cert, lab.pki.server_key, answer(200, headers, manifest)
    ) as s:
        outcome = poll(lab, device, s)
    assert transport_reason(outcome) is Reason.BAD_HEADER


def test_not_modified_without_a_cached_manifest(lab: Lab) -> None:
    device = lab.device()
    assert not device.state.manifest_cache.exists()
    with ScriptedServer(lab.pki.server_cert, lab.pki.server_key, answer(304, [])) as s:
        outcome = poll(lab, device, s)
        assert s.request_header(0, "If-None-Match") is None
    assert transport_reason(outcome) is Reason.UNEXPECTED_STATUS


def test_not_modified_after_the_cache_was_lost(lab: Lab) -> None:
    lab.publish("1.0.0", 1)  # the installed release: the device caches its manifest
    device = lab.device()
    assert device.check_for_update().result == "up-to-date"
    device.state.manifest_cache.unlink()  # a power cut between the NVS write and the file
    nvs = device.state.load_nvs()
    assert nvs.manifest_etag is not None
    with ScriptedServer(lab.pki.server_cert, lab.pki.server_key, answer(304, [])) as s:
        outcome = poll(lab, device, s)
    assert transport_reason(outcome) is Reason.UNEXPECTED_STATUS


@pytest.mark.parametrize("status", [201, 204, 400, 418, 451, 500, 502, 503])
def test_unexpected_status(lab: Lab, status: int) -> None:
    device = lab.device()
    script = answer(status, [("Content-Length", "2")], b"{}")
    with ScriptedServer(lab.pki.server_cert, lab.pki.server_key, script) as s:
        outcome = poll(lab, device, s)
    assert transport_reason(outcome) is Reason.UNEXPECTED_STATUS
    assert isinstance(outcome, TransportError) and outcome.status_code == status


@pytest.mark.parametrize(
    ("headers", "reason"),
    [
        ([("Content-Length", "1\u0663")], Reason.BAD_HEADER),
        ([("Content-Length", "12, 13")], Reason.BAD_HEADER),
        ([("Content-Length", "-5")], Reason.BAD_HEADER),
        ([("Transfer-Encoding", "chunked")], Reason.CONNECTION_FAILED),  # then no valid chunk
        ([("Content-Length", "100")], Reason.CONNECTION_FAILED),  # closes after 2 bytes
    ],
)
def test_malformed_heads(lab: Lab, headers: list[tuple[str, str]], reason: Reason) -> None:
    device = lab.device()
    with ScriptedServer(lab.pki.server_cert, lab.pki.server_key, answer(200, headers, b"{}")) as s:
        outcome = poll(lab, device, s)
    assert isinstance(outcome, TransportError)
    assert outcome.reason in (reason, Reason.BAD_HEADER, Reason.CONNECTION_FAILED), outcome


_NAMES = st.sampled_from(
    [
        "Content-Length", "Content-Encoding", "Transfer-Encoding", "ETag", "X-Fota-Release",
        "X-Fota-Freshness", "Location", "Content-Range", "Content-Type", "Connection",
    ]
)  # fmt: skip
_VALUES = st.one_of(
    st.text(st.characters(min_codepoint=0x20, max_codepoint=0xFF), max_size=40),
    st.integers(-(2**70), 2**70).map(str),
    st.sampled_from(["gzip", "identity", "chunked", "0", "16385", '"abc"', "\u00b2"]),
)
_STATUSES = st.one_of(
    st.sampled_from([200, 204, 206, 301, 302, 304, 307, 404, 416, 500]),
    st.integers(100, 599).filter(lambda s: s != 101),
)


@settings(
    max_examples=120,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    status=_STATUSES,
    headers=st.lists(st.tuples(_NAMES, _VALUES), max_size=6),
    body=st.binary(max_size=2048) | st.sampled_from([b"", b"{}", b"\x00" * 17000]),
)
def test_any_answer_ends_in_a_result_or_a_reason(
    hostile: tuple[Lab, Device, ScriptedServer],
    status: int,
    headers: list[tuple[str, str]],
    body: bytes,
) -> None:
    lab, device, server = hostile
    server.script = answer(status, headers, body)
    outcome = poll(lab, device, server)
    if isinstance(outcome, TransportError):
        assert outcome.reason in TRANSPORT, outcome
    else:
        assert outcome.result in ("up-to-date", "update-available", "rejected"), outcome
        assert outcome.result != "update-available"  # nothing here is signed by the author


@pytest.fixture
def hostile(lab: Lab) -> Iterator[tuple[Lab, Device, ScriptedServer]]:
    lab.publish("1.0.0", 1)
    device = lab.device()
    assert device.check_for_update().result == "up-to-date"  # a cached manifest and ETag
    with ScriptedServer(lab.pki.server_cert, lab.pki.server_key) as server:
        yield lab, device, server
