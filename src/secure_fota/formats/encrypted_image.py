"""The 512-byte header of Espressif's pre-encrypted OTA image (esp_encrypted_img).

RSA-3072 scheme:

=======  =====  ==============================================================
offset   size   field
=======  =====  ==============================================================
0        4      magic ``cf b6 88 07`` (u32 LE 0x0788b6cf)
4        384    AES-256 key, RSA-3072 PKCS#1 v1.5-encrypted for the device
388      16     AES-GCM IV (16 bytes, not the usual 12)
404      4      ``bin_size``: u32 LE length of the plaintext (= of the ciphertext)
408      16     GCM tag
424      88     reserved, zero
512      ...    AES-256-GCM ciphertext, no additional authenticated data
=======  =====  ==============================================================

ECIES-P256 scheme (esp_encrypted_img >= 2.4, ``CONFIG_PRE_ENCRYPTED_OTA_USE_ECIES``): the same
magic and layout, with bytes 4..387 holding the sender's ephemeral P-256 public key X || Y
(64 bytes, big-endian, no 0x04 prefix), a 32-byte HKDF salt and 288 zero bytes. Nothing in the
file says which scheme it uses; the device's key does.

The header itself is not authenticated by GCM; our manifest covers the whole file
(``enc_sha256``), which is what makes the format safe to accept.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import Final

from secure_fota.errors import FormatError
from secure_fota.limits import MAX_IMAGE_SIZE

__all__ = [
    "ECIES_POINT_SIZE",
    "ECIES_SALT_SIZE",
    "ENCRYPTED_MAGIC",
    "HEADER_SIZE",
    "IV_SIZE",
    "TAG_SIZE",
    "WRAPPED_KEY_SIZE",
    "EncryptedImageHeader",
]

ENCRYPTED_MAGIC: Final = 0x0788B6CF
HEADER_SIZE: Final = 512
WRAPPED_KEY_SIZE: Final = 384
IV_SIZE: Final = 16
TAG_SIZE: Final = 16
_LAYOUT = struct.Struct("<I384s16sI16s88s")
#: ECIES: the ephemeral public point (X || Y) and the HKDF salt at the start of the 384 bytes
ECIES_POINT_SIZE: Final = 64
ECIES_SALT_SIZE: Final = 32


@dataclass(frozen=True, slots=True)
class EncryptedImageHeader:
    """A parsed esp_encrypted_img header."""

    wrapped_key: bytes
    iv: bytes
    bin_size: int
    tag: bytes

    @classmethod
    def from_bytes(cls, data: bytes, *, max_size: int = MAX_IMAGE_SIZE) -> EncryptedImageHeader:
        """Parse the first 512 bytes of ``data``; the rest (the ciphertext) is ignored."""
        if len(data) < HEADER_SIZE:
            raise FormatError(
                "encrypted image header", f"truncated: {len(data)} of {HEADER_SIZE} bytes"
            )
        magic, wrapped, iv, bin_size, tag, reserved = _LAYOUT.unpack_from(data)
        if magic != ENCRYPTED_MAGIC:
            raise FormatError(
                "encrypted image header",
                f"magic is {magic:#010x}, expected {ENCRYPTED_MAGIC:#010x} "
                "(not an esp_encrypted_img image)",
            )
        if bin_size == 0:
            raise FormatError("encrypted image header", "bin_size is 0")
        if bin_size > max_size:
            raise FormatError(
                "encrypted image header",
                f"bin_size {bin_size} is larger than the {max_size}-byte limit",
            )
        if any(reserved):
            raise FormatError("encrypted image header", "reserved bytes 424..511 are not zero")
        return cls(wrapped_key=wrapped, iv=iv, bin_size=bin_size, tag=tag)

    def to_bytes(self) -> bytes:
        if (
            len(self.wrapped_key) != WRAPPED_KEY_SIZE
            or len(self.iv) != IV_SIZE
            or len(self.tag) != TAG_SIZE
        ):
            raise FormatError("encrypted image header", "wrapped key, IV or tag has a wrong size")
        return _LAYOUT.pack(
            ENCRYPTED_MAGIC, self.wrapped_key, self.iv, self.bin_size, self.tag, b"\0" * 88
        )

    @classmethod
    def ecies_key_field(cls, point: bytes, salt: bytes) -> bytes:
        """The 384 bytes of an ECIES header: ``point`` (X || Y), ``salt``, then zeros."""
        if len(point) != ECIES_POINT_SIZE or len(salt) != ECIES_SALT_SIZE:
            raise FormatError("encrypted image header", "ECIES point or salt has a wrong size")
        return (point + salt).ljust(WRAPPED_KEY_SIZE, b"\0")

    def ecies_parts(self) -> tuple[bytes, bytes]:
        """(point X || Y, salt) of an ECIES header; its 288 reserved bytes must be zero."""
        if any(self.wrapped_key[ECIES_POINT_SIZE + ECIES_SALT_SIZE :]):
            raise FormatError("encrypted image header", "reserved bytes 100..387 are not zero")
        return (
            self.wrapped_key[:ECIES_POINT_SIZE],
            self.wrapped_key[ECIES_POINT_SIZE : ECIES_POINT_SIZE + ECIES_SALT_SIZE],
        )

    @property
    def total_size(self) -> int:
        """Size of the whole file this header announces."""
        return HEADER_SIZE + self.bin_size
