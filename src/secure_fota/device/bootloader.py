"""The second-stage bootloader's choice of app, with app rollback and anti-rollback on.

As ESP-IDF's bootloader does: take the otadata entry with the highest ``ota_seq``; an entry
still ``PENDING_VERIFY`` means the app never confirmed itself in its first boot, so it is
marked ``ABORTED`` and the previous app runs; an entry ``NEW`` becomes ``PENDING_VERIFY``.
Each candidate image must parse, carry a valid secure-boot signature and a ``secure_version``
not below the eFuse; otherwise the next candidate is tried, down to the factory app.
"""

from __future__ import annotations

from dataclasses import dataclass

from secure_fota.crypto.keys import PublicKey
from secure_fota.crypto.secure_boot import verify_image
from secure_fota.device.flash import FACTORY, Flash, ImageState, OtaEntry
from secure_fota.errors import FormatError, FotaError, VerificationError
from secure_fota.formats.app_image import AppImage, parse_app_image
from secure_fota.formats.secure_boot import Scheme

__all__ = ["BootResult", "Bricked", "boot"]


class Bricked(FotaError):
    """No partition holds a bootable image (the state every test asserts never happens)."""


@dataclass(frozen=True, slots=True)
class BootResult:
    slot: str
    image: AppImage
    entry: OtaEntry | None
    pending_verify: bool


def _verify(flash: Flash, slot: str, key: PublicKey, scheme: Scheme) -> AppImage | None:
    data = flash.read_partition(slot)
    if not data:
        return None
    try:
        image = parse_app_image(data)
        if verify_image(data, key, scheme) < image.length:
            return None
    except (FormatError, VerificationError):
        return None
    if image.app_desc.secure_version < flash.efuse_secure_version():
        return None
    return image


def boot(flash: Flash, secure_boot_key: PublicKey, scheme: Scheme) -> BootResult:
    """Select and verify the app to run; update otadata states as the bootloader does."""
    entries = sorted(flash.entries(), key=lambda e: e.ota_seq, reverse=True)
    chosen: OtaEntry | None = None
    for entry in entries:
        if entry.state in (ImageState.INVALID, ImageState.ABORTED):
            continue
        if entry.state is ImageState.PENDING_VERIFY:
            flash.set_state(entry, ImageState.ABORTED)  # its first boot never confirmed it
            continue
        chosen = entry
        break
    pending = False
    order: list[tuple[str, OtaEntry | None]] = []
    if chosen is not None:
        order.append((chosen.slot, chosen))
    for entry in entries:
        if entry is not chosen and entry.state is ImageState.VALID:
            order.append((entry.slot, entry))
    order.append((FACTORY, None))
    for slot, candidate in order:
        image = _verify(flash, slot, secure_boot_key, scheme)
        if image is None:
            continue
        if candidate is not None and candidate.state is ImageState.NEW:
            flash.set_state(candidate, ImageState.PENDING_VERIFY)
            pending = True
        return BootResult(slot=slot, image=image, entry=candidate, pending_verify=pending)
    raise Bricked("no partition holds a valid, signed image")
