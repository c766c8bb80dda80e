"""A compressed answer: the device asks for ``Accept-Encoding: identity`` and refuses any
``Content-Encoding`` (``unsupported_encoding``) without inflating a byte (issue 14, class 8;
docs/SECURITY.md "Compressed answers"). Before, httpx asked for gzip and inflated a 32 KiB
bomb to 32 MiB before the 16 KiB manifest bound applied."""

from __future__ import annotations

import gzip
import tracemalloc

import pytest

from secure_fota.errors import TransportError
from secure_fota.reasons import Reason
from tests.attacks.conftest import Lab
from tests.attacks.infra import Mitm, Request, Response, ScriptedServer, answer

#: 32 MiB of zeros, gzip-compressed (about 32 KiB on the wire)
BOMB = gzip.compress(b"\0" * (32 * 1024 * 1024), compresslevel=9)


@pytest.mark.parametrize("coding", ["gzip", "deflate", "br", "identity, gzip", "x-unknown"])
def test_a_compressed_manifest_is_refused_unread(lab: Lab, coding: str) -> None:
    device = lab.device()
    headers = [("Content-Length", str(len(BOMB))), ("Content-Encoding", coding)]
    with ScriptedServer(lab.pki.server_cert, lab.pki.server_key, answer(200, headers, BOMB)) as s:
        with lab.client_via(s.url, device) as client:
            tracemalloc.start()
            try:
                with pytest.raises(TransportError) as caught:
                    device.check_for_update(client)
                _, peak = tracemalloc.get_traced_memory()
            finally:
                tracemalloc.stop()
        assert s.request_header(0, "Accept-Encoding") == "identity"
    assert caught.value.reason is Reason.UNSUPPORTED_ENCODING
    assert peak < 4 * 1024 * 1024, f"{peak} bytes allocated while refusing"


def test_a_compressed_image_is_refused(lab: Lab) -> None:
    """Through a man in the middle on the real server: the poll passes, the image comes gzipped."""
    lab.publish("1.1.0", 2)
    device = lab.device()

    async def handler(request: Request, forward: object) -> Response:
        upstream = await forward(request)  # type: ignore[operator]
        if "/binary" not in request.target:
            return upstream  # type: ignore[no-any-return]
        data = gzip.compress(await upstream.read())
        return Response(200, [("Content-Encoding", "gzip")], data)

    with (
        Mitm(
            lab.server.url, lab.pki.ca_file, lab.pki.server_cert, lab.pki.server_key, handler
        ) as m,
        lab.client_via(m.url, device) as client,
        pytest.raises(TransportError) as caught,
    ):
        device.perform_update(client=client)
    assert caught.value.reason is Reason.UNSUPPORTED_ENCODING
    assert device.installed_seq == 1
