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


# -- ECIES-P256 (esp_encrypted_img >= 2.4) ----------------------------------------------------

#: Espressif's mocked PBKDF2 output: the vector's device private scalar (SOURCES.md)
ECIES_SCALAR = "831793660de4913366ae1e379b2ceb4317c88700cc0791d98e5a2a2d5c71af66"


@pytest.fixture(scope="module")
def ecies_vector():
    from cryptography.hazmat.primitives.asymmetric import ec

    image = shared_fixture("esp_encrypted_img", "ecies", "image_ecc.bin").read_bytes()
    key = ec.derive_private_key(int(ECIES_SCALAR, 16), ec.SECP256R1())
    return image, key


def test_ecies_vector_decrypts(ecies_vector) -> None:
    image, key = ecies_vector
    assert hashlib.sha256(image).hexdigest() == (
        "911c024e0ca2aeb18ff90cb80f7708d9a34cc3b3a67297dddb155002252ec833"
    )
    header = EncryptedImageHeader.from_bytes(image)
    assert header.bin_size == 10 and header.to_bytes() == image[:512]
    assert decrypt_image(image, key) == b"test file\n"


@pytest.mark.parametrize("chunk", [1, 7, 100, 511, 513])
def test_ecies_vector_in_any_chunking(ecies_vector, chunk: int) -> None:
    image, key = ecies_vector
    decryptor = ImageDecryptor(key)
    out = b"".join(decryptor.update(image[i : i + chunk]) for i in range(0, len(image), chunk))
    decryptor.finalize()
    assert out == b"test file\n"


def test_ecies_vector_rejections(ecies_vector) -> None:
    from cryptography.hazmat.primitives.asymmetric import ec

    image, key = ecies_vector
    for offset in (4, 67, 68, 99, 390, 410, 515):  # point, salt, IV, tag, ciphertext
        tampered = bytearray(image)
        tampered[offset] ^= 0x01
        with pytest.raises(VerificationError):
            decrypt_image(bytes(tampered), key)
    reserved = bytearray(image)
    reserved[200] = 1
    with pytest.raises(FormatError, match=r"reserved bytes 100\.\.387"):
        decrypt_image(bytes(reserved), key)
    with pytest.raises(VerificationError):
        decrypt_image(image, ec.generate_private_key(ec.SECP256R1()))
    with pytest.raises(FormatError, match="truncated"):
        decrypt_image(image[:-1], key)


def _independent_ecies_decrypt(data: bytes, hmac_key: bytes) -> bytes:
    """esp_encrypted_img's ECIES scheme written from its description alone (SOURCES.md and
    docs/formats.md §3), not with secure_fota: the device scalar from the HMAC key, ECDH, HKDF,
    AES-256-GCM."""
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM
    from cryptography.hazmat.primitives.kdf.hkdf import HKDF

    assert int.from_bytes(data[:4], "little") == 0x0788B6CF
    salt = bytes.fromhex("0e2160642dae76d33448e43d7720123d9f3b1eceb88e573a4e8f7fb94ff0c869")
    scalar = int.from_bytes(hashlib.pbkdf2_hmac("sha256", hmac_key, salt, 2048), "big")
    device = ec.derive_private_key(scalar, ec.SECP256R1())
    sender = ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), b"\x04" + data[4:68])
    aes = HKDF(hashes.SHA256(), 32, data[68:100], b"_esp_enc_img_ecc").derive(
        device.exchange(ec.ECDH(), sender)
    )
    assert data[100:388] == bytes(288) and data[424:512] == bytes(88)
    size = int.from_bytes(data[404:408], "little")
    assert len(data) == 512 + size
    return AESGCM(aes).decrypt(data[388:404], data[512:] + data[408:424], None)


def test_our_ecies_image_decrypts_with_an_independent_implementation(tmp_path) -> None:
    from secure_fota.keys.directory import load_author_keys, load_device_keys
    from secure_fota.keys.generate import generate_key_set

    generate_key_set(tmp_path, pre_encryption="ecies-p256")
    assert not (tmp_path / "pre_encryption_key.pem").exists()
    hmac_key = (tmp_path / "pre_encryption_hmac_key.bin").read_bytes()
    author = load_author_keys(tmp_path, secure_boot_version="v1")
    plaintext = bytes(range(256)) * 40 + b"tail"
    image = encrypt_image(plaintext, author.pre_encryption)
    assert _independent_ecies_decrypt(image, hmac_key) == plaintext
    # and the Python device's key, derived from the same HMAC key, agrees
    assert decrypt_image(image, load_device_keys(tmp_path).image_decryption) == plaintext
    # two images for the same device share nothing: fresh ephemeral key, salt and IV
    again = encrypt_image(plaintext, author.pre_encryption)
    assert again[4:100] != image[4:100] and again[388:404] != image[388:404]
