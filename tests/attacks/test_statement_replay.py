"""Replaying a freshness statement for an old release (issue 14, class 1).

Before, every manifest endpoint signed a statement for any nonce it was given, the
per-release URLs included: a mirror holding no key forwarded the device's nonce to
``/api/v1/device-types/T/releases/1/manifest?nonce=N`` and got release 1's manifest with a
genuine statement vouching for it — a perfect "release 1 is newest" for that poll, freezing the
device after release 2 was out. Now only the newest polls sign (docs/formats.md §7), a
per-release URL answers 422 to a nonce, and a statement states an explicit answer."""

from __future__ import annotations

import secrets
from urllib.parse import urlencode

from tests.attacks.conftest import Lab, refused
from tests.attacks.infra import Forward, Mitm, Request, Response
from tests.attacks.test_freeze import HEADER, nonce_of, payload


def mitm(lab: Lab, handler: object) -> Mitm:
    return Mitm(lab.server.url, lab.pki.ca_file, lab.pki.server_cert, lab.pki.server_key, handler)  # type: ignore[arg-type]


def test_per_release_manifest_signs_nothing(lab: Lab) -> None:
    lab.publish("1.1.0", 2)
    nonce = secrets.token_hex(16)
    with lab.server.http() as http:
        by_id = http.get(
            f"/api/v1/device-types/{lab.device_type}/releases/2/manifest", params={"nonce": nonce}
        )
        plain = http.get(f"/api/v1/device-types/{lab.device_type}/releases/2/manifest")
    assert by_id.status_code == 422 and by_id.json()["field"] == "nonce"
    assert HEADER not in by_id.headers
    assert plain.status_code == 200 and HEADER not in plain.headers


def test_mirror_pairs_an_old_manifest_with_a_statement_for_it(lab: Lab) -> None:
    """The mirror answers the device's poll with release 1 fetched by id with the device's own
    nonce (what the server signed there before): the device must not believe 1 is newest."""
    lab.publish("1.0.0", 1)
    lab.publish("1.1.0", 2)
    answers: list[Response] = []

    async def old_by_id(request: Request, forward: Forward) -> Response:
        if "/update/newest/manifest" not in request.target:
            return await forward(request)
        query = urlencode({"nonce": nonce_of(request)})
        target = f"/api/v1/device-types/{lab.device_type}/releases/1/manifest"
        old = await forward(Request("GET", f"{target}?{query}", []))
        await old.read()
        answers.append(old)
        statement = old.header(HEADER)
        if old.status != 200:  # refused: release 1's manifest without a statement, then
            old = await forward(Request("GET", target, []))
            await old.read()
        headers = [(HEADER, statement)] if statement else []
        return Response(200, headers, old.body)

    device = lab.device()
    with mitm(lab, old_by_id) as mirror:
        refused(
            device, "freshness_invalid", update=False, client=lab.client_via(mirror.url, device)
        )
    assert answers and answers[0].status == 422, "the server signed a statement for release 1"


def test_statement_says_which_answer_it_gives(lab: Lab) -> None:
    """The newest poll's statement answers ``newest`` (with the seq and digest it vouches for);
    a type without releases gets ``none`` — and neither can stand for the other."""
    device = lab.device()
    nonce = secrets.token_hex(16)
    params = {"deviceType": lab.device_type, "nonce": nonce, "deviceId": device.config.device_id}
    with lab.server.http() as http:
        nothing = http.get("/update/newest/manifest", params=params)
        lab.publish("1.1.0", 2)
        newest = http.get("/update/newest/manifest", params=params)
    assert nothing.status_code == 404
    none = payload(nothing.headers[HEADER])
    assert none == {
        "answer": "none", "device_type": lab.device_type, "nonce": nonce, "iat": none["iat"],
        "device_id": device.config.device_id,
    }  # fmt: skip
    assert newest.status_code == 200
    assert payload(newest.headers[HEADER])["answer"] == "newest"
    assert payload(newest.headers[HEADER])["seq"] == 2
    # "no release" recorded earlier, next to the manifest: stale in both devices
    lab.assert_c_rejects(
        device, newest.content, None, "stale_manifest", freshness=nothing.headers[HEADER],
        nonce=nonce,
    )  # fmt: skip
    from secure_fota.errors import ReleaseRejected
    from secure_fota.policy.verifier import check_freshness, open_checked

    claims = open_checked(newest.content, device.keys).claims
    try:
        check_freshness(
            nothing.headers[HEADER], newest.content, claims, device.keys,
            nonce=nonce, device_type=lab.device_type, device_id=device.config.device_id,
        )  # fmt: skip
    except ReleaseRejected as exc:
        assert exc.reason.value == "stale_manifest"
    else:
        raise AssertionError("a 'none' statement vouched for a manifest")
