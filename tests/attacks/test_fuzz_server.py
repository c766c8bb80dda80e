"""The running server against generated input: schemathesis from its own /openapi.json (no 5xx,
answers that match the schema), and hypothesis-made query strings. Bounded for `make test`;
a longer run: SCHEMATHESIS_EXAMPLES=500 pytest tests/attacks/test_fuzz_server.py."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import httpx
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.attacks.infra import ADMIN, ADMIN_PASSWORD, ServerProcess
from tests.integration.server.conftest import fake_release

EXAMPLES = int(os.environ.get("SCHEMATHESIS_EXAMPLES", "10"))


_SEEDED_TYPE = "schemathesis-seeded"
_CONFIG = f"""
[dictionaries.types]
values = ["{_SEEDED_TYPE}"]
[dictionaries.ids]
values = [1, 2, 3]
[parameters]
"path.device_type" = {{ dictionary = "types", probability = 0.5 }}
"path.release_id" = {{ dictionary = "ids", probability = 0.5 }}
"query.deviceType" = {{ dictionary = "types", probability = 0.5 }}
"""


def test_schemathesis_against_openapi(server: ServerProcess, tmp_path: Path) -> None:
    """`st run` (schemathesis' own CLI) on the server's /openapi.json: every operation, as an
    admin, with the checks below; any failure fails the test with schemathesis' report.
    Half of the generated device types and ids name three seeded releases, so that reads,
    downloads, yank, unyank and delete of existing releases are exercised too."""
    with server.http() as http:
        for seq in (1, 2, 3):
            manifest, binary = fake_release(seq)
            answer = http.post(
                "/uploadFile", auth=(ADMIN, ADMIN_PASSWORD),
                data={"id": str(seq), "deviceType": _SEEDED_TYPE, "fwName": "app"},
                files={"manifestFile": ("m", manifest), "firmwareFile": ("b", binary)},
            )  # fmt: skip
            assert answer.status_code == 200, answer.text
    config = tmp_path / "schemathesis.toml"
    config.write_text(_CONFIG)
    done = subprocess.run(
        [
            str(Path(sys.executable).parent / "st"),
            "--config-file",
            str(config),
            "run",
            f"{server.url}/openapi.json",
            "--url",
            server.url,
            "--tls-verify",
            str(server.ca_file),
            "--auth",
            f"{ADMIN}:{ADMIN_PASSWORD}",
            "--max-examples",
            str(EXAMPLES),
            "--checks",
            "not_a_server_error,status_code_conformance,content_type_conformance,"
            "response_schema_conformance,response_headers_conformance",
            "--generation-deterministic",
            "--workers",
            "2",
        ],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
        cwd=tmp_path,
    )
    report = done.stdout[-6000:] + done.stderr[-2000:]
    print(report[-2500:])
    assert done.returncode == 0, report
    assert re.search(r"(\d+) generated, \1 passed", report), report


_TEXT = st.text(alphabet=st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=80)


@settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))
@given(
    st.dictionaries(
        st.sampled_from(["deviceType", "nonce", "id", "fwName", "x"]), _TEXT, max_size=3
    ),
    st.sampled_from(["/update/newest/manifest", "/update/newest/binary"]),
)
def test_query_parameters(server: ServerProcess, params: dict[str, str], path: str) -> None:
    with server.http() as http:
        answer = http.get(path, params=params)
    expected = (200, 404, 422) if "deviceType" in params else (400,)
    assert answer.status_code in expected, (params, answer.status_code, answer.text)
    if answer.status_code != 200:
        assert set(answer.json()) == {"error", "field"}


@settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck))
@given(st.lists(st.binary(max_size=200) | st.sampled_from([
    b"--X", b"--X--", b'Content-Disposition: form-data; name="manifestFile"; filename="a"',
    b'Content-Disposition: form-data; name="firmwareFile"; filename="../b"',
    b'Content-Disposition: form-data; name="id"', b"1", b"", b"\xcf\xb6\x88\x07" + bytes(508),
]), max_size=16), st.sampled_from(["multipart/form-data; boundary=X", "multipart/form-data",
    "text/plain", "multipart/form-data; boundary=\"X\""]))  # fmt: skip
def test_multipart_bodies(server: ServerProcess, lines: list[bytes], content_type: str) -> None:
    with server.http() as http:
        answer = http.post(
            "/uploadFile?deviceType=fuzz&fwName=app&id=1",
            content=b"\r\n".join(lines),
            headers={"content-type": content_type},
            auth=(ADMIN, ADMIN_PASSWORD),
        )
    assert answer.status_code < 500, answer.text
    assert answer.status_code in (200, 400, 409, 413, 415, 422), answer.text
    assert isinstance(answer, httpx.Response)
