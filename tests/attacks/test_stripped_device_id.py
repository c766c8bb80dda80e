"""Keeping a device out of a rollout by changing the id its poll sends.

A staged rollout offers its release to the devices of its current stage, decided by the
``deviceId`` of each poll. A path that terminates the device's TLS with a certificate from the
device's pinned CA (a mirror, a corporate proxy) but holds no key of ours could strip that id,
or swap in the id of a device outside the stage: the server then answers, truthfully for that
poll, with the previous release and a genuine freshness statement — and before, the statement
named no device, so the device took "nothing new" and stayed behind while its stage moved on.
Now the server's statement names the id the poll sent, and a device that sent its id accepts
only a statement naming exactly it (docs/formats.md §7 step 2): the Python reference device and
the ESP32 C core refuse with ``freshness_invalid``."""

from __future__ import annotations

import secrets
from urllib.parse import parse_qsl, urlencode, urlsplit

import httpx

from secure_fota.server.fleet import in_stage
from secure_fota.wire import API_V1
from tests.attacks.conftest import Lab, refused
from tests.attacks.infra import ADMIN, ADMIN_PASSWORD, Forward, Request, Response
from tests.attacks.test_freeze import HEADER, mitm, nonce_of, payload

DEVICE_ID = "unit-in-stage"


def _device_id(percent: int, *, inside: bool) -> str:
    """The first id ``unit-NNNNN`` inside (or outside) a stage of ``percent`` % of the fleet."""
    for number in range(10_000):
        candidate = f"unit-{number:05d}"
        if in_stage(candidate, percent) is inside:
            return candidate
    raise AssertionError("no such device id")


def _start_rollout(lab: Lab, seq: int, percent: int) -> None:
    with lab.server.http() as http:
        response = http.post(
            f"{API_V1}/rollouts",
            auth=(ADMIN, ADMIN_PASSWORD),
            json={"device_type": lab.device_type, "seq": seq, "stages": [percent, 100]},
        )
    assert response.status_code in (200, 201), response.text


def _with_id(target: str, device_id: str | None) -> str:
    """``target`` with its ``deviceId`` removed (None) or replaced."""
    parts = urlsplit(target)
    query = [(k, v) for k, v in parse_qsl(parts.query) if k != "deviceId"]
    if device_id is not None:
        query.append(("deviceId", device_id))
    return f"{parts.path}?{urlencode(query)}"


def _poll(lab: Lab, device_id: str | None) -> httpx.Response:
    params = {"deviceType": lab.device_type, "nonce": secrets.token_hex(16)}
    if device_id is not None:
        params["deviceId"] = device_id
    with lab.server.http() as http:
        return http.get("/update/newest/manifest", params=params)


def test_statements_name_the_id_the_poll_sent(lab: Lab) -> None:
    lab.publish("1.0.0", 1)
    named, anonymous = _poll(lab, DEVICE_ID), _poll(lab, None)
    assert named.status_code == anonymous.status_code == 200
    assert payload(named.headers[HEADER])["device_id"] == DEVICE_ID
    assert "device_id" not in payload(anonymous.headers[HEADER])
    with lab.server.http() as http:
        missing = http.get(
            "/update/newest/manifest",
            params={"deviceType": lab.device_type + "-none", "nonce": secrets.token_hex(16),
                    "deviceId": DEVICE_ID},
        )  # fmt: skip
    assert missing.status_code == 404
    assert payload(missing.headers[HEADER]) | {"iat": 0} == {
        "answer": "none", "device_type": lab.device_type + "-none",
        "nonce": payload(missing.headers[HEADER])["nonce"], "iat": 0, "device_id": DEVICE_ID,
    }  # fmt: skip


def test_a_path_that_strips_or_swaps_the_id_cannot_keep_a_device_out_of_its_stage(
    lab: Lab,
) -> None:
    lab.publish("1.0.0", 1)
    lab.publish("1.1.0", 2)
    percent = 10
    inside, outside = _device_id(percent, inside=True), _device_id(percent, inside=False)
    _start_rollout(lab, 2, percent)
    device = lab.device(device_id=inside)
    seen: list[tuple[str, str, bytes]] = []

    def rewriting(new_id: str | None) -> object:
        async def handler(request: Request, forward: Forward) -> Response:
            if "/update/newest/manifest" not in request.target:
                return await forward(request)
            changed = Request(request.method, _with_id(request.target, new_id), request.headers)
            response = await forward(changed)
            await response.read()
            assert isinstance(response.body, bytes)
            seen.append((response.header(HEADER) or "", nonce_of(request), response.body))
            return response

        return handler

    for new_id in (None, outside):
        with mitm(lab, rewriting(new_id)) as proxy:
            # the server answered the changed poll with release 1 (a genuine statement for it)
            refused(
                device, "freshness_invalid", update=False, client=lab.client_via(proxy.url, device)
            )
        statement, nonce, manifest = seen[-1]
        assert payload(statement)["seq"] == 1
        assert payload(statement).get("device_id") == new_id
        lab.assert_c_rejects(
            device, manifest, None, "freshness_invalid", freshness=statement, nonce=nonce,
            device_id=inside,
        )  # fmt: skip
    # on a path that leaves the poll alone, the device is offered its stage's release
    result = device.check_for_update()
    assert result.result == "update-available", result
    assert result.claims is not None and result.claims.seq == 2
