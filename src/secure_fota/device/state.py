"""What a device keeps between commands: its configuration and its NVS, as JSON files.

``device.json`` is written once at provisioning (device type, chip, server, CA, scheme).
``nvs.json`` is the device's non-volatile storage: the ``seq`` of the image in each slot, the
cached manifest (for ``If-None-Match``) and the progress of an interrupted download. Both are
replaced atomically, like NVS entries.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Final

from secure_fota.atomic_file import write_atomic
from secure_fota.device.flash import FaultInjector
from secure_fota.errors import ConfigError, NotFoundError
from secure_fota.formats.secure_boot import Scheme

__all__ = ["DeviceConfig", "Download", "Nvs", "StateDir"]

CONFIG_FILE: Final = "device.json"
NVS_FILE: Final = "nvs.json"
KEYS_DIR: Final = "keys"
CA_FILE: Final = "ca.pem"
#: the device's bearer token (its NVS key ``fota_token`` on an ESP32), mode 0600
TOKEN_FILE: Final = "device_token"  # noqa: S105 -- a file name


@dataclass(frozen=True, slots=True)
class DeviceConfig:
    device_type: str
    chip_id: int
    server: str
    secure_boot: Scheme
    slot_size: int
    require_freshness: bool = True
    timeout: float = 10.0
    #: the id the device reports and polls with (None: a device provisioned before reports)
    device_id: str | None = None

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> DeviceConfig:
        try:
            return cls(
                device_type=str(data["device_type"]),
                chip_id=int(data["chip_id"]),
                server=str(data["server"]),
                secure_boot=Scheme(data["secure_boot"]),
                slot_size=int(data["slot_size"]),
                require_freshness=bool(data.get("require_freshness", True)),
                timeout=float(data.get("timeout", 10.0)),
                device_id=str(data["device_id"]) if data.get("device_id") else None,
            )
        except (KeyError, ValueError, TypeError, AttributeError) as exc:
            raise ConfigError(f"device.json is damaged ({exc})") from None

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["secure_boot"] = self.secure_boot.value
        return data


@dataclass(slots=True)
class Download:
    """An interrupted download: which release, and how much of it is on disk."""

    seq: int
    enc_sha256: str
    url: str


@dataclass(slots=True)
class Nvs:
    slot_seq: dict[str, int] = field(default_factory=dict)
    manifest_etag: str | None = None
    download: Download | None = None
    #: the last report counter used (monotonic: the server refuses one it has seen)
    report_counter: int = 0
    #: signed reports not yet delivered, oldest first (sent before any new one)
    pending_reports: list[str] = field(default_factory=list)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Nvs:
        download = data.get("download")
        return cls(
            slot_seq={str(k): int(v) for k, v in data.get("slot_seq", {}).items()},
            manifest_etag=data.get("manifest_etag"),
            download=Download(**download) if download else None,
            report_counter=int(data.get("report_counter", 0)),
            pending_reports=[str(r) for r in data.get("pending_reports", [])],
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "slot_seq": self.slot_seq,
            "manifest_etag": self.manifest_etag,
            "download": asdict(self.download) if self.download else None,
            "report_counter": self.report_counter,
            "pending_reports": self.pending_reports,
        }


class StateDir:
    """The files of one device."""

    def __init__(self, path: Path, faults: FaultInjector | None = None) -> None:
        self.path = path
        self.faults = faults or FaultInjector()

    @property
    def keys(self) -> Path:
        return self.path / KEYS_DIR

    @property
    def ca(self) -> Path:
        return self.path / CA_FILE

    def load_token(self) -> str | None:
        """The token the device sends (``None``: the server's device endpoints are open)."""
        path = self.path / TOKEN_FILE
        try:
            return path.read_text().strip() or None
        except FileNotFoundError:
            return None

    def save_token(self, token: str) -> None:
        write_atomic(self.path / TOKEN_FILE, token.encode(), mode=0o600)

    @property
    def report_key(self) -> Path:
        """The device's own P-256 key that signs its reports (generated at provisioning)."""
        return self.path / "report_key.pem"

    @property
    def manifest_cache(self) -> Path:
        return self.path / "manifest.cache"

    @property
    def download_file(self) -> Path:
        return self.path / "download.part"

    def load_config(self) -> DeviceConfig:
        path = self.path / CONFIG_FILE
        try:
            return DeviceConfig.from_dict(json.loads(path.read_text()))
        except FileNotFoundError:
            raise NotFoundError(
                f"{self.path} is not a device state directory (run `fota device init`)"
            ) from None
        except json.JSONDecodeError as exc:
            raise ConfigError(f"{path} is damaged ({exc})") from None

    def save_config(self, config: DeviceConfig) -> None:
        write_atomic(self.path / CONFIG_FILE, json.dumps(config.to_dict(), indent=2).encode())

    def load_nvs(self) -> Nvs:
        path = self.path / NVS_FILE
        if not path.exists():
            return Nvs()
        try:
            return Nvs.from_dict(json.loads(path.read_text()))
        except (json.JSONDecodeError, TypeError, ValueError, AttributeError) as exc:
            raise ConfigError(f"{path} is damaged ({exc})") from None

    def save_nvs(self, nvs: Nvs, label: str = "nvs") -> None:
        self.faults.step(f"nvs {label}")
        write_atomic(self.path / NVS_FILE, json.dumps(nvs.to_dict(), indent=2).encode())
