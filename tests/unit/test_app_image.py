from __future__ import annotations

import contextlib
import hashlib
import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from secure_fota.errors import FormatError
from secure_fota.formats.app_image import (
    APP_DESC_OFFSET,
    AppDescriptor,
    chip_id_for,
    chip_name,
    parse_app_image,
    xor_checksum,
)
from secure_fota.formats.app_image_builder import ImageSpec, build_app_image
from tests.conftest import shared_fixture

FIXTURES = {
    "esp32_hello_world_idf5.2.2.bin": ("esp32", "hello_world", "v1.4.1-2-g0296947-dirty", 0),
    "esp32c3_hello_world_idf5.2.2.bin": ("esp32c3", "hello_world", "v1.4.1-2-g0296947-dirty", 0),
    "esp32s2_blink_idf5.0.bin": ("esp32s2", "blink", "qa-test-v5.0-20220830-4-g4532e6", 0),
    "esp32_hello-world-sbv1-signed_idf3.3.bin": (
        "esp32",
        "hello-world",
        "v3.3-beta3-21-g0706bd0d1-dirty",
        80,
    ),
}


@pytest.mark.parametrize("name", sorted(FIXTURES))
def test_real_images_parse(name: str) -> None:
    data = shared_fixture("firmware", name).read_bytes()
    chip, project, version, trailer = FIXTURES[name]
    image = parse_app_image(data)
    assert image.chip == chip
    assert image.app_desc.project_name == project
    assert image.app_desc.version == version
    assert image.app_desc.secure_version == 0
    assert image.trailer_length == trailer
    assert image.length + image.trailer_length == len(data)
    assert image.sha256 == hashlib.sha256(data[: image.length]).digest()


def test_esp32_fixture_matches_esptool_report() -> None:
    data = shared_fixture("firmware", "esp32_hello_world_idf5.2.2.bin").read_bytes()
    image = parse_app_image(data)
    assert image.checksum == 0x9A
    assert image.app_desc.app_elf_sha256.hex() == (
        "ade8c451fff03a31dcf3926ebdc454b5a609c57d583b57599f9a307b48e3d19a"
    )
    assert [s.length for s in image.segments] == [0x1EE4, 0x1840, 0x97AC, 0x3110, 0xE5B4]
    assert image.header.entry_addr == 0x40080AF0


@pytest.mark.parametrize("chip", ["esp32", "esp32c3", "esp32s3", "esp32c6"])
@pytest.mark.parametrize("size", [4096, 100_000, 1 << 20])
def test_built_images_are_valid(chip: str, size: int) -> None:
    data = build_app_image(ImageSpec(chip=chip, size=size, version="2.3.4", secure_version=5))
    image = parse_app_image(data)
    assert image.chip == chip
    assert image.app_desc.version == "2.3.4"
    assert image.app_desc.secure_version == 5
    assert image.trailer_length == 0
    assert hashlib.sha256(data[:-32]).digest() == data[-32:]


def test_builder_is_deterministic_per_seed() -> None:
    spec = ImageSpec(seed=7)
    assert build_app_image(spec) == build_app_image(spec)
    assert build_app_image(spec) != build_app_image(ImageSpec(seed=8))


def test_descriptor_round_trip() -> None:
    data = build_app_image(ImageSpec())
    raw = data[APP_DESC_OFFSET : APP_DESC_OFFSET + 256]
    assert AppDescriptor.from_bytes(raw).to_bytes() == raw


def test_xor_checksum_matches_bytewise() -> None:
    data = bytes(range(256)) * 3 + b"\x01\x02\x03"
    expected = 0xEF
    for byte in data:
        expected ^= byte
    assert xor_checksum(data, 0xEF) == expected
    assert xor_checksum(b"", 0x12) == 0x12


def test_chip_names() -> None:
    assert chip_id_for("ESP32-C3") == 5
    assert chip_name(0) == "esp32"
    assert chip_name(0x99) == "chip-0x99"
    with pytest.raises(FormatError, match="unknown chip"):
        chip_id_for("esp8266")


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda d: b"\x00" + d[1:], "expected 0xe9"),
        (lambda d: d[:1] + b"\x00" + d[2:], "segment count 0"),
        (lambda d: d[:1] + b"\x11" + d[2:], "segment count 17"),
        (lambda d: d[:23] + b"\x02" + d[24:], "hash_appended is 2"),
        (lambda d: d[:32] + b"\x00\x00\x00\x00" + d[36:], "magic word"),
        (lambda d: d[:-1] + bytes([d[-1] ^ 1]), "appended SHA-256"),
        (lambda d: d[:-33] + bytes([d[-33] ^ 1]) + d[-32:], "checksum byte"),
        (lambda d: d[:100], "truncated"),
        (lambda d: d[:28] + struct.pack("<I", 0x7FFFFFF0) + d[32:], "beyond"),
        (lambda d: d[:28] + struct.pack("<I", 258) + d[32:], "not 4-aligned"),
    ],
)
def test_corruptions_name_the_problem(mutate, message: str) -> None:
    data = build_app_image(ImageSpec(size=8192))
    with pytest.raises(FormatError, match=message):
        parse_app_image(mutate(data))


def test_oversized_file_is_refused() -> None:
    data = build_app_image(ImageSpec(size=8192))
    with pytest.raises(FormatError, match="limit"):
        parse_app_image(data, max_size=4096)
    with pytest.raises(FormatError, match="limit"):
        parse_app_image(data + b"\0" * 9000, max_size=16384)


def test_non_image_is_refused() -> None:
    with pytest.raises(FormatError, match="image magic"):
        parse_app_image(b"#!/bin/sh\necho not firmware\n" * 20)


_SMALL = build_app_image(ImageSpec(size=4096, seed=3))
#: offset of the extended header's hash_appended byte
_HASH_APPENDED = 23


@settings(max_examples=300, deadline=None)
@given(cut=st.integers(min_value=0, max_value=len(_SMALL) - 1))
def test_every_truncation_is_refused(cut: int) -> None:
    with pytest.raises(FormatError):
        parse_app_image(_SMALL[:cut])


@settings(max_examples=400, deadline=None)
@given(position=st.integers(min_value=0, max_value=len(_SMALL) - 1), flip=st.integers(1, 255))
def test_every_single_byte_corruption_is_refused_or_harmless(position: int, flip: int) -> None:
    corrupted = bytearray(_SMALL)
    corrupted[position] ^= flip
    if position == _HASH_APPENDED and corrupted[position] == 0:
        # hash_appended cleared: a valid image without a digest, the old digest now a 32-byte
        # trailer, which `fota author release` refuses ("already signed?")
        assert parse_app_image(bytes(corrupted)).trailer_length == 32
        return
    # Every other byte of an image is covered by the appended SHA-256, so any change is an error.
    with pytest.raises(FormatError):
        parse_app_image(bytes(corrupted))


@settings(max_examples=300, deadline=None)
@given(data=st.binary(max_size=2048))
def test_random_bytes_never_crash(data: bytes) -> None:
    with contextlib.suppress(FormatError):
        parse_app_image(data)
