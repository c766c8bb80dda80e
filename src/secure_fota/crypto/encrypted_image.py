"""Streaming encryption and decryption of Espressif's esp_encrypted_img format.

A 16-byte IV per image and AES-256-GCM without associated data. The AES key, by the key's type:

* RSA-3072: a fresh random key, wrapped with RSA-3072 PKCS#1 v1.5 (the format's choice, kept for
  compatibility with ``esp_encrypted_img`` on the device);
* EC P-256 (ECIES, esp_encrypted_img >= 2.4): HKDF-SHA256(salt = a fresh 32-byte salt in the
  header, input = the x coordinate of ECDH between a fresh ephemeral key, whose public point is
  in the header, and the device's key, info = ``"_esp_enc_img_ecc"``, 32 bytes). The device's
  private scalar is PBKDF2-HMAC-SHA256 of its 32-byte eFuse HMAC key (:func:`ecies_device_key`),
  so the key itself never sits in flash.

Both directions hold one chunk in memory at a time.
"""

from __future__ import annotations

import hashlib
import io
import os
from dataclasses import dataclass
from typing import BinaryIO, Final

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.ciphers import AEADDecryptionContext, Cipher, algorithms, modes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from secure_fota.errors import FormatError, KeyMaterialError, VerificationError
from secure_fota.formats.encrypted_image import (
    ECIES_SALT_SIZE,
    HEADER_SIZE,
    IV_SIZE,
    EncryptedImageHeader,
)
from secure_fota.limits import MAX_IMAGE_SIZE
from secure_fota.reasons import Reason

__all__ = [
    "ECIES_HMAC_KEY_SIZE",
    "EncryptedImageWriter",
    "EncryptionResult",
    "ImageDecryptionKey",
    "ImageDecryptor",
    "PreEncryptionKey",
    "decrypt_image",
    "ecies_device_key",
    "encrypt_image",
    "pre_encryption_scheme",
]

#: the image key of a key set: RSA-3072 or (ECIES) P-256
PreEncryptionKey = rsa.RSAPublicKey | ec.EllipticCurvePublicKey
ImageDecryptionKey = rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey

_AES_KEY_SIZE = 32
#: the eFuse HMAC key (purpose HMAC_UP) a device's ECIES key is derived from
ECIES_HMAC_KEY_SIZE: Final = 32
#: esp_encrypted_img's fixed PBKDF2 salt and iteration count, and its HKDF info
_ECIES_PBKDF2_SALT: Final = bytes.fromhex(
    "0e2160642dae76d33448e43d7720123d9f3b1eceb88e573a4e8f7fb94ff0c869"
)
_ECIES_PBKDF2_ITERATIONS: Final = 2048
_ECIES_HKDF_INFO: Final = b"_esp_enc_img_ecc"
_P256_ORDER: Final = int("ffffffff00000000ffffffffffffffffbce6faada7179e84f3b9cac2fc632551", 16)


def pre_encryption_scheme(key: PreEncryptionKey | ImageDecryptionKey) -> str:
    """``rsa3072`` or ``ecies-p256`` for a key fit for pre-encryption, else KeyMaterialError."""
    if isinstance(key, rsa.RSAPublicKey | rsa.RSAPrivateKey):
        if key.key_size != 3072:
            raise KeyMaterialError(
                f"pre-encryption needs an RSA-3072 key, got RSA-{key.key_size} "
                "(the esp_encrypted_img header has room for exactly 384 key bytes)"
            )
        return "rsa3072"
    if isinstance(key, ec.EllipticCurvePublicKey | ec.EllipticCurvePrivateKey) and (
        key.curve.name == "secp256r1"
    ):
        return "ecies-p256"
    raise KeyMaterialError("pre-encryption needs an RSA-3072 or EC P-256 (ECIES) key")


def ecies_device_key(hmac_key: bytes) -> ec.EllipticCurvePrivateKey:
    """The device's ECIES private key, derived from its 32-byte eFuse HMAC key as
    esp_encrypted_img does: PBKDF2-HMAC-SHA256(hmac_key, fixed salt, 2048 iterations, 32 bytes),
    read big-endian, which must lie in 1..n-1 (else KeyMaterialError: pick another HMAC key)."""
    if len(hmac_key) != ECIES_HMAC_KEY_SIZE:
        raise KeyMaterialError(
            f"an ECIES HMAC key is {ECIES_HMAC_KEY_SIZE} bytes, got {len(hmac_key)}"
        )
    derived = hashlib.pbkdf2_hmac(
        "sha256", hmac_key, _ECIES_PBKDF2_SALT, _ECIES_PBKDF2_ITERATIONS, 32
    )
    scalar = int.from_bytes(derived, "big")
    if not 0 < scalar < _P256_ORDER:
        raise KeyMaterialError("this HMAC key derives no valid P-256 key (pick another one)")
    return ec.derive_private_key(scalar, ec.SECP256R1())


def _ecies_aes_key(shared: bytes, salt: bytes) -> bytes:
    return HKDF(hashes.SHA256(), _AES_KEY_SIZE, salt, _ECIES_HKDF_INFO).derive(shared)


def _p256_point(key: ec.EllipticCurvePublicKey) -> bytes:
    numbers = key.public_numbers()
    return numbers.x.to_bytes(32, "big") + numbers.y.to_bytes(32, "big")


@dataclass(frozen=True, slots=True)
class EncryptionResult:
    """What :class:`EncryptedImageWriter` wrote."""

    header: EncryptedImageHeader
    plaintext_sha256: bytes

    @property
    def total_size(self) -> int:
        return self.header.total_size


class EncryptedImageWriter:
    """Encrypt a plaintext of known length into a seekable binary stream, chunk by chunk.

    The header (which carries the GCM tag) is written last, over a placeholder. With
    ``hash_plaintext=False`` the caller, which already hashes what it writes, passes the
    plaintext's SHA-256 to :meth:`finish` (one pass over the data less).
    """

    def __init__(
        self,
        out: BinaryIO,
        public_key: PreEncryptionKey,
        plaintext_size: int,
        *,
        hash_plaintext: bool = True,
    ) -> None:
        if not isinstance(public_key, rsa.RSAPublicKey | ec.EllipticCurvePublicKey):
            raise KeyMaterialError("pre-encryption needs an RSA-3072 or EC P-256 public key")
        pre_encryption_scheme(public_key)
        if not 0 < plaintext_size <= MAX_IMAGE_SIZE:
            raise FormatError("image", f"size {plaintext_size} is outside 1..{MAX_IMAGE_SIZE}")
        self._out = out
        self._size = plaintext_size
        self._written = 0
        self._start = out.tell()
        self._iv = os.urandom(IV_SIZE)
        if isinstance(public_key, rsa.RSAPublicKey):
            aes_key = os.urandom(_AES_KEY_SIZE)
            self._wrapped = public_key.encrypt(aes_key, padding.PKCS1v15())
        else:
            ephemeral = ec.generate_private_key(ec.SECP256R1())
            salt = os.urandom(ECIES_SALT_SIZE)
            aes_key = _ecies_aes_key(ephemeral.exchange(ec.ECDH(), public_key), salt)
            self._wrapped = EncryptedImageHeader.ecies_key_field(
                _p256_point(ephemeral.public_key()), salt
            )
        self._encryptor = Cipher(algorithms.AES(aes_key), modes.GCM(self._iv)).encryptor()
        self._hash = hashlib.sha256() if hash_plaintext else None
        out.write(b"\0" * HEADER_SIZE)

    def write(self, chunk: bytes) -> None:
        self._written += len(chunk)
        if self._written > self._size:
            raise FormatError("image", f"more than the announced {self._size} bytes")
        if self._hash is not None:
            self._hash.update(chunk)
        self._out.write(self._encryptor.update(chunk))

    def finish(self, plaintext_sha256: bytes | None = None) -> EncryptionResult:
        if self._written != self._size:
            raise FormatError("image", f"{self._written} bytes written, {self._size} announced")
        if self._hash is not None:
            plaintext_sha256 = self._hash.digest()
        elif plaintext_sha256 is None or len(plaintext_sha256) != 32:
            raise ValueError("a writer made with hash_plaintext=False needs the plaintext SHA-256")
        self._out.write(self._encryptor.finalize())
        header = EncryptedImageHeader(
            wrapped_key=self._wrapped, iv=self._iv, bin_size=self._size, tag=self._encryptor.tag
        )
        end = self._out.tell()
        self._out.seek(self._start)
        self._out.write(header.to_bytes())
        self._out.seek(end)
        return EncryptionResult(header=header, plaintext_sha256=plaintext_sha256)


def encrypt_image(plaintext: bytes, public_key: PreEncryptionKey) -> bytes:
    """Encrypt an image held in memory (tests and small tools; releases stream)."""
    buffer = io.BytesIO()
    writer = EncryptedImageWriter(buffer, public_key, len(plaintext))
    writer.write(plaintext)
    writer.finish()
    return buffer.getvalue()


class ImageDecryptor:
    """Incremental decryption of an esp_encrypted_img stream.

    Feed any chunking of the file to :meth:`update`, which returns plaintext as it becomes
    available, then call :meth:`finalize`, which checks the length and the GCM tag. Plaintext
    returned before :meth:`finalize` succeeds is unauthenticated and must not be trusted.
    """

    def __init__(
        self,
        private_key: ImageDecryptionKey,
        *,
        expected_size: int | None = None,
        max_size: int = MAX_IMAGE_SIZE,
    ) -> None:
        if not isinstance(private_key, rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey):
            raise KeyMaterialError(
                "pre-encryption decryption needs an RSA-3072 or EC P-256 private key"
            )
        pre_encryption_scheme(private_key)
        self._key = private_key
        self._expected = expected_size
        self._max = max_size
        self._pending = b""
        self.header: EncryptedImageHeader | None = None
        self._decryptor: AEADDecryptionContext | None = None
        self._remaining = 0

    def _start(self, raw_header: bytes) -> None:
        header = EncryptedImageHeader.from_bytes(raw_header, max_size=self._max)
        if self._expected is not None and header.bin_size != self._expected:
            raise FormatError(
                "encrypted image header",
                f"bin_size {header.bin_size} differs from the expected {self._expected}",
                reason=Reason.IMAGE_HEADER_INVALID,
            )
        aes_key = self._aes_key(header)
        if len(aes_key) != _AES_KEY_SIZE:
            raise VerificationError("image key")
        self.header = header
        self._remaining = header.bin_size
        self._decryptor = Cipher(
            algorithms.AES(aes_key), modes.GCM(header.iv, header.tag)
        ).decryptor()

    def _aes_key(self, header: EncryptedImageHeader) -> bytes:
        if isinstance(self._key, rsa.RSAPrivateKey):
            try:
                return self._key.decrypt(header.wrapped_key, padding.PKCS1v15())
            except ValueError:
                raise VerificationError("image key") from None
        point, salt = header.ecies_parts()
        try:
            sender = ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), b"\x04" + point)
        except ValueError:
            raise VerificationError("image key", "ECIES public key is not on P-256") from None
        return _ecies_aes_key(self._key.exchange(ec.ECDH(), sender), salt)

    def _context(self) -> AEADDecryptionContext:
        if self._decryptor is None:
            raise FormatError("encrypted image", "decryption has not started")
        return self._decryptor

    def update(self, chunk: bytes) -> bytes:
        if self.header is None:
            self._pending += chunk
            if len(self._pending) < HEADER_SIZE:
                return b""
            raw, chunk = self._pending[:HEADER_SIZE], self._pending[HEADER_SIZE:]
            self._pending = b""
            self._start(raw)
        if len(chunk) > self._remaining:
            raise FormatError(
                "encrypted image",
                "more data than the header's bin_size announces",
                reason=Reason.IMAGE_SIZE_MISMATCH,
            )
        self._remaining -= len(chunk)
        return self._context().update(chunk)

    def finalize(self) -> None:
        if self.header is None:
            raise FormatError(
                "encrypted image header",
                f"truncated: {len(self._pending)} of {HEADER_SIZE} bytes",
                reason=Reason.IMAGE_SIZE_MISMATCH,
            )
        if self._remaining:
            raise FormatError(
                "encrypted image",
                f"truncated: {self._remaining} of {self.header.bin_size} bytes missing",
                reason=Reason.IMAGE_SIZE_MISMATCH,
            )
        try:
            self._context().finalize()
        except InvalidTag:
            raise VerificationError("image tag", "image authentication tag mismatch") from None


def decrypt_image(
    data: bytes, private_key: ImageDecryptionKey, *, max_size: int = MAX_IMAGE_SIZE
) -> bytes:
    """Decrypt a whole esp_encrypted_img file held in memory and check its tag."""
    decryptor = ImageDecryptor(private_key, max_size=max_size)
    plaintext = decryptor.update(data)
    decryptor.finalize()
    return plaintext
