"""``fota author verify``: judge release files exactly as a device would."""

from __future__ import annotations

from pathlib import Path

from secure_fota.bounded_read import read_bounded
from secure_fota.errors import NotFoundError
from secure_fota.formats.app_image import chip_id_for
from secure_fota.formats.manifest import ManifestClaims
from secure_fota.keys.directory import load_device_keys
from secure_fota.limits import MAX_MANIFEST_SIZE
from secure_fota.policy import DeviceFacts, check_image, check_manifest
from secure_fota.policy.verifier import open_checked

__all__ = ["verify_release_files"]


def verify_release_files(
    manifest: Path,
    binary: Path | None,
    device_keys: Path,
    *,
    device_type: str | None,
    chip: str | None,
    installed_seq: int,
    secure_version: int,
    now: int | None,
) -> ManifestClaims:
    """Open the manifest, apply the device policy and, if given, check the binary."""
    keys = load_device_keys(device_keys)
    # an oversized manifest is the policy's to refuse (manifest_too_large), as on a device
    token = read_bounded(manifest, MAX_MANIFEST_SIZE, what="file", truncate=True)
    opened = open_checked(token, keys)
    facts = DeviceFacts(
        device_type=device_type or opened.claims.device_type,
        chip_id=chip_id_for(chip) if chip else opened.claims.chip_id,
        installed_seq=installed_seq,
        secure_version=secure_version,
    )
    claims = check_manifest(token, keys, facts, now=now, opened=opened).claims
    if binary is None:
        return claims
    try:
        handle = binary.open("rb")
    except FileNotFoundError:
        raise NotFoundError(f"{binary}: file not found") from None
    with handle:
        check_image(handle, claims, keys)
    return claims
