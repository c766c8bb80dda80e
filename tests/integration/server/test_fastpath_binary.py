"""The fast path for images by release id and the seed's newest image
(secure_fota.server.fastpath_binary): over a real socket it answers exactly what the route
answers (status, every header but Date, in order, and body), and hands every request it is
unsure about to the route."""

from __future__ import annotations

import hashlib
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from secure_fota.server import app as app_module
from secure_fota.server.fastpath_binary import BINARY_TEMPLATE
from secure_fota.wire import NEWEST_BINARY
from tests.integration.server.conftest import (
    Harness,
    fake_release,
    harness,
    seed_upload,
    spy_answers,
)

DEVICE_TYPE = "range-sensor"
#: id 1 fits one body message (and is sent whole by the fast path), id 2 is streamed whole
SMALL_ID, LARGE_ID = 1, 2
RELEASES = {SMALL_ID: fake_release(SMALL_ID, 4096), LARGE_ID: fake_release(LARGE_ID, 300 * 1024)}
CHUNK = 16 * 1024


def url(seq: int, device_type: str = DEVICE_TYPE) -> str:
    return f"/api/v1/device-types/{device_type}/releases/{seq}/binary"


def newest_type(seq: int) -> str:
    """A device type whose only (so newest) release is RELEASES[seq]."""
    return f"newest-{seq}"


def newest_url(device_type: str) -> str:
    return f"{NEWEST_BINARY}?deviceType={device_type}"


def image_url(kind: str, seq: int) -> str:
    return url(seq) if kind == "id" else newest_url(newest_type(seq))


def etag(seq: int) -> str:
    return f'"{hashlib.sha256(RELEASES[seq][1]).hexdigest()}"'


@pytest.fixture(scope="module")
def fast(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory, tls_dir: Path
) -> Iterator[Harness]:
    with harness(request, tmp_path_factory.mktemp("fastpath-binary"), tls=tls_dir) as h:
        for seq, (manifest, binary) in RELEASES.items():
            for device_type in (DEVICE_TYPE, newest_type(seq)):
                response = seed_upload(
                    h.http,
                    h.credentials.uploader,
                    seq=seq,
                    device_type=device_type,
                    manifest=manifest,
                    binary=binary,
                )
                assert response.status_code == 200, response.text
            assert h.http.get(url(seq)).content == binary  # the route loads it into memory
        yield h


@pytest.fixture
def answered(monkeypatch: pytest.MonkeyPatch) -> list[bool]:
    """What the fast path returned for each request to it (True: it answered)."""
    return spy_answers(monkeypatch, app_module.BinaryAnswerer)


def routed(
    monkeypatch: pytest.MonkeyPatch, h: Harness, method: str, path: str, headers: Any
) -> httpx.Response:
    """The same request with the fast path switched off: FastAPI's route answers it."""

    async def declined(self: app_module.BinaryAnswerer, *args: Any) -> bool:  # noqa: ARG001
        return False

    with monkeypatch.context() as patch:
        patch.setattr(app_module.BinaryAnswerer, "__call__", declined)
        return h.http.request(method, path, headers=headers)


def _headers(response: httpx.Response) -> list[tuple[str, str]]:
    return [(k, v) for k, v in response.headers.multi_items() if k != "date"]


def _size(seq: int) -> int:
    return len(RELEASES[seq][1])


def cases(seq: int) -> list[tuple[str, list[tuple[str, str]]]]:
    size, tag = _size(seq), etag(seq)
    ranges = [
        "bytes=0-16383",
        f"bytes={CHUNK}-{2 * CHUNK - 1}",
        f"bytes={size - 1}-{size - 1}",  # the last byte
        f"bytes={size - 1000}-",  # open-ended
        "bytes=-100",  # suffix
        f"bytes=-{size + 5}",  # suffix longer than the image
        f"bytes=0-{size + 100}",  # end clamped
        "bytes=0-",  # everything, as a 206
        f"bytes={size}-",  # 416
        f"bytes={size}-{size + 10}",  # 416
        "bytes=-0",  # 416
        "BYTES = 1 - 2",
        "bytes=5-1",  # invalid: ignored (200)
        "bytes=0-1,4-5",  # several ranges: ignored
        "items=0-1",
        "bytes=abc",
        "bytes=",
        "bytes=" + "9" * 20 + "-",
    ]
    found: list[tuple[str, list[tuple[str, str]]]] = [("GET", []), ("HEAD", [])]
    for value in ranges:
        found += [("GET", [("range", value)]), ("HEAD", [("range", value)])]
    found += [
        ("GET", [("range", "bytes=0-99"), ("if-range", tag)]),
        ("GET", [("range", "bytes=0-99"), ("if-range", '"other"')]),
        ("GET", [("range", "bytes=0-99"), ("if-range", f"W/{tag}")]),
        ("GET", [("range", f"bytes={size}-"), ("if-range", '"other"')]),  # 200, not 416
        ("GET", [("range", f"bytes={size}-"), ("if-range", tag)]),
        ("HEAD", [("range", "bytes=0-99"), ("if-range", tag)]),
        ("GET", [("if-none-match", tag)]),
        ("GET", [("if-none-match", f"W/{tag}"), ("range", "bytes=0-99")]),
        ("GET", [("if-none-match", '"other"'), ("range", "bytes=0-99")]),
        ("HEAD", [("if-none-match", "*")]),
        ("GET", [("range", "bytes=0-9"), ("range", "bytes=10-19")]),  # repeated: the route
        ("GET", [("if-range", tag), ("if-range", tag), ("range", "bytes=0-9")]),
        ("GET", [("if-none-match", '"a"'), ("if-none-match", tag)]),
    ]
    return found


@pytest.mark.parametrize("kind", ["id", "newest"])
@pytest.mark.parametrize("seq", [SMALL_ID, LARGE_ID])
def test_answers_like_the_route(
    fast: Harness, answered: list[bool], monkeypatch: pytest.MonkeyPatch, seq: int, kind: str
):
    binary = RELEASES[seq][1]
    path = image_url(kind, seq)
    # twice: the second time plain ranged GETs are answered from what the first remembered
    for method, headers in cases(seq) + cases(seq):
        answered.clear()
        fast_answer = fast.http.request(method, path, headers=headers)
        route_answer = routed(monkeypatch, fast, method, path, headers)
        what = (kind, seq, method, headers)
        assert len(answered) == 1, what
        assert fast_answer.status_code == route_answer.status_code, what
        assert _headers(fast_answer) == _headers(route_answer), what
        assert fast_answer.content == route_answer.content, what
        # and the route itself is right (not just equal)
        if fast_answer.status_code == 206 and method == "GET":
            first, last = fast_answer.headers["content-range"].split()[1].split("/")[0].split("-")
            assert fast_answer.content == binary[int(first) : int(last) + 1], what
        # whatever fits in one body message is answered by the fast path
        length = int(fast_answer.headers.get("content-length", "0"))
        repeated = len({name for name, _ in headers}) < len(headers)
        expected = not repeated and (method == "HEAD" or length <= 256 * 1024)
        assert answered == [expected], what


@pytest.mark.parametrize("kind", ["id", "newest"])
def test_the_esp32_resumable_download(fast: Harness, answered: list[bool], kind: str):
    """secure_ota_resume.c's default: the whole image as 16 KiB ranges by release id (and
    the same over the seed's URL)."""
    binary = RELEASES[LARGE_ID][1]
    pieces = []
    for start in range(0, len(binary), CHUNK):
        end = min(start + CHUNK, len(binary)) - 1
        response = fast.http.get(
            image_url(kind, LARGE_ID), headers={"range": f"bytes={start}-{end}"}
        )
        assert response.status_code == 206
        assert response.headers["content-range"] == f"bytes {start}-{end}/{len(binary)}"
        pieces.append(response.content)
    assert b"".join(pieces) == binary
    assert answered == [True] * len(pieces)


@pytest.mark.parametrize(
    ("path", "status"),
    [
        (url(SMALL_ID, "no-such-type"), 404),
        (url(99), 404),
        (url(0), 422),
        ("/api/v1/device-types/range-sensor/releases/abc/binary", 422),
        ("/api/v1/device-types/a..b/releases/1/binary", 422),
        ("/api/v1/device-types/range-sensor/releases/1/extra/binary", 404),
        (newest_url("no-such-type"), 404),
        (newest_url("a..b"), 422),
        (NEWEST_BINARY, 400),
        (NEWEST_BINARY + "?devicetype=range-sensor", 400),
        (newest_url("range-sensor") + "&deviceType=no-such-type", 404),  # repeated: the route's
    ],
)
def test_hands_anything_else_to_the_route(
    fast: Harness, answered: list[bool], path: str, status: int
):
    response = fast.http.get(path, headers={"range": "bytes=0-9"})
    assert answered == [False]
    assert response.status_code == status
    assert "error" in response.json()


def _metric(h: Harness, name: str, *labels: str) -> float:
    for line in h.http.get("/metrics").text.splitlines():
        if line.startswith(name + "{") and all(label in line for label in labels):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


@pytest.mark.parametrize(("kind", "template"), [("id", BINARY_TEMPLATE), ("newest", NEWEST_BINARY)])
def test_counted_like_the_route(
    fast: Harness, answered: list[bool], monkeypatch: pytest.MonkeyPatch, kind: str, template: str
):
    path = image_url(kind, LARGE_ID)

    def counts() -> tuple[float, ...]:
        route = f'route="{template}"'
        return (
            _metric(fast, "fota_http_requests_total", route, 'method="GET"', 'status="206"'),
            _metric(fast, "fota_http_requests_total", route, 'method="GET"', 'status="416"'),
            _metric(fast, "fota_http_requests_total", route, 'method="HEAD"', 'status="206"'),
            _metric(fast, "fota_bytes_served_total", 'artifact="binary"'),
            _metric(fast, "fota_not_modified_total", 'artifact="binary"'),
        )

    requests = [
        ("GET", {"range": "bytes=0-16383"}),
        ("GET", {"range": "bytes=0-16383"}),  # the second time from the remembered part
        ("GET", {"range": "bytes=999999999-"}),
        ("HEAD", {"range": "bytes=0-9"}),
        ("GET", {"if-none-match": etag(LARGE_ID)}),
    ]
    deltas = []
    for send in (
        lambda method, headers: fast.http.request(method, path, headers=headers),
        lambda method, headers: routed(monkeypatch, fast, method, path, headers),
    ):
        before = counts()
        for method, headers in requests:
            send(method, headers)
        deltas.append([after - was for after, was in zip(counts(), before, strict=True)])
    assert answered == [True] * len(requests)
    assert deltas[0] == deltas[1] == [2, 1, 1, 2 * 16384, 1]


def test_newest_follows_a_new_release(fast: Harness, answered: list[bool]):
    """A remembered part belongs to one release: once a newer one is visible, the same
    Range of the newest image is the new image's bytes, and its headers name it."""
    device_type = "newest-moves"
    ranged = {"range": "bytes=100-199"}
    for seq in (1, 2):
        manifest, binary = fake_release(seq, 64 * 1024)
        response = seed_upload(
            fast.http,
            fast.credentials.uploader,
            seq=seq,
            device_type=device_type,
            manifest=manifest,
            binary=binary,
        )
        assert response.status_code == 200, response.text
        time.sleep(2 * fast.settings.cache_ttl)  # visible everywhere within cache_ttl
        fast.http.get(newest_url(device_type))  # the route loads it into memory
        for _ in range(2):
            answered.clear()
            response = fast.http.get(newest_url(device_type), headers=ranged)
            assert (response.status_code, answered) == (206, [True])
            assert response.content == binary[100:200]
            assert response.headers["x-fota-release"] == str(seq)
            assert response.headers["etag"] == f'"{hashlib.sha256(binary).hexdigest()}"'


def test_yanked_or_deleted_releases_are_not_served(fast: Harness, answered: list[bool]):
    seq = 7
    manifest, binary = fake_release(seq)
    response = seed_upload(
        fast.http,
        fast.credentials.uploader,
        seq=seq,
        device_type=DEVICE_TYPE,
        manifest=manifest,
        binary=binary,
    )
    assert response.status_code == 200, response.text
    api = f"/api/v1/device-types/{DEVICE_TYPE}/releases/{seq}"
    ranged = {"range": "bytes=0-99"}

    def get() -> httpx.Response:
        answered.clear()
        return fast.http.get(url(seq), headers=ranged)

    get()  # loads the image into memory
    response = get()
    assert (response.status_code, response.content, answered) == (206, binary[:100], [True])

    changed = fast.http.post(f"{api}/yank", headers=fast.credentials.admin)
    assert changed.status_code == 200, changed.text
    time.sleep(2 * fast.settings.cache_ttl)  # visible everywhere within cache_ttl
    response = get()
    assert (response.status_code, answered) == (404, [False])
    assert "yanked" in response.json()["error"]
    for method in ("GET", "HEAD"):
        answered.clear()
        assert fast.http.request(method, url(seq), headers={}).status_code == 404
        assert answered == [False]

    changed = fast.http.post(f"{api}/unyank", headers=fast.credentials.admin)
    assert changed.status_code == 200, changed.text
    time.sleep(2 * fast.settings.cache_ttl)
    response = get()
    assert (response.status_code, answered) == (206, [True])

    changed = fast.http.delete(api, headers=fast.credentials.admin)
    assert changed.status_code == 204, changed.text
    time.sleep(2 * fast.settings.cache_ttl)
    response = get()  # its bytes are still in the worker's memory: the lookup decides
    assert (response.status_code, answered) == (404, [False])


def test_device_tokens_go_to_the_route(
    request: pytest.FixtureRequest, tmp_path: Path, tls_dir: Path, answered: list[bool]
):
    with harness(
        request,
        tmp_path,
        tls=tls_dir,
        device_auth="device-type-token",
        device_tokens={"fleet": (DEVICE_TYPE, False)},
    ) as h:
        manifest, binary = RELEASES[SMALL_ID]
        response = seed_upload(
            h.http,
            h.credentials.uploader,
            seq=SMALL_ID,
            device_type=DEVICE_TYPE,
            manifest=manifest,
            binary=binary,
        )
        assert response.status_code == 200, response.text
        token = {"authorization": f"Bearer {h.credentials.device_tokens['fleet']}"}
        for _ in range(2):  # the second time the image is in memory
            answered.clear()
            response = h.http.get(url(SMALL_ID), headers={"range": "bytes=0-9"})
            assert (response.status_code, answered) == (401, [False])
            answered.clear()
            response = h.http.get(url(SMALL_ID), headers={"range": "bytes=0-9", **token})
            assert (response.status_code, response.content, answered) == (206, binary[:10], [False])
