"""Slow responses: a server that drips its response **head** (issue 14, class 4).

The device's deadline (one timeout plus the expected size at the minimum rate) used to start
only once the head had arrived, and httpx bounds each read, not the request: a server sending
one header byte just before every read timeout held a poll 76 s against an 18 s budget. Now the
deadline is set before the request and bounds every connect, handshake, write and read of it
(docs/SECURITY.md "Hostile peers, device side")."""

from __future__ import annotations

import ssl
import time

import pytest

from secure_fota.errors import TransportError
from secure_fota.reasons import Reason
from tests.attacks.conftest import Lab
from tests.attacks.infra import ScriptedServer

#: the device's read timeout and minimum rate in these tests: the poll's budget is
#: 1 + 16384 / 16384 = 2 s, a download's 1 + size / 16384 s
TIMEOUT, RATE = 1.0, 16384
SLACK = 1.5
#: how long the dripping server would go on (what the device waited before)
DRIP_FOR = 20.0


def drip(head_only: bool = True):  # type: ignore[no-untyped-def]
    """A status line, then one header byte every 0.3 s (well inside the read timeout)."""

    def script(_head: bytes, conn: ssl.SSLSocket) -> None:
        conn.sendall(b"HTTP/1.1 200 OK\r\n")
        end = time.monotonic() + DRIP_FOR
        while time.monotonic() < end:
            conn.sendall(b"X" if head_only else b"")
            time.sleep(0.3)

    return script


def test_a_dripped_head_ends_the_poll_within_its_budget(lab: Lab) -> None:
    device = lab.device()
    with (
        ScriptedServer(lab.pki.server_cert, lab.pki.server_key, drip()) as server,
        lab.client_via(server.url, device, timeout=TIMEOUT, min_rate=RATE) as client,
    ):
        started = time.monotonic()
        with pytest.raises(TransportError) as caught:
            device.check_for_update(client)
        took = time.monotonic() - started
    budget = TIMEOUT + 16384 / RATE
    assert took < budget + SLACK, f"the poll took {took:.1f} s against a {budget:.0f} s budget"
    assert caught.value.reason is Reason.TIMEOUT


def test_a_dripped_head_ends_the_download_within_its_budget(lab: Lab) -> None:
    """The poll goes to the real server; the image's answer head is dripped by a mirror."""
    files = lab.publish("1.1.0", 2)
    device = lab.device()
    with ScriptedServer(lab.pki.server_cert, lab.pki.server_key, drip()) as server:
        real = lab.client_via(lab.server.url, device, timeout=TIMEOUT, min_rate=RATE)
        slow = lab.client_via(server.url, device, timeout=TIMEOUT, min_rate=RATE)
        with real, slow:
            check = device.check_for_update(real)
            assert check.claims is not None
            started = time.monotonic()
            with pytest.raises(TransportError) as caught:
                slow.download(
                    slow.binary_url(lab.device_type, 2),
                    device.state.download_file,
                    expected_size=check.claims.enc_size,
                    etag=check.claims.enc_sha256,
                )
            took = time.monotonic() - started
    budget = TIMEOUT + files.claims.enc_size / RATE
    assert took < budget + SLACK, f"the download took {took:.1f} s against {budget:.1f} s"
    assert caught.value.reason is Reason.TIMEOUT


def test_a_server_that_never_answers_is_cut_at_the_read_timeout(lab: Lab) -> None:
    """Silence (no byte at all) was already bounded by the read timeout: still is."""
    device = lab.device()
    with (
        ScriptedServer(lab.pki.server_cert, lab.pki.server_key, drip(head_only=False)) as server,
        lab.client_via(server.url, device, timeout=TIMEOUT, min_rate=RATE) as client,
    ):
        started = time.monotonic()
        with pytest.raises(TransportError) as caught:
            device.check_for_update(client)
        took = time.monotonic() - started
    assert took < TIMEOUT + SLACK and caught.value.reason is Reason.TIMEOUT
