"""ESP-IDF application images: image header, segments, checksum, digest, ``esp_app_desc_t``.

Layout (all integers little-endian), as written by ``esptool elf2image`` and checked by the
ESP-IDF bootloader:

* 24-byte image header: magic 0xE9, segment count, SPI mode, SPI speed/size, entry address,
  then the extended header (WP pin, drive settings, chip id, chip revisions, ``hash_appended``);
* per segment an 8-byte header (load address, length) and the data;
* zero padding so that the checksum byte lands on the last byte of a 16-byte line; the
  checksum is 0xEF XOR every segment data byte;
* when ``hash_appended`` is 1, the SHA-256 of everything before it (32 bytes).

The first segment of an application starts with the 256-byte ``esp_app_desc_t`` (offset 32).

The parser reads a stream once, in bounded chunks, so that it runs in constant memory.
"""

from __future__ import annotations

import hashlib
import io
import struct
from dataclasses import dataclass
from typing import Any, Final, Protocol

from secure_fota.errors import FormatError
from secure_fota.limits import MAX_IMAGE_SIZE, MAX_SEGMENTS, MIN_IMAGE_SIZE, STREAM_CHUNK

__all__ = [
    "APP_DESC_MAGIC",
    "APP_DESC_OFFSET",
    "APP_DESC_SIZE",
    "CHIP_NAMES",
    "IMAGE_MAGIC",
    "AppDescriptor",
    "AppImage",
    "ImageHeader",
    "Readable",
    "Segment",
    "chip_id_for",
    "chip_name",
    "parse_app_image",
    "read_app_image",
    "xor_checksum",
]

IMAGE_MAGIC: Final = 0xE9
CHECKSUM_SEED: Final = 0xEF
HEADER_SIZE: Final = 24
SEGMENT_HEADER_SIZE: Final = 8
APP_DESC_OFFSET: Final = HEADER_SIZE + SEGMENT_HEADER_SIZE
APP_DESC_SIZE: Final = 256
APP_DESC_MAGIC: Final = 0xABCD5432
DIGEST_SIZE: Final = 32

_HEADER = struct.Struct("<BBBBIB3sHBHH4sB")
_SEGMENT = struct.Struct("<II")
_APP_DESC = struct.Struct("<II8s32s32s16s16s32s32sHHB3s72s")

#: image chip ids (``esp_chip_id_t``) of the chips ESP-IDF 5.x builds for
CHIP_NAMES: Final[dict[int, str]] = {
    0: "esp32",
    2: "esp32s2",
    5: "esp32c3",
    9: "esp32s3",
    12: "esp32c2",
    13: "esp32c6",
    16: "esp32h2",
    18: "esp32p4",
    20: "esp32c61",
    23: "esp32c5",
    25: "esp32h21",
    28: "esp32h4",
}
_CHIP_IDS: Final = {name: chip for chip, name in CHIP_NAMES.items()}


def chip_name(chip_id: int) -> str:
    """The chip's name (``esp32c3``), or ``chip-0xNN`` for an id we do not know."""
    return CHIP_NAMES.get(chip_id, f"chip-{chip_id:#04x}")


def chip_id_for(name: str) -> int:
    """The image chip id of a chip name such as ``esp32`` or ``ESP32-C3``."""
    key = name.lower().replace("-", "").replace("_", "")
    try:
        return _CHIP_IDS[key]
    except KeyError:
        known = ", ".join(sorted(_CHIP_IDS))
        raise FormatError("chip name", f"unknown chip {name!r} (known: {known})") from None


def xor_checksum(data: bytes, seed: int = 0) -> int:
    """XOR of every byte of ``data`` and ``seed``, computed in C-speed big-integer steps."""
    width = len(data)
    if width == 0:
        return seed & 0xFF
    value = int.from_bytes(data, "little")
    while width > 1:
        half = (width + 1) // 2
        value = (value & ((1 << (8 * half)) - 1)) ^ (value >> (8 * half))
        width = half
    return (value ^ seed) & 0xFF


@dataclass(frozen=True, slots=True)
class ImageHeader:
    """The 24-byte ``esp_image_header_t`` (with its extended part)."""

    segment_count: int
    spi_mode: int
    spi_speed_size: int
    entry_addr: int
    wp_pin: int
    spi_pin_drv: bytes
    chip_id: int
    min_chip_rev: int
    min_chip_rev_full: int
    max_chip_rev_full: int
    hash_appended: bool

    def to_bytes(self) -> bytes:
        return _HEADER.pack(
            IMAGE_MAGIC,
            self.segment_count,
            self.spi_mode,
            self.spi_speed_size,
            self.entry_addr,
            self.wp_pin,
            self.spi_pin_drv,
            self.chip_id,
            self.min_chip_rev,
            self.min_chip_rev_full,
            self.max_chip_rev_full,
            b"\0" * 4,
            1 if self.hash_appended else 0,
        )


@dataclass(frozen=True, slots=True)
class Segment:
    """One segment: where it loads, where its data sits in the file and how long it is."""

    load_addr: int
    offset: int
    length: int


def _c_string(field: str, raw: bytes) -> str:
    text = raw.split(b"\0", 1)[0]
    try:
        decoded = text.decode("utf-8")
    except UnicodeDecodeError:
        raise FormatError("app descriptor", f"{field} is not valid UTF-8") from None
    if any(ord(c) < 0x20 or ord(c) == 0x7F for c in decoded):
        raise FormatError("app descriptor", f"{field} contains control characters")
    return decoded


@dataclass(frozen=True, slots=True)
class AppDescriptor:
    """``esp_app_desc_t``: what ESP-IDF knows about the application inside an image."""

    secure_version: int
    version: str
    project_name: str
    time: str
    date: str
    idf_ver: str
    app_elf_sha256: bytes
    min_efuse_blk_rev_full: int
    max_efuse_blk_rev_full: int
    mmu_page_size_log2: int

    @classmethod
    def from_bytes(cls, raw: bytes) -> AppDescriptor:
        if len(raw) != APP_DESC_SIZE:
            raise FormatError("app descriptor", f"needs {APP_DESC_SIZE} bytes, got {len(raw)}")
        (
            magic,
            secure_version,
            _reserv1,
            version,
            project,
            time,
            date,
            idf_ver,
            elf_sha,
            min_blk,
            max_blk,
            mmu_page,
            _reserv3,
            _reserv2,
        ) = _APP_DESC.unpack(raw)
        if magic != APP_DESC_MAGIC:
            raise FormatError(
                "app descriptor",
                f"magic word at offset {APP_DESC_OFFSET} is {magic:#010x}, "
                f"expected {APP_DESC_MAGIC:#010x} (is this an ESP-IDF application image?)",
            )
        return cls(
            secure_version=secure_version,
            version=_c_string("version", version),
            project_name=_c_string("project_name", project),
            time=_c_string("time", time),
            date=_c_string("date", date),
            idf_ver=_c_string("idf_ver", idf_ver),
            app_elf_sha256=bytes(elf_sha),
            min_efuse_blk_rev_full=min_blk,
            max_efuse_blk_rev_full=max_blk,
            mmu_page_size_log2=mmu_page,
        )

    def to_bytes(self) -> bytes:
        def field(text: str, size: int) -> bytes:
            raw = text.encode("utf-8")
            if len(raw) >= size:
                raise FormatError("app descriptor", f"{text!r} does not fit {size - 1} bytes")
            return raw.ljust(size, b"\0")

        if len(self.app_elf_sha256) != 32:
            raise FormatError("app descriptor", "app_elf_sha256 must be 32 bytes")
        return _APP_DESC.pack(
            APP_DESC_MAGIC,
            self.secure_version,
            b"\0" * 8,
            field(self.version, 32),
            field(self.project_name, 32),
            field(self.time, 16),
            field(self.date, 16),
            field(self.idf_ver, 32),
            self.app_elf_sha256,
            self.min_efuse_blk_rev_full,
            self.max_efuse_blk_rev_full,
            self.mmu_page_size_log2,
            b"\0" * 3,
            b"\0" * 72,
        )


@dataclass(frozen=True, slots=True)
class AppImage:
    """A validated application image.

    ``length`` is the size of the image proper (through the appended digest). Bytes after it,
    such as a secure-boot signature, start at ``length`` and are ``trailer_length`` long.
    ``sha256`` is the SHA-256 of the first ``length`` bytes.
    """

    header: ImageHeader
    segments: tuple[Segment, ...]
    app_desc: AppDescriptor
    app_desc_raw: bytes
    checksum: int
    length: int
    sha256: bytes
    trailer_length: int

    @property
    def chip_id(self) -> int:
        return self.header.chip_id

    @property
    def chip(self) -> str:
        return chip_name(self.header.chip_id)


class Readable(Protocol):
    """Anything with a binary ``read(size)``: files, ``io.BytesIO``, hashing wrappers."""

    def read(self, size: int = -1, /) -> bytes: ...


class _Reader:
    """Sequential reads with an exact-length check, a running SHA-256 and a size ceiling."""

    def __init__(self, stream: Readable, max_size: int, sha256: Any = None) -> None:
        self._stream = stream
        self._max = max_size
        self.position = 0
        self.hash = hashlib.sha256() if sha256 is None else sha256

    def exact(self, size: int, what: str) -> bytes:
        if self.position + size > self._max:
            raise FormatError(
                "app image", f"{what} would end at byte {self.position + size}, beyond the limit"
            )
        data = self._stream.read(size)
        if len(data) != size:
            raise FormatError(
                "app image",
                f"truncated: {what} needs {size} bytes at offset {self.position}, "
                f"only {len(data)} present",
            )
        self.position += size
        self.hash.update(data)
        return data


def _read_header(reader: _Reader) -> ImageHeader:
    (
        magic,
        segment_count,
        spi_mode,
        spi_speed_size,
        entry_addr,
        wp_pin,
        pin_drv,
        chip_id,
        min_rev,
        min_rev_full,
        max_rev_full,
        _reserved,
        hash_appended,
    ) = _HEADER.unpack(reader.exact(HEADER_SIZE, "image header"))
    if magic != IMAGE_MAGIC:
        raise FormatError(
            "app image", f"first byte is {magic:#04x}, expected {IMAGE_MAGIC:#04x} (image magic)"
        )
    if not 1 <= segment_count <= MAX_SEGMENTS:
        raise FormatError(
            "app image", f"segment count {segment_count} is outside 1..{MAX_SEGMENTS}"
        )
    if hash_appended not in (0, 1):
        raise FormatError("app image", f"hash_appended is {hash_appended}, expected 0 or 1")
    return ImageHeader(
        segment_count=segment_count,
        spi_mode=spi_mode,
        spi_speed_size=spi_speed_size,
        entry_addr=entry_addr,
        wp_pin=wp_pin,
        spi_pin_drv=bytes(pin_drv),
        chip_id=chip_id,
        min_chip_rev=min_rev,
        min_chip_rev_full=min_rev_full,
        max_chip_rev_full=max_rev_full,
        hash_appended=bool(hash_appended),
    )


@dataclass(slots=True)
class _Body:
    segments: list[Segment]
    desc_raw: bytes = b""
    checksum: int = CHECKSUM_SEED


def _read_segments(reader: _Reader, count: int, max_size: int) -> _Body:
    body = _Body(segments=[])
    # XOR is position-independent: fold every chunk into one integer and reduce it to a byte
    # once at the end (half the work of reducing each chunk)
    folded = 0
    for index in range(count):
        load_addr, length = _SEGMENT.unpack(reader.exact(SEGMENT_HEADER_SIZE, f"segment {index}"))
        if length % 4:
            raise FormatError("app image", f"segment {index} length {length:#x} is not 4-aligned")
        if reader.position + length > max_size:
            raise FormatError(
                "app image",
                f"segment {index} claims {length} bytes at offset {reader.position}, "
                f"beyond the {max_size}-byte limit",
            )
        body.segments.append(Segment(load_addr=load_addr, offset=reader.position, length=length))
        remaining = length
        if index == 0:
            if length < APP_DESC_SIZE:
                raise FormatError(
                    "app image",
                    f"first segment is {length} bytes, too short for the app descriptor",
                )
            body.desc_raw = reader.exact(APP_DESC_SIZE, "app descriptor")
            body.checksum = xor_checksum(body.desc_raw, body.checksum)
            remaining -= APP_DESC_SIZE
        while remaining:
            chunk = reader.exact(min(remaining, STREAM_CHUNK), f"segment {index} data")
            folded ^= int.from_bytes(chunk, "little")
            remaining -= len(chunk)
    body.checksum = xor_checksum(
        folded.to_bytes((folded.bit_length() + 7) // 8, "little"), body.checksum
    )
    return body


def _read_footer(reader: _Reader, checksum: int, hash_appended: bool) -> bytes:
    """Check the checksum byte and the appended digest; return the SHA-256 of the image."""
    padding = 15 - (reader.position % 16)
    stored_checksum = reader.exact(padding + 1, "checksum")[-1]
    if stored_checksum != checksum:
        raise FormatError(
            "app image",
            f"checksum byte at offset {reader.position - 1} is {stored_checksum:#04x}, "
            f"computed {checksum:#04x} (image corrupted)",
        )
    if hash_appended:
        offset = reader.position
        expected = reader.hash.digest()
        if reader.exact(DIGEST_SIZE, "appended SHA-256") != expected:
            raise FormatError(
                "app image",
                f"appended SHA-256 at offset {offset} does not match the image (image corrupted)",
            )
    return reader.hash.digest()


def read_app_image(
    stream: Readable, *, max_size: int = MAX_IMAGE_SIZE, sha256: Any = None
) -> AppImage:
    """Parse and validate an application image from a binary stream, in constant memory.

    Reads the stream to its end. Raises :class:`FormatError` naming the first inconsistency.
    ``sha256``, a fresh ``hashlib.sha256()`` object, is used as the running digest: afterwards
    it holds the state after exactly the image's bytes (without any trailer), so that a caller
    can extend it instead of hashing the image again.
    """
    reader = _Reader(stream, max_size, sha256)
    header = _read_header(reader)
    body = _read_segments(reader, header.segment_count, max_size)
    app_desc = AppDescriptor.from_bytes(body.desc_raw)
    digest = _read_footer(reader, body.checksum, header.hash_appended)
    length = reader.position
    if length < MIN_IMAGE_SIZE:
        raise FormatError("app image", f"only {length} bytes long, too short to be an app image")
    trailer = 0
    while chunk := stream.read(STREAM_CHUNK):
        trailer += len(chunk)
        if length + trailer > max_size:
            raise FormatError("app image", f"file is larger than the {max_size}-byte limit")
    return AppImage(
        header=header,
        segments=tuple(body.segments),
        app_desc=app_desc,
        app_desc_raw=body.desc_raw,
        checksum=body.checksum,
        length=length,
        sha256=digest,
        trailer_length=trailer,
    )


def parse_app_image(data: bytes, *, max_size: int = MAX_IMAGE_SIZE) -> AppImage:
    """Parse and validate an application image held in memory."""
    if len(data) > max_size:
        raise FormatError(
            "app image", f"{len(data)} bytes is larger than the {max_size}-byte limit"
        )
    return read_app_image(io.BytesIO(data), max_size=max_size)
