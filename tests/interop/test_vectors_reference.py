"""The committed C-core vectors (tests/vectors) still carry the Python reference's verdicts."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.vectors.reference import reference_verdict

VECTORS = Path(__file__).resolve().parents[1] / "vectors"
CASES = json.loads((VECTORS / "cases.json").read_text())["cases"]


def test_vectors_cover_every_reason() -> None:
    reasons = {case["expect"]["reason"] for case in CASES}
    missing = {
        "manifest_too_large", "manifest_malformed", "unsupported_algorithm",
        "manifest_decrypt_failed", "unknown_key", "bad_signature", "invalid_claims",
        "unsupported_format", "wrong_device_type", "wrong_chip", "already_installed", "rollback",
        "secure_version_too_low", "expired", "freshness_invalid", "stale_manifest",
        "image_size_mismatch", "enc_digest_mismatch", "image_header_invalid",
        "image_decrypt_failed", "image_digest_mismatch", "image_invalid",
        "secure_boot_signature_invalid", None,
    } - reasons  # fmt: skip
    # image_too_large needs a device slot smaller than an image: tested in the C unit tests
    assert not missing


@pytest.mark.parametrize("case", CASES, ids=[case["name"] for case in CASES])
def test_reference_verdict_unchanged(case: dict) -> None:
    def file(name: str | None) -> Path | None:
        return VECTORS / name if name else None

    verdict = reference_verdict(
        VECTORS / case["keys"],
        file(case["manifest"]),
        file(case["bin"]),
        device_type=case["device_type"],
        installed_seq=case["installed_seq"],
        secure_version=case["secure_version"],
        chip_id=case["chip_id"],
        now=case["now"],
        freshness=file(case["freshness"]),
        nonce=case["nonce"],
        none=case.get("none", False),
        device_id=case.get("device_id"),
    )
    assert verdict == case["expect"]
