"""``fota author verify``: judge release files exactly as a device would."""

from __future__ import annotations

from pathlib import Path

from secure_fota.errors import NotFoundError
from secure_fota.formats.app_image import chip_id_for
from secure_fota.formats.manifest import ManifestClaims
from secure_fota.keys.directory import load_device_keys
from secure_fota.limits import MAX_MANIFEST_SIZE, STREAM_CHUNK
from secure_fota.policy import DeviceFacts, ImageCheck, check_manifest, check_signed_image
from secure_fota.policy.verifier import open_checked

__all__ = ["verify_release_files"]


def _read_bounded(path: Path, limit: int) -> bytes:
    try:
        with path.open("rb") as handle:
            return handle.read(limit + 1)
    except FileNotFoundError:
        raise NotFoundError(f"{path}: file not found") from None


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
    token = _read_bounded(manifest, MAX_MANIFEST_SIZE)
    claims = open_checked(token, keys).claims
    facts = DeviceFacts(
        device_type=device_type or claims.device_type,
        chip_id=chip_id_for(chip) if chip else claims.chip_id,
        installed_seq=installed_seq,
        secure_version=secure_version,
    )
    claims = check_manifest(token, keys, facts, now=now).claims
    if binary is None:
        return claims
    check = ImageCheck(claims, keys)
    plaintext = bytearray()
    try:
        with binary.open("rb") as handle:
            while chunk := handle.read(STREAM_CHUNK):
                plaintext += check.update(chunk)
    except FileNotFoundError:
        raise NotFoundError(f"{binary}: file not found") from None
    check.finish()
    check_signed_image(bytes(plaintext), claims, keys)
    return claims
