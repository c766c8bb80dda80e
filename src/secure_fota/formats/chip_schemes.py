"""Which secure-boot signature schemes each chip's ROM bootloader verifies.

From Espressif's ESP-IDF "Secure Boot v2" pages, one per chip
(``docs.espressif.com/projects/esp-idf/en/<version>/<chip>/security/secure-boot-v2.html``,
v5.0-v6.1, read 2026-12):

* ESP32: Secure Boot V1 (ECDSA P-256 app signatures) and, from ECO3 (rev 3) on, V2 with
  RSA-3072 (RSA-PSS) only.
* ESP32-S2, ESP32-S3, ESP32-C3 (ECO3 on): V2 with RSA-3072 (RSA-PSS) only.
* ESP32-C2: V2 with ECDSA only ("an ECC based Secure Boot verification scheme"); we sign
  P-256 (the chip also knows P-192, never P-384).
* ESP32-C6: V2 with RSA-PSS or ECDSA.
* ESP32-H2, ESP32-P4: V2 with RSA-PSS or ECDSA; the pages of v5.2-v5.5 warn that ECDSA "is
  not functional for certain input vectors" on the current revisions (use RSA).
* ESP32-C61: V2 with ECDSA only, flagged as vulnerable for certain inputs on current revisions.

Chips not listed (C5, H21, H4) are not judged. ECDSA P-384 is accepted for the chips that take
ECDSA at all; the ROM's curve list depends on the chip revision, so check the chip's page.
"""

from __future__ import annotations

from typing import Final

from secure_fota.formats.secure_boot import Scheme

__all__ = ["CHIP_SCHEMES", "scheme_warning"]

_RSA: Final = frozenset({Scheme.V2_RSA3072})
_ECDSA: Final = frozenset({Scheme.V2_ECDSA256, Scheme.V2_ECDSA384})

#: chip name -> the schemes its ROM bootloader verifies
CHIP_SCHEMES: Final[dict[str, frozenset[Scheme]]] = {
    "esp32": frozenset({Scheme.V1, Scheme.V2_RSA3072}),
    "esp32s2": _RSA,
    "esp32s3": _RSA,
    "esp32c3": _RSA,
    "esp32c2": frozenset({Scheme.V2_ECDSA256}),
    "esp32c6": _RSA | _ECDSA,
    "esp32h2": _RSA | _ECDSA,
    "esp32p4": _RSA | _ECDSA,
    "esp32c61": _ECDSA,
}

#: chip -> a caveat Espressif's page gives for ECDSA on it
_ECDSA_CAVEATS: Final[dict[str, str]] = {
    "esp32h2": "Espressif's docs call ECDSA secure boot on ESP32-H2 not functional for some "
    "inputs on current revisions and recommend RSA-3072 (v2-rsa3072)",
    "esp32p4": "Espressif's docs call ECDSA secure boot on ESP32-P4 not functional for some "
    "inputs on current revisions and recommend RSA-3072 (v2-rsa3072)",
    "esp32c61": "Espressif's docs flag ECDSA secure boot on ESP32-C61 as vulnerable for some "
    "inputs on current revisions (not for production)",
}


def scheme_warning(chip: str, scheme: Scheme) -> str | None:
    """A warning when ``chip``'s ROM does not verify ``scheme`` (or Espressif advises
    against it); ``None`` when the pair is fine or the chip is not in the table."""
    accepted = CHIP_SCHEMES.get(chip)
    if accepted is None:
        return None
    if scheme not in accepted:
        names = ", ".join(sorted(s.value for s in accepted))
        only = "only " if len(accepted) == 1 else ""
        return (
            f"secure boot {scheme.value} for {chip}: its ROM bootloader verifies {only}{names} "
            "(Espressif's Secure Boot v2 docs); a device with secure boot enabled will not "
            "boot this image"
        )
    if scheme in _ECDSA and chip in _ECDSA_CAVEATS:
        return f"secure boot {scheme.value} for {chip}: {_ECDSA_CAVEATS[chip]}"
    return None
