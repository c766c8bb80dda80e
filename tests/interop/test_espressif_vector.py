"""Espressif's published esp_encrypted_img test vector, decrypted byte-exactly."""

from __future__ import annotations

import hashlib

import pytest
from cryptography.hazmat.primitives import serialization

from secure_fota.crypto.encrypted_image import ImageDecryptor, decrypt_image, encrypt_image
from secure_fota.errors import FormatError, VerificationError
from secure_fota.formats.encrypted_image import EncryptedImageHeader
from tests.conftest import shared_fixture

PLAINTEXT_SHA256 = "a230a5aae39e351c0d806acb453662dfe66afcec74f6c0c861d75048fae07f78"


@pytest.fixture(scope="module")
def vector():
    image = shared_fixture("esp_encrypted_img", "rsa3072_test_image.bin").read_bytes()
    pem = shared_fixture("esp_encrypted_img", "rsa3072_test_private_key.pem").read_bytes()
    return image, serialization.load_pem_private_key(pem, password=None)


def test_header_fields(vector) -> None:
    image, _ = vector
    header = EncryptedImageHeader.from_bytes(image)
    assert header.bin_size == 11680
    assert header.total_size == len(image) == 12192
    assert header.to_bytes() == image[:512]


def test_decrypts_whole(vector) -> None:
    image, key = vector
    plaintext = decrypt_image(image, key)
    assert hashlib.sha256(plaintext).hexdigest() == PLAINTEXT_SHA256
    assert plaintext.startswith(b"Espressif")


@pytest.mark.parametrize("chunk", [1, 7, 16, 511, 512, 513, 4096])
def test_decrypts_in_any_chunking(vector, chunk: int) -> None:
    image, key = vector
    decryptor = ImageDecryptor(key)
    out = b"".join(decryptor.update(image[i : i + chunk]) for i in range(0, len(image), chunk))
    decryptor.finalize()
    assert hashlib.sha256(out).hexdigest() == PLAINTEXT_SHA256


def test_truncated_by_one_byte_fails_at_the_end(vector) -> None:
    image, key = vector
    with pytest.raises(FormatError, match="truncated"):
        decrypt_image(image[:-1], key)


def test_tampered_ciphertext_fails_the_tag(vector) -> None:
    image, key = vector
    tampered = bytearray(image)
    tampered[600] ^= 0x01
    with pytest.raises(VerificationError):
        decrypt_image(bytes(tampered), key)


def test_our_encryption_is_read_back_by_the_same_rules(vector) -> None:
    _, key = vector
    plaintext = b"firmware" * 1000
    encrypted = encrypt_image(plaintext, key.public_key())
    assert len(encrypted) == 512 + len(plaintext)
    assert decrypt_image(encrypted, key) == plaintext
