"""A model of an ESP32's flash for OTA: partitions, otadata and an anti-rollback eFuse.

Partitions are files in the device's state directory. ``otadata`` holds two 32-byte entries
(ESP-IDF's ``esp_ota_select_entry_t``: ``ota_seq``, a label, ``ota_state`` and a CRC over
``ota_seq``) in two sectors; a write goes to the sector the current entry is not in, so a
power loss during it leaves the other entry intact. Every write step passes through a
:class:`FaultInjector`, which the tests use to cut the power at any step.
"""

from __future__ import annotations

import json
import struct
import zlib
from dataclasses import dataclass
from enum import IntEnum
from pathlib import Path
from typing import Final

from secure_fota.atomic_file import write_atomic

__all__ = [
    "OTA_SLOTS",
    "FaultInjector",
    "Flash",
    "ImageState",
    "OtaEntry",
    "PowerLoss",
]

OTA_SLOTS: Final = ("ota_0", "ota_1")
FACTORY: Final = "factory"
_ENTRY = struct.Struct("<I20sII")
_SECTOR: Final = 4096
_ERASED: Final = 0xFFFFFFFF


class ImageState(IntEnum):
    """``esp_ota_img_states_t``."""

    NEW = 0x0
    PENDING_VERIFY = 0x1
    VALID = 0x2
    INVALID = 0x3
    ABORTED = 0x4
    UNDEFINED = 0xFFFFFFFF


class PowerLoss(Exception):
    """Raised by the fault injector: the device lost power at this step."""


class FaultInjector:
    """Counts write steps; raises :class:`PowerLoss` at step ``fail_at`` (1-based)."""

    def __init__(self, fail_at: int | None = None) -> None:
        self.fail_at = fail_at
        self.steps: list[str] = []

    def step(self, label: str) -> None:
        self.steps.append(label)
        if self.fail_at is not None and len(self.steps) == self.fail_at:
            raise PowerLoss(f"power lost at step {len(self.steps)} ({label})")


@dataclass(frozen=True, slots=True)
class OtaEntry:
    ota_seq: int
    state: ImageState
    sector: int

    @property
    def slot(self) -> str:
        return OTA_SLOTS[(self.ota_seq - 1) % len(OTA_SLOTS)]


def _crc(ota_seq: int) -> int:
    return zlib.crc32(struct.pack("<I", ota_seq)) & 0xFFFFFFFF


class Flash:
    """Partitions, otadata and eFuse of one device, persisted under ``directory``."""

    def __init__(
        self, directory: Path, slot_size: int, faults: FaultInjector | None = None
    ) -> None:
        self.directory = directory
        self.slot_size = slot_size
        self.faults = faults or FaultInjector()

    # -- partitions -------------------------------------------------------------------
    def partition_path(self, name: str) -> Path:
        if name not in (FACTORY, *OTA_SLOTS):
            raise ValueError(f"no partition {name!r}")
        return self.directory / f"{name}.bin"

    def read_partition(self, name: str) -> bytes:
        path = self.partition_path(name)
        return path.read_bytes() if path.exists() else b""

    def erase(self, name: str) -> None:
        self.faults.step(f"erase {name}")
        self.partition_path(name).write_bytes(b"")

    def append(self, name: str, data: bytes) -> None:
        """Write the next chunk of an image; a power loss may leave it half written."""
        path = self.partition_path(name)
        if path.stat().st_size + len(data) > self.slot_size:
            raise ValueError(f"image does not fit partition {name}")
        half = len(data) // 2
        with path.open("ab") as handle:
            handle.write(data[:half])
            handle.flush()
            self.faults.step(f"write {name}")
            handle.write(data[half:])

    def write_factory(self, image: bytes) -> None:
        self.partition_path(FACTORY).write_bytes(image)

    # -- otadata ----------------------------------------------------------------------
    def _otadata_path(self) -> Path:
        return self.directory / "otadata.bin"

    def entries(self) -> list[OtaEntry]:
        """The valid otadata entries (CRC correct, not erased)."""
        path = self._otadata_path()
        raw = path.read_bytes() if path.exists() else b"\xff" * (2 * _SECTOR)
        valid = []
        for sector in (0, 1):
            ota_seq, _label, state, crc = _ENTRY.unpack_from(raw, sector * _SECTOR)
            if ota_seq == _ERASED or crc != _crc(ota_seq):
                continue
            try:
                image_state = ImageState(state)
            except ValueError:
                image_state = ImageState.UNDEFINED
            valid.append(OtaEntry(ota_seq=ota_seq, state=image_state, sector=sector))
        return valid

    def current_entry(self) -> OtaEntry | None:
        entries = self.entries()
        return max(entries, key=lambda e: e.ota_seq) if entries else None

    def write_entry(self, ota_seq: int, state: ImageState, sector: int | None = None) -> None:
        """Write an otadata entry: into ``sector``, or into the one not holding the current entry.

        A power loss during the write leaves a torn entry whose CRC no longer matches.
        """
        path = self._otadata_path()
        raw = bytearray(path.read_bytes() if path.exists() else b"\xff" * (2 * _SECTOR))
        if sector is None:
            current = self.current_entry()
            sector = 0 if current is None or current.sector == 1 else 1
        offset = sector * _SECTOR
        torn = bytearray(raw)
        torn[offset : offset + 4] = struct.pack("<I", ota_seq)  # seq written, CRC not yet
        write_atomic(path, bytes(torn))
        self.faults.step(f"otadata entry {ota_seq} {state.name}")
        raw[offset : offset + _ENTRY.size] = _ENTRY.pack(
            ota_seq, b"\xff" * 20, int(state), _crc(ota_seq)
        )
        write_atomic(path, bytes(raw))

    def set_state(self, entry: OtaEntry, state: ImageState) -> None:
        """Change the state of an existing entry in place (as ESP-IDF does)."""
        self.write_entry(entry.ota_seq, state, sector=entry.sector)

    # -- eFuse ------------------------------------------------------------------------
    def _efuse_path(self) -> Path:
        return self.directory / "efuse.json"

    def efuse_secure_version(self) -> int:
        path = self._efuse_path()
        return int(json.loads(path.read_text())["secure_version"]) if path.exists() else 0

    def burn_secure_version(self, value: int) -> None:
        """eFuse bits only ever go from 0 to 1: the value can rise, never fall."""
        current = self.efuse_secure_version()
        if value <= current:
            return
        self.faults.step(f"efuse secure_version {value}")
        write_atomic(self._efuse_path(), json.dumps({"secure_version": value}).encode())
