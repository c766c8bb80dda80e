""" "Nothing new" without proof (issue 14, class 2).

Before, a 404 to a poll was taken as "up to date" with no freshness check at all: a mirror
holding no key could hide every release from a device that requires freshness, and even an
attacker who holds the freshness key escaped the manifest's ``exp`` bound by answering 404
instead of replaying the old manifest. Now a 404 is believed only with a statement answering
``none`` for the device's nonce, a 304 only with one answering ``newest`` for the cached
manifest, and the installed release's ``exp`` bounds both (docs/formats.md §7)."""

from __future__ import annotations

import time

from secure_fota.crypto.freshness import FreshnessSigner
from secure_fota.crypto.keys import Role, load_private_key
from secure_fota.keys.directory import read_key_file
from tests.attacks.conftest import Lab, refused
from tests.attacks.infra import Forward, Mitm, Request, Response, run_c_tool
from tests.attacks.test_freeze import HEADER, device_id_of, nonce_of


def mitm(lab: Lab, handler: object) -> Mitm:
    return Mitm(lab.server.url, lab.pki.ca_file, lab.pki.server_cert, lab.pki.server_key, handler)  # type: ignore[arg-type]


def hide_releases(keep_statement: bool):  # type: ignore[no-untyped-def]
    """A mirror that answers every poll 404, with the real server's statement for the
    device's nonce (which now answers ``newest``) or with none."""

    async def handler(request: Request, forward: Forward) -> Response:
        if "/manifest" not in request.target:
            return await forward(request)
        real = await forward(request)
        await real.read()
        statement = real.header(HEADER)
        headers = [(HEADER, statement)] if keep_statement and statement else []
        return Response(404, headers, b'{"error":"no release","field":null}')

    return handler


def test_mirror_hides_every_release_with_a_bare_404(lab: Lab) -> None:
    lab.publish("1.1.0", 2)
    device = lab.device()
    with mitm(lab, hide_releases(keep_statement=False)) as mirror:
        refused(
            device, "freshness_invalid", update=False, client=lab.client_via(mirror.url, device)
        )


def test_mirror_hides_a_release_behind_the_servers_own_statement(lab: Lab) -> None:
    lab.publish("1.1.0", 2)
    device = lab.device()
    with mitm(lab, hide_releases(keep_statement=True)) as mirror:
        refused(device, "stale_manifest", update=False, client=lab.client_via(mirror.url, device))


def test_a_genuine_none_is_up_to_date(lab: Lab) -> None:
    """The real server, no release for this type: a signed ``none``, the device believes it."""
    device = lab.device()
    assert device.config.require_freshness
    result = device.check_for_update()
    assert result.result == "up-to-date" and "no release" in result.detail, result


def test_freshness_key_holder_answering_404_is_bounded_by_exp(lab: Lab) -> None:
    """The attacker holds the freshness key and answers "none" forever after release 2 (one
    hour of ``exp``) is installed: fine before ``exp``, ``expired`` after it on a trusted clock."""
    lab.publish("1.1.0", 2, expires_in=3600)
    device = lab.device()
    assert device.perform_update().result == "updated"
    lab.publish("1.2.0", 3, expires_in=3600)
    key = load_private_key(Role.FRESHNESS, read_key_file(lab.pki.keys / "freshness_key.pem"))

    async def none_forever(request: Request, forward: Forward) -> Response:
        if "/manifest" not in request.target:
            return await forward(request)
        statement = FreshnessSigner(key).sign_none(
            device_type=lab.device_type, nonce=nonce_of(request), device_id=device_id_of(request)
        )
        return Response(404, [(HEADER, statement)], b"")

    later = int(time.time()) + 7200
    with mitm(lab, none_forever) as attacker:
        device.clock = lambda: int(time.time())
        ok = device.check_for_update(lab.client_via(attacker.url, device))
        assert ok.result == "up-to-date", ok
        device.clock = lambda: later
        result = refused(device, "expired", client=lab.client_via(attacker.url, device))
        assert "withheld" in result.detail
        # the C core: the record of the installed release's manifest, a 404 with "none"
        statement = FreshnessSigner(key).sign_none(device_type=lab.device_type, nonce="ab" * 16)
        folder = lab.root / "c-none"
        folder.mkdir()
        (folder / "s.jws").write_text(statement)
        facts = device.facts()
        verdict = run_c_tool(
            device.state.keys, device.state.manifest_cache, None,
            device_type=facts.device_type, installed_seq=facts.installed_seq,
            secure_version=facts.secure_version, chip_id=facts.chip_id, now=later,
            freshness=folder / "s.jws", nonce="ab" * 16, extra=("--none",),
        ) if _c_tool() else None  # fmt: skip
    if verdict is not None:
        assert verdict["accept"] is False and verdict["reason"] == "expired", verdict


def test_304_for_a_release_below_the_installed_one_is_a_rollback(lab: Lab) -> None:
    """The C glue keeps the record of the manifest it last judged "already installed"; after
    an update to release 2 it still holds release 1's. A server (or its freshness key) that
    answers that device's If-None-Match with 304 and a genuine statement for release 1 is
    rolling it back: so_decide_unchanged says ``rollback`` (it answered "up to date")."""
    one = lab.publish("1.0.0", 1)
    device = lab.device()
    assert device.check_for_update().result == "up-to-date"  # release 1 judged installed
    lab.publish("1.1.0", 2)
    assert device.perform_update().result == "updated"
    key = load_private_key(Role.FRESHNESS, read_key_file(lab.pki.keys / "freshness_key.pem"))
    import hashlib

    nonce = "cd" * 16
    statement = FreshnessSigner(key).sign(
        device_type=lab.device_type, seq=1, nonce=nonce,
        manifest_sha256=hashlib.sha256(one.manifest.read_bytes()).hexdigest(),
    )  # fmt: skip
    if not _c_tool():
        return
    folder = lab.root / "c-304"
    folder.mkdir()
    (folder / "s.jws").write_text(statement)
    facts = device.facts()
    assert facts.installed_seq == 2
    verdict = run_c_tool(
        device.state.keys, one.manifest, None, device_type=facts.device_type,
        installed_seq=2, secure_version=facts.secure_version, chip_id=facts.chip_id,
        freshness=folder / "s.jws", nonce=nonce, extra=("--unchanged",),
    )  # fmt: skip
    assert verdict["accept"] is False and verdict["reason"] == "rollback", verdict


def _c_tool() -> bool:
    from tests.attacks.infra import HOST_TOOL

    return HOST_TOOL.exists()
