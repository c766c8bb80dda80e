"""Indefinite freeze: a server, mirror or man in the middle keeps serving a stale "newest".

Every poll carries a fresh nonce; the server answers with a statement, signed by its online
freshness key, binding that nonce, the device type and the SHA-256 of the manifest it
serves (docs/formats.md §7). Without the freshness key nobody can make a stale answer pass;
with it, the manifest's ``exp`` is the offline bound."""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
import time
from typing import Any
from urllib.parse import parse_qs, urlsplit

from secure_fota.crypto.freshness import FreshnessSigner
from secure_fota.crypto.keys import Role, load_private_key
from secure_fota.keys.directory import read_key_file
from tests.attacks.conftest import Lab, refused
from tests.attacks.infra import Forward, Mitm, Request, Response

HEADER = "x-fota-freshness"


def payload(statement: str) -> dict[str, Any]:
    part = statement.split(".")[1]
    return json.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4)))


def nonce_of(request: Request) -> str:
    return parse_qs(urlsplit(request.target).query)["nonce"][0]


def device_id_of(request: Request) -> str | None:
    """The ``deviceId`` a poll sent (what a statement for it must name), or None."""
    return parse_qs(urlsplit(request.target).query).get("deviceId", [None])[0]


def mitm(lab: Lab, handler: Any) -> Mitm:
    """A mirror or proxy with a certificate devices accept (it holds the server's TLS key)."""
    return Mitm(lab.server.url, lab.pki.ca_file, lab.pki.server_cert, lab.pki.server_key, handler)


def test_statement_binds_nonce_device_type_and_manifest(lab: Lab) -> None:
    """The real server's answer, on 200 and on 304, checked by the Python device and the C core."""
    device = lab.device()
    lab.publish("1.1.0", 2)
    nonce = secrets.token_hex(16)
    # as the device polls: with its id, which the statement names
    params = {"deviceType": lab.device_type, "nonce": nonce, "deviceId": device.config.device_id}
    with lab.server.http() as http:
        first = http.get("/update/newest/manifest", params=params)
        again = http.get(
            "/update/newest/manifest",
            params=params,
            headers={"if-none-match": first.headers["etag"]},
        )
        plain = http.get("/update/newest/manifest", params={"deviceType": lab.device_type})
    assert (first.status_code, again.status_code) == (200, 304)
    assert HEADER not in plain.headers  # the seed's devices send no nonce and get none
    for answer in (first, again):
        claims = payload(answer.headers[HEADER])
        assert claims["nonce"] == nonce and claims["device_type"] == lab.device_type
        assert claims["device_id"] == device.config.device_id
        assert claims["manifest_sha256"] == hashlib.sha256(first.content).hexdigest()
        assert claims["seq"] == 2 and abs(claims["iat"] - time.time()) < 60
    assert device.check_for_update().result == "update-available"
    statement = first.headers[HEADER]
    verdict = lab.c_verdict(device, first.content, freshness=statement, nonce=nonce)
    assert verdict["accept"] is True, verdict
    lab.assert_c_rejects(
        device, first.content, None, "freshness_invalid",
        freshness=statement, nonce=secrets.token_hex(16),
    )  # fmt: skip


def test_mirror_replays_an_old_answer(lab: Lab) -> None:
    """A compromised mirror recorded the answer for release 2 (manifest and statement) and
    serves it forever after release 3 is out."""
    lab.publish("1.1.0", 2)
    recorded: list[Response] = []

    async def record_then_replay(request: Request, forward: Forward) -> Response:
        if "/manifest" in request.target and recorded:
            return recorded[0]
        response = await forward(request)
        if "/manifest" in request.target:
            await response.read()
            recorded.append(response)
        return response

    with mitm(lab, record_then_replay) as mirror:
        scout = lab.device("scout")
        assert (
            scout.check_for_update(lab.client_via(mirror.url, scout)).result == "update-available"
        )
        lab.publish("1.2.0", 3)
        device = lab.device()
        refused(device, "freshness_invalid", client=lab.client_via(mirror.url, device))
    old = recorded[0]
    assert isinstance(old.body, bytes)
    lab.assert_c_rejects(
        device, old.body, None, "freshness_invalid",
        freshness=old.header(HEADER), nonce=secrets.token_hex(16),
    )  # fmt: skip


def test_proxy_forwards_the_nonce_but_serves_an_old_manifest(lab: Lab) -> None:
    """The proxy gets a genuine statement for the device's own nonce, but swaps the body for
    the stale manifest of release 2: the statement vouches for another manifest."""
    two = lab.publish("1.1.0", 2)
    lab.publish("1.2.0", 3)
    seen: list[tuple[str, str]] = []

    async def swap_body(request: Request, forward: Forward) -> Response:
        response = await forward(request)
        if "/manifest" in request.target and response.status == 200:
            await response.read()
            seen.append((response.header(HEADER) or "", nonce_of(request)))
            return Response(
                200, response.without("etag", "x-fota-release"), two.manifest.read_bytes()
            )
        return response

    device = lab.device()
    with mitm(lab, swap_body) as proxy:
        refused(device, "stale_manifest", client=lab.client_via(proxy.url, device))
    statement, nonce = seen[0]
    lab.assert_c_rejects(
        device, two.manifest, None, "stale_manifest", freshness=statement, nonce=nonce
    )


def test_statement_stripped(lab: Lab) -> None:
    lab.publish("1.1.0", 2)

    async def strip(request: Request, forward: Forward) -> Response:
        response = await forward(request)
        await response.read()
        return Response(response.status, response.without(HEADER), response.body)

    device = lab.device()
    with mitm(lab, strip) as proxy:
        refused(device, "freshness_invalid", update=False, client=lab.client_via(proxy.url, device))


def test_statement_signed_by_another_key(lab: Lab) -> None:
    """The attacker signs its own statement (correct nonce and digest) with a key it owns."""
    lab.publish("1.1.0", 2)
    attacker = load_private_key(
        Role.FRESHNESS, read_key_file(lab.pki.attacker_keys / "freshness_key.pem")
    )
    seen: list[tuple[bytes, str, str]] = []

    async def resign(request: Request, forward: Forward) -> Response:
        response = await forward(request)
        body = await response.read()
        if "/manifest" not in request.target:
            return response
        genuine = payload(response.header(HEADER) or "")
        forged = FreshnessSigner(attacker).sign(**genuine)
        seen.append((body, forged, nonce_of(request)))
        return Response(response.status, [*response.without(HEADER), (HEADER, forged)], body)

    device = lab.device()
    with mitm(lab, resign) as proxy:
        refused(device, "freshness_invalid", client=lab.client_via(proxy.url, device))
    body, forged, nonce = seen[0]
    lab.assert_c_rejects(device, body, None, "freshness_invalid", freshness=forged, nonce=nonce)


def test_statement_for_another_device_type(lab: Lab) -> None:
    """The proxy asks the server about another device type with the device's nonce and
    attaches that (genuine) statement to this type's manifest."""
    lab.publish("1.1.0", 2)
    second = f"{lab.device_type}-b"
    other = lab.release(lab.image("1.1.0"), 2, device_type=second)
    answer = lab.upload_bytes(
        other.manifest.read_bytes(), other.binary.read_bytes(), 2, device_type=second
    )
    assert answer.status_code == 200
    seen: list[tuple[bytes, str, str]] = []

    async def borrow(request: Request, forward: Forward) -> Response:
        response = await forward(request)
        body = await response.read()
        if "/manifest" not in request.target:
            return response
        nonce = nonce_of(request)
        query = f"deviceType={lab.device_type}-b&nonce={nonce}"
        foreign = await forward(Request("GET", f"/update/newest/manifest?{query}", []))
        await foreign.read()
        statement = foreign.header(HEADER) or ""
        seen.append((body, statement, nonce))
        return Response(200, [*response.without(HEADER), (HEADER, statement)], body)

    device = lab.device()
    with mitm(lab, borrow) as proxy:
        refused(device, "freshness_invalid", client=lab.client_via(proxy.url, device))
    body, statement, nonce = seen[0]
    lab.assert_c_rejects(device, body, None, "freshness_invalid", freshness=statement, nonce=nonce)


def test_compromised_freshness_key_is_bounded_by_exp(lab: Lab) -> None:
    """The worst case: the attacker holds the server's TLS and freshness keys and keeps
    serving release 2 (expiring in one hour) with valid statements after release 3 is out.

    A device without a clock cannot tell (documented limit). A device with a trusted clock
    is told "up to date" only until ``exp``; after it, the freeze is reported as ``expired``,
    both for the installed release and for a stale release it has not installed yet."""
    two = lab.publish("1.1.0", 2, expires_in=3600)
    frozen = lab.device("frozen")
    assert frozen.perform_update().result == "updated"
    lab.publish("1.2.0", 3, expires_in=3600)
    freshness_key = load_private_key(
        Role.FRESHNESS, read_key_file(lab.pki.keys / "freshness_key.pem")
    )
    stale = two.manifest.read_bytes()

    async def freeze(request: Request, forward: Forward) -> Response:
        if "/manifest" not in request.target:
            return await forward(request)
        statement = FreshnessSigner(freshness_key).sign(
            device_type=lab.device_type,
            seq=2,
            manifest_sha256=hashlib.sha256(stale).hexdigest(),
            nonce=nonce_of(request),
            iat=int(time.time()),
            device_id=device_id_of(request),
        )
        return Response(200, [(HEADER, statement)], stale)

    later = int(time.time()) + 7200
    behind = lab.device("behind")
    with mitm(lab, freeze) as attacker:
        # no clock: the freeze goes unnoticed (up to date; the behind device even installs 2)
        frozen.clock = lambda: None
        assert frozen.check_for_update(lab.client_via(attacker.url, frozen)).result == "up-to-date"
        # a trusted clock before exp: still within the author's bound
        frozen.clock = lambda: int(time.time())
        assert frozen.check_for_update(lab.client_via(attacker.url, frozen)).result == "up-to-date"
        # after exp the device knows it is being held back
        frozen.clock = lambda: later
        result = refused(frozen, "expired", client=lab.client_via(attacker.url, frozen))
        assert "withheld" in result.detail
        behind.clock = lambda: later
        refused(behind, "expired", client=lab.client_via(attacker.url, behind))
    # the C core applies §6 to the device that has not installed release 2 yet
    lab.assert_c_rejects(behind, two.manifest, None, "expired", now=later)


def test_c_core_reports_a_freeze_on_the_installed_release(lab: Lab) -> None:
    two = lab.publish("1.1.0", 2, expires_in=3600)
    device = lab.device()
    assert device.perform_update().result == "updated"
    lab.assert_c_rejects(device, two.manifest, None, "expired", now=int(time.time()) + 7200)
