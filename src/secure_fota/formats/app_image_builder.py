"""Build valid ESP-IDF application images without a toolchain.

The demo, the tests and the benchmarks need real images of any size, version and
``secure_version``: correct header, 4-aligned segments, checksum, appended SHA-256 and an
``esp_app_desc_t``, exactly as ``esptool elf2image`` lays them out (``esptool image-info``
reports them valid). The segment contents are deterministic filler, so such an image is
well-formed but does not run on a chip.
"""

from __future__ import annotations

import hashlib
import random
import struct
from dataclasses import dataclass

from secure_fota.errors import FormatError
from secure_fota.formats.app_image import (
    APP_DESC_SIZE,
    CHECKSUM_SEED,
    AppDescriptor,
    ImageHeader,
    chip_id_for,
    xor_checksum,
)
from secure_fota.limits import MAX_IMAGE_SIZE

__all__ = ["ImageSpec", "build_app_image"]

# (DROM, DRAM, IRAM, IROM) load addresses: the classic ESP32 map and the RISC-V chips' map
_ESP32_MAP = (0x3F400020, 0x3FFB0000, 0x40080000, 0x400D0020)
_RISCV_MAP = (0x3C000020, 0x3FC80000, 0x40380000, 0x42000020)
_XTENSA_S_MAP = (0x3F000020, 0x3FFBE000, 0x40022000, 0x40080020)
_MAPS = {"esp32": _ESP32_MAP, "esp32s2": _XTENSA_S_MAP, "esp32s3": _XTENSA_S_MAP}


@dataclass(frozen=True, slots=True)
class ImageSpec:
    """What the built image claims to be."""

    chip: str = "esp32"
    version: str = "1.0.0"
    project_name: str = "secure_fota_demo"
    secure_version: int = 0
    idf_ver: str = "v5.2.2"
    size: int = 128 * 1024
    seed: int = 0
    time: str = "00:00:00"
    date: str = "Jan  1 2026"


def _segment(load_addr: int, data: bytes) -> bytes:
    if len(data) % 4:
        data += b"\0" * (4 - len(data) % 4)
    return struct.pack("<II", load_addr, len(data)) + data


def build_app_image(spec: ImageSpec) -> bytes:
    """Return a complete, valid application image of about ``spec.size`` bytes."""
    if not 4096 <= spec.size <= MAX_IMAGE_SIZE:
        raise FormatError("image spec", f"size must be 4096..{MAX_IMAGE_SIZE}, got {spec.size}")
    chip_id = chip_id_for(spec.chip)
    drom, dram, iram, irom = _MAPS.get(spec.chip.lower(), _RISCV_MAP)
    filler = random.Random(spec.seed)  # noqa: S311 -- deterministic filler, not a secret

    payload = spec.size - 24 - 4 * 8 - 16 - 32
    drom_len = max(APP_DESC_SIZE + 256, payload // 8) & ~3
    dram_len = max(64, payload // 16) & ~3
    iram_len = max(256, payload // 4) & ~3
    irom_len = max(4, payload - drom_len - dram_len - iram_len) & ~3
    elf_sha = hashlib.sha256(f"{spec.project_name}/{spec.version}/{spec.seed}".encode()).digest()
    desc = AppDescriptor(
        secure_version=spec.secure_version,
        version=spec.version,
        project_name=spec.project_name,
        time=spec.time,
        date=spec.date,
        idf_ver=spec.idf_ver,
        app_elf_sha256=elf_sha,
        min_efuse_blk_rev_full=0,
        max_efuse_blk_rev_full=99,
        mmu_page_size_log2=16,
    ).to_bytes()
    segments = [
        (drom, desc + filler.randbytes(drom_len - APP_DESC_SIZE)),
        (dram, filler.randbytes(dram_len)),
        (iram, filler.randbytes(iram_len)),
        (irom, filler.randbytes(irom_len)),
    ]
    header = ImageHeader(
        segment_count=len(segments),
        spi_mode=2,
        spi_speed_size=0x10,
        entry_addr=iram + 0x4,
        wp_pin=0xEE,
        spi_pin_drv=b"\0\0\0",
        chip_id=chip_id,
        min_chip_rev=0,
        min_chip_rev_full=0,
        max_chip_rev_full=399 if chip_id == 0 else 199,
        hash_appended=True,
    )
    body = bytearray(header.to_bytes())
    checksum = CHECKSUM_SEED
    for load_addr, data in segments:
        body += _segment(load_addr, data)
        checksum = xor_checksum(data, checksum)
    body += b"\0" * (15 - len(body) % 16)
    body.append(checksum)
    body += hashlib.sha256(body).digest()
    return bytes(body)
