"""Mix-and-match: the manifest of one genuine release with the binary of another."""

from __future__ import annotations

from tests.attacks.conftest import Lab, refused
from tests.attacks.infra import Forward, Mitm, Request, Response


def test_manifest_of_one_release_with_the_binary_of_another(lab: Lab) -> None:
    device = lab.device()
    two = lab.release(lab.image("1.1.0"), 2)
    three = lab.release(lab.image("1.2.0"), 3)
    assert (
        lab.upload_bytes(three.manifest.read_bytes(), two.binary.read_bytes(), 3).status_code == 200
    )
    refused(device, "enc_digest_mismatch")
    lab.assert_c_rejects(device, three.manifest, two.binary, "enc_digest_mismatch")


def test_the_seeds_toctou_window_is_closed(lab: Lab) -> None:
    """The seed fetched "newest manifest" and "newest binary" in two requests; a release
    published between them paired manifest 2 with binary 3. Our device downloads the binary
    by the manifest's seq, so the pair stays consistent."""
    device = lab.device()
    lab.publish("1.1.0", 2)
    three = lab.release(lab.image("1.2.0"), 3)

    async def publish_between(request: Request, forward: Forward) -> Response:
        response = await forward(request)
        if request.target.startswith("/update/newest/manifest") and response.status == 200:
            await response.read()
            lab.upload(three)  # lands after the manifest left, before the binary is asked for
        return response

    with Mitm(lab.server.url, lab.pki.ca_file, lab.pki.server_cert, lab.pki.server_key,
              publish_between) as mitm:  # fmt: skip
        result = device.perform_update(client=lab.client_via(mitm.url, device))
    assert result.result == "updated", result
    assert device.status()["seq"] == 2  # the release the manifest described, not "newest"
    assert device.perform_update().result == "updated"
    assert device.status()["seq"] == 3


def test_newest_binary_fallback_cannot_mix_releases(lab: Lab) -> None:
    """A server without the by-id route (a seed server) makes the device fall back to
    "newest binary", which by then belongs to release 3: the digest refuses the pair."""
    device = lab.device()
    lab.publish("1.1.0", 2)
    three = lab.release(lab.image("1.2.0"), 3)
    uploaded = False

    async def seed_like(request: Request, forward: Forward) -> Response:
        nonlocal uploaded
        if request.target.startswith("/api/v1/"):
            if not uploaded:
                lab.upload(three)
                uploaded = True
            return Response(404, [("content-type", "application/json")], b'{"error":"x"}')
        return await forward(request)

    with Mitm(lab.server.url, lab.pki.ca_file, lab.pki.server_cert, lab.pki.server_key,
              seed_like) as mitm:  # fmt: skip
        refused(device, "enc_digest_mismatch", client=lab.client_via(mitm.url, device))
    with lab.server.http() as http:
        path = f"/api/v1/device-types/{lab.device_type}/releases/2/manifest"
        two_manifest = http.get(path).content
    lab.assert_c_rejects(device, two_manifest, three.binary, "enc_digest_mismatch")
