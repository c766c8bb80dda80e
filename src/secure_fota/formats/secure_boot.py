"""Byte layouts of Espressif's secure-boot signatures (no keys, no crypto here).

Secure Boot V1 (ESP32 only): the signed image is ``data || u32 0 || r || s`` with ``r`` and
``s`` 32-byte big-endian integers of an ECDSA P-256 signature over SHA-256(``data``).

Secure Boot V2: ``data`` is padded with 0xFF to a multiple of 4096 bytes, followed by a
4096-byte signature sector holding up to three 1216-byte signature blocks (the rest 0xFF).
Each block starts with magic 0xE7, a version (0x02 RSA-3072-PSS, 0x03 ECDSA), the image
digest, the public key, the signature, and a CRC-32 of its first 1196 bytes. Big numbers
are stored little-endian, as the hardware reads them.
"""

from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass
from enum import Enum, StrEnum
from typing import Final

from secure_fota.errors import FormatError

__all__ = [
    "SECTOR_SIZE",
    "SIG_BLOCK_SIZE",
    "V1_BLOCK_SIZE",
    "EcdsaCurve",
    "Scheme",
    "SignatureBlockV2",
    "build_ecdsa_block",
    "build_rsa_block",
    "build_signature_sector",
    "build_v1_block",
    "parse_signature_sector",
    "parse_v1_block",
    "v2_padding",
]

V1_BLOCK_SIZE: Final = 68
SECTOR_SIZE: Final = 4096
SIG_BLOCK_SIZE: Final = 1216
SIG_BLOCK_MAGIC: Final = 0xE7
_VERSION_RSA: Final = 0x02
_VERSION_ECDSA: Final = 0x03
_MAX_BLOCKS: Final = 3
_CRC_SPAN: Final = 1196
_RSA_BYTES: Final = 384

_RSA_BLOCK = struct.Struct("<BBxx32s384sI384sI384s")
_EC256_BLOCK = struct.Struct("<BBBx32sB64s64s1031x")
_EC384_BLOCK = struct.Struct("<BBBx48sB96s96s951x")


class Scheme(StrEnum):
    """Secure-boot signature schemes, as named on our command line and in manifests."""

    V1 = "v1"
    V2_RSA3072 = "v2-rsa3072"
    V2_ECDSA256 = "v2-ecdsa256"
    V2_ECDSA384 = "v2-ecdsa384"


class EcdsaCurve(int, Enum):
    """Curve ids of V2 ECDSA blocks (P-192 exists in the format; we never sign with it)."""

    P192 = 1
    P256 = 2
    P384 = 3

    @property
    def size(self) -> int:
        return {EcdsaCurve.P192: 24, EcdsaCurve.P256: 32, EcdsaCurve.P384: 48}[self]


def build_v1_block(r: int, s: int) -> bytes:
    """The 68-byte V1 block for signature (r, s)."""
    return struct.pack("<I", 0) + r.to_bytes(32, "big") + s.to_bytes(32, "big")


def parse_v1_block(block: bytes) -> tuple[int, int]:
    """Return (r, s) from a 68-byte V1 block; raise :class:`FormatError` if it is not one."""
    if len(block) != V1_BLOCK_SIZE:
        raise FormatError("secure boot V1 block", f"needs {V1_BLOCK_SIZE} bytes, got {len(block)}")
    (version,) = struct.unpack_from("<I", block)
    if version != 0:
        raise FormatError("secure boot V1 block", f"version word is {version}, expected 0")
    return int.from_bytes(block[4:36], "big"), int.from_bytes(block[36:68], "big")


def v2_padding(length: int) -> int:
    """How many 0xFF bytes V2 signing appends to ``length`` bytes of data."""
    return (-length) % SECTOR_SIZE


def _finish_block(body: bytes) -> bytes:
    if len(body) != _CRC_SPAN:
        raise FormatError("secure boot V2 block", f"body is {len(body)} bytes, not {_CRC_SPAN}")
    return body + struct.pack("<I", zlib.crc32(body)) + b"\0" * 16


def build_rsa_block(digest: bytes, n: int, e: int, signature: bytes) -> bytes:
    """A V2 RSA-3072 block: ``signature`` is the big-endian RSA-PSS signature of ``digest``."""
    if len(digest) != 32 or len(signature) != _RSA_BYTES or n.bit_length() > 3072:
        raise FormatError("secure boot V2 block", "RSA blocks need a 32-byte digest and RSA-3072")
    rinv = (1 << (2 * 3072)) % n
    m_prime = (-pow(n, -1, 1 << 32)) & 0xFFFFFFFF
    return _finish_block(
        _RSA_BLOCK.pack(
            SIG_BLOCK_MAGIC,
            _VERSION_RSA,
            digest,
            n.to_bytes(_RSA_BYTES, "little"),
            e,
            rinv.to_bytes(_RSA_BYTES, "little"),
            m_prime,
            signature[::-1],
        )
    )


def build_ecdsa_block(digest: bytes, curve: EcdsaCurve, x: int, y: int, r: int, s: int) -> bytes:
    """A V2 ECDSA block (P-256 with SHA-256 or P-384 with SHA-384)."""
    size = curve.size
    point = x.to_bytes(size, "little") + y.to_bytes(size, "little")
    rs = r.to_bytes(size, "little") + s.to_bytes(size, "little")
    if curve is EcdsaCurve.P384:
        if len(digest) != 48:
            raise FormatError("secure boot V2 block", "P-384 blocks need a SHA-384 digest")
        body = _EC384_BLOCK.pack(SIG_BLOCK_MAGIC, _VERSION_ECDSA, 1, digest, curve, point, rs)
    else:
        if len(digest) != 32:
            raise FormatError("secure boot V2 block", "P-256 blocks need a SHA-256 digest")
        body = _EC256_BLOCK.pack(SIG_BLOCK_MAGIC, _VERSION_ECDSA, 0, digest, curve, point, rs)
    return _finish_block(body)


def build_signature_sector(blocks: list[bytes]) -> bytes:
    """Concatenate 1..3 blocks and pad with 0xFF to one 4096-byte sector."""
    if not 1 <= len(blocks) <= _MAX_BLOCKS or any(len(b) != SIG_BLOCK_SIZE for b in blocks):
        raise FormatError("secure boot V2 sector", "needs 1 to 3 blocks of 1216 bytes")
    sector = b"".join(blocks)
    return sector + b"\xff" * (SECTOR_SIZE - len(sector))


@dataclass(frozen=True, slots=True)
class SignatureBlockV2:
    """One parsed, CRC-checked V2 signature block."""

    index: int
    is_rsa: bool
    digest: bytes
    # RSA: modulus and exponent; ECDSA: the curve and the point
    rsa_n: int = 0
    rsa_e: int = 0
    curve: EcdsaCurve | None = None
    ec_x: int = 0
    ec_y: int = 0
    # RSA: big-endian signature bytes; ECDSA: (r, s) as integers
    rsa_signature: bytes = b""
    ec_r: int = 0
    ec_s: int = 0

    @property
    def scheme(self) -> Scheme:
        if self.is_rsa:
            return Scheme.V2_RSA3072
        return Scheme.V2_ECDSA384 if self.curve is EcdsaCurve.P384 else Scheme.V2_ECDSA256


def _parse_block(index: int, raw: bytes) -> SignatureBlockV2 | None:
    magic, version = raw[0], raw[1]
    if magic != SIG_BLOCK_MAGIC or version not in (_VERSION_RSA, _VERSION_ECDSA):
        return None
    (crc,) = struct.unpack_from("<I", raw, _CRC_SPAN)
    if crc != zlib.crc32(raw[:_CRC_SPAN]):
        return None
    if version == _VERSION_RSA:
        _, _, digest, n, e, _rinv, _m, sig = _RSA_BLOCK.unpack_from(raw)
        return SignatureBlockV2(
            index=index,
            is_rsa=True,
            digest=digest,
            rsa_n=int.from_bytes(n, "little"),
            rsa_e=e,
            rsa_signature=sig[::-1],
        )
    sha_type = raw[2]
    layout = _EC384_BLOCK if sha_type == 1 else _EC256_BLOCK
    if sha_type not in (0, 1):
        return None
    _, _, _, digest, curve_id, point, rs = layout.unpack_from(raw)
    try:
        curve = EcdsaCurve(curve_id)
    except ValueError:
        return None
    if (curve is EcdsaCurve.P384) != (sha_type == 1):
        return None
    size = curve.size
    return SignatureBlockV2(
        index=index,
        is_rsa=False,
        digest=digest,
        curve=curve,
        ec_x=int.from_bytes(point[:size], "little"),
        ec_y=int.from_bytes(point[size : 2 * size], "little"),
        ec_r=int.from_bytes(rs[:size], "little"),
        ec_s=int.from_bytes(rs[size : 2 * size], "little"),
    )


def parse_signature_sector(sector: bytes) -> list[SignatureBlockV2]:
    """The valid (magic, version and CRC correct) blocks of a 4096-byte V2 signature sector."""
    if len(sector) != SECTOR_SIZE:
        raise FormatError("secure boot V2 sector", f"needs {SECTOR_SIZE} bytes, got {len(sector)}")
    blocks = []
    for index in range(_MAX_BLOCKS):
        block = _parse_block(index, sector[index * SIG_BLOCK_SIZE : (index + 1) * SIG_BLOCK_SIZE])
        if block is not None:
            blocks.append(block)
    return blocks
