from __future__ import annotations

import io
import struct

import pytest
from cryptography.hazmat.primitives.asymmetric import rsa
from hypothesis import given, settings
from hypothesis import strategies as st

from secure_fota.crypto.encrypted_image import EncryptedImageWriter, decrypt_image, encrypt_image
from secure_fota.crypto.keys import generate_private_key
from secure_fota.errors import FormatError, KeyMaterialError, VerificationError
from secure_fota.formats.encrypted_image import EncryptedImageHeader

KEY = generate_private_key("rsa3072")
SAMPLE = encrypt_image(b"\x42" * 3000, KEY.public_key())


def test_round_trip_and_fresh_key_per_image() -> None:
    again = encrypt_image(b"\x42" * 3000, KEY.public_key())
    assert again[:512] != SAMPLE[:512]  # new AES key and IV each time
    assert decrypt_image(again, KEY) == decrypt_image(SAMPLE, KEY) == b"\x42" * 3000


def test_rsa2048_key_is_refused_with_a_reason() -> None:
    weak = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    with pytest.raises(KeyMaterialError, match="RSA-3072"):
        EncryptedImageWriter(io.BytesIO(), weak.public_key(), 10)
    with pytest.raises(KeyMaterialError, match="RSA-3072"):
        decrypt_image(SAMPLE, weak)


@pytest.mark.parametrize(
    ("offset", "value", "message"),
    [
        (0, b"\0\0\0\0", "magic"),
        (404, struct.pack("<I", 0), "bin_size is 0"),
        (404, struct.pack("<I", 0x7FFFFFFF), "limit"),
        (430, b"\x01", "reserved"),
    ],
)
def test_header_errors(offset: int, value: bytes, message: str) -> None:
    data = bytearray(SAMPLE)
    data[offset : offset + len(value)] = value
    with pytest.raises(FormatError, match=message):
        EncryptedImageHeader.from_bytes(bytes(data))


@settings(max_examples=200, deadline=None)
@given(cut=st.integers(0, len(SAMPLE) - 1))
def test_every_truncation_is_refused(cut: int) -> None:
    with pytest.raises(FormatError):
        decrypt_image(SAMPLE[:cut], KEY)


@settings(max_examples=200, deadline=None)
@given(position=st.integers(0, len(SAMPLE) - 1), flip=st.integers(1, 255))
def test_every_single_byte_corruption_is_refused(position: int, flip: int) -> None:
    data = bytearray(SAMPLE)
    data[position] ^= flip
    with pytest.raises((FormatError, VerificationError)):
        decrypt_image(bytes(data), KEY)


def test_extra_data_is_refused() -> None:
    with pytest.raises(FormatError, match="more data"):
        decrypt_image(SAMPLE + b"x", KEY)
