"""Redirects (issue 14, class 7): the reference device follows the server's presigned S3
redirects (``s3_presign_downloads`` broke every update before: the device took the 302 for a
failure), HTTPS to HTTPS only, at most ``MAX_REDIRECTS`` hops, never with its token to another
origin — and what it downloads from wherever it was sent is verified end to end."""

from __future__ import annotations

import contextlib
import secrets
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from secure_fota.device.transport import ServerClient
from secure_fota.devtools.harness import free_port
from secure_fota.errors import TransportError
from secure_fota.limits import MAX_REDIRECTS
from secure_fota.reasons import Reason
from secure_fota.tls_client import client_context
from tests.attacks.conftest import Lab, Pki, refused, server_for
from tests.attacks.infra import Forward, Mitm, Request, Response, ScriptedServer, answer


@contextlib.contextmanager
def moto_over_tls(pki: Pki, root: Path) -> Iterator[str]:
    """moto's standalone S3 server with a certificate from the devices' CA (a CDN/S3 endpoint
    the device can verify)."""
    pytest.importorskip("moto.server", reason="moto[server] is not installed")
    cert, key = pki.ca.issue(root / "s3-tls", ["127.0.0.1"], stem="s3")
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port),
         "-c", str(cert), "-k", str(key)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    endpoint = f"https://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    try:
        while True:
            try:
                httpx.get(endpoint + "/moto-api/", verify=client_context(pki.ca_file), timeout=1)
                break
            except httpx.TransportError:
                if time.monotonic() > deadline or process.poll() is not None:
                    pytest.fail("moto server did not start")
                time.sleep(0.1)
        yield endpoint
    finally:
        process.terminate()
        process.wait(10)


def test_presigned_s3_download_is_followed_and_verified(pki: Pki, tmp_path: Path) -> None:
    import boto3

    with moto_over_tls(pki, tmp_path) as s3:
        bucket = f"fota-{secrets.token_hex(4)}"
        options = {"endpoint_url": s3, "region_name": "us-east-1", "verify": str(pki.ca_file),
                   "aws_access_key_id": "testing", "aws_secret_access_key": "testing"}  # fmt: skip
        boto3.client("s3", **options).create_bucket(Bucket=bucket)
        env = {
            "FOTA_STORAGE": "s3", "FOTA_S3_ENDPOINT_URL": s3, "FOTA_S3_BUCKET": bucket,
            "FOTA_S3_ACCESS_KEY_ID": "testing", "FOTA_S3_SECRET_ACCESS_KEY": "testing",
            "FOTA_S3_PRESIGN_DOWNLOADS": "true", "AWS_CA_BUNDLE": str(pki.ca_file),
        }  # fmt: skip
        server = server_for(tmp_path / "s3-server", pki, env=env).setup().start()
        try:
            lab = Lab(tmp_path, pki, server, f"presign-{secrets.token_hex(3)}")
            lab.publish("1.1.0", 2)
            device = lab.device()
            with lab.server.http() as http:
                first = http.get(f"/api/v1/device-types/{lab.device_type}/releases/2/binary")
            assert first.status_code == 302 and first.headers["location"].startswith(s3)
            result = device.perform_update()
            assert result.result == "updated", result
            assert device.installed_seq == 2
        finally:
            server.stop()


def test_token_never_follows_a_redirect_to_another_origin(lab: Lab) -> None:
    device = lab.device()
    with ScriptedServer(lab.pki.server_cert, lab.pki.server_key, answer(404, [])) as elsewhere:
        hop = answer(302, [("Location", f"{elsewhere.url}/update/newest/manifest?x=1"),
                           ("Content-Length", "0")])  # fmt: skip
        with ScriptedServer(lab.pki.server_cert, lab.pki.server_key, hop) as first:
            client = ServerClient(first.url, ca_file=device.state.ca, token="device-secret")
            with client:
                client.newest_manifest(lab.device_type, nonce=None, etag=None)
            assert first.request_header(0, "Authorization") == "Bearer device-secret"
        assert len(elsewhere.requests) == 1
        assert elsewhere.request_header(0, "Authorization") is None
        assert b"device-secret" not in elsewhere.requests[0]


def test_redirect_to_plain_http_is_refused(lab: Lab) -> None:
    device = lab.device()
    hop = answer(302, [("Location", "http://127.0.0.1:9/update/newest/manifest"),
                       ("Content-Length", "0")])  # fmt: skip
    with (
        ScriptedServer(lab.pki.server_cert, lab.pki.server_key, hop) as server,
        lab.client_via(server.url, device) as client,
        pytest.raises(TransportError) as caught,
    ):
        device.check_for_update(client)
    assert caught.value.reason is Reason.REDIRECT_REFUSED


def test_redirect_with_credentials_in_the_url_is_refused(lab: Lab) -> None:
    device = lab.device()
    hop = answer(307, [("Location", "https://user:pw@127.0.0.1:1/x"), ("Content-Length", "0")])
    with (
        ScriptedServer(lab.pki.server_cert, lab.pki.server_key, hop) as server,
        lab.client_via(server.url, device) as client,
        pytest.raises(TransportError) as caught,
    ):
        device.check_for_update(client)
    assert caught.value.reason is Reason.REDIRECT_REFUSED


def test_endless_redirects_stop_at_the_bound(lab: Lab) -> None:
    device = lab.device()
    hop = answer(302, [("Location", "/update/newest/manifest?again=1"), ("Content-Length", "0")])
    with ScriptedServer(lab.pki.server_cert, lab.pki.server_key, hop) as server:
        with lab.client_via(server.url, device) as client, pytest.raises(TransportError) as caught:
            device.check_for_update(client)
        assert len(server.requests) == MAX_REDIRECTS + 1
    assert caught.value.reason is Reason.REDIRECT_REFUSED


def test_a_redirect_to_other_bytes_is_still_refused_by_the_digests(lab: Lab) -> None:
    """A mirror redirects the image to a host serving a tampered copy of the same size."""
    files = lab.publish("1.1.0", 2)
    evil = bytearray(files.binary.read_bytes())
    evil[1000] ^= 1
    body = bytes(evil)
    served = answer(200, [("Content-Length", str(len(body)))], body)
    with ScriptedServer(lab.pki.server_cert, lab.pki.server_key, served) as elsewhere:

        async def redirect_image(request: Request, forward: Forward) -> Response:
            if "/binary" in request.target:
                return Response(302, [("Location", f"{elsewhere.url}/cdn/app.bin")], b"")
            return await forward(request)

        device = lab.device()
        with Mitm(lab.server.url, lab.pki.ca_file, lab.pki.server_cert, lab.pki.server_key,
                  redirect_image) as mirror:  # fmt: skip
            refused(device, "enc_digest_mismatch", client=lab.client_via(mirror.url, device))
        assert elsewhere.requests, "the device never followed the redirect"


def test_device_init_refuses_plain_http(lab: Lab) -> None:
    """``fota device init --server http://...`` was accepted: the device's token and polls in
    clear, any host on the path answering for the server. Refused unless a loudly named
    test-only flag is given."""
    from secure_fota.cli.main import main

    args = [
        "device", "init", "--state", str(lab.root / "plain"), "--device-type", lab.device_type,
        "--keys", str(lab.pki.keys), "--server", "http://127.0.0.1:8080",
        "--firmware", str(lab.image("1.0.0")), "--seq", "1",
    ]  # fmt: skip
    with pytest.raises(SystemExit) as refused_exit:
        main(args)
    assert refused_exit.value.code == 2
    assert not (lab.root / "plain" / "device.json").exists()
    with pytest.raises(SystemExit) as scheme_exit:
        main([*args[:-5], "ftp://127.0.0.1", *args[-4:]])
    assert scheme_exit.value.code == 2
    main([*args, "--insecure-plain-http-for-tests"])  # the test rig's way in
    assert (lab.root / "plain" / "device.json").exists()
