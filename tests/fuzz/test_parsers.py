"""Property-based tests (hypothesis) for the parsers not covered elsewhere: secure-boot
signature blocks (V1, V2 sector), JSON and JOSE compact structure, manifest envelopes built
from random parts, freshness and key-rotation statements, the encrypted image header, the
multipart reader, server configuration TOML files and the device's state files. Each may
only succeed or raise its documented error, never anything else."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import os
from collections.abc import AsyncIterator
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from secure_fota.crypto.freshness import open_statement
from secure_fota.crypto.key_rotation import KeySet, advance, make_rotation
from secure_fota.crypto.keyring import DeviceKeys
from secure_fota.crypto.keys import generate_private_key, key_id
from secure_fota.crypto.secure_boot import sign_image, verify_image
from secure_fota.device.state import StateDir
from secure_fota.errors import (
    ConfigError,
    FormatError,
    FotaError,
    NotFoundError,
    ReleaseRejected,
    VerificationError,
)
from secure_fota.formats.app_image_builder import ImageSpec, build_app_image
from secure_fota.formats.encrypted_image import EncryptedImageHeader
from secure_fota.formats.jose_compact import parse_json_object, split_compact
from secure_fota.formats.secure_boot import Scheme, parse_signature_sector, parse_v1_block
from secure_fota.policy.verifier import open_checked
from secure_fota.server.multipart import MultipartReader, boundary_of
from secure_fota.server.settings import load_settings

#: examples per property; a longer run by hand: FOTA_FUZZ_EXAMPLES=5000 pytest tests/fuzz
_EXAMPLES = int(os.environ.get("FOTA_FUZZ_EXAMPLES", "150"))
FAST = settings(max_examples=_EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck))
SLOW = settings(
    max_examples=max(1, _EXAMPLES // 4), deadline=None, suppress_health_check=list(HealthCheck)
)

_IMAGE = build_app_image(ImageSpec(size=8192, seed=3))
_P256 = generate_private_key("ecdsa256")
_P384 = generate_private_key("ecdsa384")
_SIGNED_V1 = sign_image(_IMAGE, _P256, Scheme.V1)
_SIGNED_V2 = sign_image(_IMAGE, _P384, Scheme.V2_ECDSA384)
_SECTOR = _SIGNED_V2[-4096:]
_RSA = generate_private_key("rsa3072")
_KEYS = DeviceKeys(
    manifest_decryption=generate_private_key("rsa4096"),  # type: ignore[arg-type]
    image_decryption=_RSA,  # type: ignore[arg-type]
    manifest_signing={key_id(_RSA): _RSA.public_key()},
    secure_boot=_P256.public_key(),
    freshness={key_id(_P256): _P256.public_key()},
)


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _mutate(data: bytes, edits: list[tuple[int, int]]) -> bytes:
    out = bytearray(data)
    for position, value in edits:
        out[position % len(out)] = value
    return bytes(out)


EDITS = st.lists(st.tuples(st.integers(0, 2**20), st.integers(0, 255)), min_size=1, max_size=8)


@FAST
@given(st.binary(min_size=68, max_size=68))
def test_v1_block(block: bytes) -> None:
    try:
        r, s = parse_v1_block(block)
    except FormatError:
        return
    assert 0 <= r < 2**256 and 0 <= s < 2**256


@FAST
@given(st.one_of(st.binary(max_size=5000), EDITS.map(lambda e: _mutate(_SECTOR, e))))
def test_v2_signature_sector(sector: bytes) -> None:
    try:
        blocks = parse_signature_sector(sector)
    except FormatError:
        return
    assert len(blocks) <= 3


@SLOW
@given(
    EDITS,
    st.sampled_from([(_SIGNED_V1, Scheme.V1, _P256), (_SIGNED_V2, Scheme.V2_ECDSA384, _P384)]),
)
def test_mutated_signed_images_never_verify_wrongly(edits: list[tuple[int, int]], case) -> None:
    signed, scheme, key = case
    mutated = _mutate(signed, edits)
    try:
        covered = verify_image(mutated, key.public_key(), scheme)
    except (FormatError, VerificationError):
        return
    # only a change that leaves the signed bytes intact (padding after them) may verify
    assert mutated[:covered] == signed[:covered]


@FAST
@given(st.binary(max_size=512) | st.text(max_size=200).map(str.encode))
def test_json_object_parser(raw: bytes) -> None:
    try:
        value = parse_json_object("fuzz", raw)
    except FormatError:
        return
    assert isinstance(value, dict)


@FAST
@given(st.text(alphabet="ab.-_=+/ \n\u00e9", max_size=80), st.integers(1, 6))
def test_compact_split(token: str, parts: int) -> None:
    with contextlib.suppress(FormatError):
        assert len(split_compact("fuzz", token, parts)) == parts


_JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=10),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=10,
)
_HEADERS = st.fixed_dictionaries(
    {},
    optional={
        "alg": st.sampled_from(["RSA-OAEP-256", "PS256", "ES256", "none", "HS256"])
        | st.text(max_size=5),
        "enc": st.sampled_from(["A256GCM", "A128GCM"]),
        "cty": st.sampled_from(["JWT", "jwt"]),
        "kid": st.sampled_from([key_id(_RSA), "x"]) | _JSON,
        "typ": st.sampled_from(["fota-manifest+jwt", "fota-freshness+jwt", "fota-keys+jwt"]),
        "zip": st.just("DEF"),
        "crit": st.just(["x"]),
        "rot": st.lists(st.text(max_size=20), max_size=3) | _JSON,
    },
)
_PART = st.one_of(
    st.binary(max_size=600).map(_b64),
    _HEADERS.map(lambda h: _b64(json.dumps(h).encode())),
    st.text(alphabet="AZaz09-_=+/.", max_size=40),
)


@SLOW
@given(st.lists(_PART, min_size=1, max_size=6))
def test_manifest_envelopes_from_random_parts(parts: list[str]) -> None:
    try:
        open_checked(".".join(parts).encode(), _KEYS)
    except ReleaseRejected:
        return
    raise AssertionError("a random envelope opened")


@FAST
@given(st.lists(_PART, min_size=1, max_size=4), _JSON)
def test_freshness_statements(parts: list[str], payload: object) -> None:
    candidates = [".".join(parts), ".".join([*parts[:1], _b64(json.dumps(payload).encode()), "AA"])]
    for token in candidates:
        try:
            open_statement(token, _KEYS.freshness)
        except (FormatError, VerificationError):
            continue
        raise AssertionError("an unsigned statement was accepted")


_V1 = KeySet(1, dict(_KEYS.manifest_signing))
_GOOD = make_rotation(_RSA, 2, [_P256.public_key()])


@FAST
@given(
    st.lists(
        st.one_of(
            _PART, st.just(_GOOD), EDITS.map(lambda e: _mutate(_GOOD.encode(), e).decode("latin-1"))
        ),
        max_size=5,
    )
)
def test_rotation_walk_never_raises(statements: list[str]) -> None:
    reached = advance(_V1, statements)
    assert reached.version in (1, 2)
    if reached.version == 2:
        assert set(reached.keys) == {key_id(_P256)}


@FAST
@given(
    st.binary(min_size=512, max_size=512)
    | EDITS.map(lambda e: _mutate(b"\xcf\xb6\x88\x07" + bytes(508), e))
)
def test_encrypted_image_header(raw: bytes) -> None:
    try:
        header = EncryptedImageHeader.from_bytes(raw)
    except FormatError:
        return
    assert 0 < header.bin_size <= 16 * 1024 * 1024


async def _chunks(body: bytes, size: int) -> AsyncIterator[bytes]:
    for start in range(0, len(body), size):
        yield body[start : start + size]


async def _read(body: bytes, boundary: bytes, size: int) -> None:
    reader = MultipartReader(_chunks(body, size), boundary, max_body=64 * 1024)
    while (part := await reader.next_part()) is not None:
        if part.filename is None:
            await part.text(256)
        else:
            async for _ in part.chunks():
                pass


_LINES = st.sampled_from([
    b"--B", b"--B--", b"Content-Disposition: form-data; name=\"id\"",
    b"Content-Disposition: form-data; name=\"firmwareFile\"; filename=\"../x\"",
    b"Content-Disposition: form-data", b"Content-Type: text/plain", b"", b"7", b"\x00\xff", b"-B",
])  # fmt: skip


@FAST
@given(st.lists(_LINES | st.binary(max_size=40), max_size=14), st.integers(1, 64))
def test_multipart_reader(lines: list[bytes], chunk: int) -> None:
    with contextlib.suppress(FotaError):
        asyncio.run(_read(b"\r\n".join(lines), b"B", chunk))


@FAST
@given(st.text(alphabet=st.characters(max_codepoint=255), max_size=120))  # headers are latin-1
def test_multipart_boundary(content_type: str) -> None:
    with contextlib.suppress(FotaError):
        assert boundary_of(content_type)


_TOML_VALUES = st.one_of(
    st.integers(-5, 10**10).map(str),
    st.sampled_from(['"x"', "true", "[]", "{}", '"local"', '"s3"', "1.5", '"a\\u0000"']),
)
_TOML_KEYS = st.sampled_from([
    "port", "workers", "storage", "database_url", "max_upload_size", "cache_ttl", "device_auth",
    "host", "upload_timeout", "unknown", "tls_cert_file", "gc_grace_seconds", "s3_bucket",
])  # fmt: skip


@FAST
@given(
    st.lists(st.tuples(_TOML_KEYS, _TOML_VALUES), max_size=5), st.booleans(), st.binary(max_size=30)
)
def test_server_config_files(items: list[tuple[str, str]], section: bool, junk: bytes) -> None:
    import tempfile

    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "server.toml"
        text = ("[server]\n" if section else "") + "".join(f"{k} = {v}\n" for k, v in items)
        path.write_bytes(text.encode() + (junk if junk and junk[0] % 3 == 0 else b""))
        with contextlib.suppress(ConfigError):
            load_settings(path, data_dir=Path(folder))


@FAST
@given(_JSON, _JSON)
def test_device_state_files(config: object, nvs: object) -> None:
    import tempfile

    with tempfile.TemporaryDirectory() as folder:
        state = StateDir(Path(folder))
        (state.path / "device.json").write_text(json.dumps(config))
        (state.path / "nvs.json").write_text(json.dumps(nvs))
        for load in (state.load_config, state.load_nvs):
            with contextlib.suppress(ConfigError, NotFoundError):
                load()
