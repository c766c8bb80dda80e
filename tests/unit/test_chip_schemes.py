"""formats/chip_schemes.py: the schemes each chip's ROM verifies (Espressif's Secure Boot v2
pages) and the warning `fota author release` prints for a pair that cannot boot."""

from __future__ import annotations

import pytest

from secure_fota.formats.app_image import CHIP_NAMES
from secure_fota.formats.chip_schemes import CHIP_SCHEMES, scheme_warning
from secure_fota.formats.secure_boot import Scheme

V1, RSA, P256, P384 = Scheme.V1, Scheme.V2_RSA3072, Scheme.V2_ECDSA256, Scheme.V2_ECDSA384


@pytest.mark.parametrize(
    ("chip", "fine", "refused"),
    [
        ("esp32", {V1, RSA}, {P256, P384}),
        ("esp32s2", {RSA}, {V1, P256, P384}),
        ("esp32s3", {RSA}, {V1, P256, P384}),
        ("esp32c3", {RSA}, {V1, P256, P384}),
        ("esp32c2", {P256}, {V1, RSA, P384}),
        ("esp32c6", {RSA, P256, P384}, {V1}),
    ],
)
def test_table(chip: str, fine: set[Scheme], refused: set[Scheme]) -> None:
    for scheme in fine:
        assert scheme_warning(chip, scheme) is None, (chip, scheme)
    for scheme in refused:
        warning = scheme_warning(chip, scheme)
        assert warning is not None and "will not boot" in warning, (chip, scheme)


def test_rsa_only_chips_say_so() -> None:
    warning = scheme_warning("esp32c3", P256)
    assert warning is not None and "verifies only v2-rsa3072" in warning


@pytest.mark.parametrize("chip", ["esp32h2", "esp32p4", "esp32c61"])
def test_ecdsa_caveats(chip: str) -> None:
    warning = scheme_warning(chip, P256)
    assert warning is not None and "Espressif's docs" in warning


def test_table_names_real_chips_and_unknown_chips_are_not_judged() -> None:
    assert set(CHIP_SCHEMES) <= set(CHIP_NAMES.values())
    assert scheme_warning("esp32c5", P256) is None
