"""secure-fota: secure firmware-over-the-air updates for ESP32 fleets."""

from __future__ import annotations

__all__ = ["__version__"]

__version__ = "0.1.0"
