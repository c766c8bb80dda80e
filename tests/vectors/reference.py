"""The Python reference's verdict on release files, in the shape ``secure_ota_host`` prints.

``{"accept": bool, "reason": str | None, "claims": dict | None, "keyset": dict | None}``:
``claims`` and ``keyset`` (the manifest-signing key set the manifest was verified under, reached
through its key rotations: ``{"version": int, "kids": [sorted key ids]}``, docs/formats.md §4.4)
are set whenever the manifest opened (§4, §5), even if a later check refused the release. The
checks run as in :func:`secure_fota.author.check.verify_release_files`, with the freshness
statement of :func:`secure_fota.policy.verifier.check_manifest` when one is given.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

from secure_fota.crypto.keyring import DeviceKeys
from secure_fota.errors import ReleaseRejected
from secure_fota.keys.directory import load_device_keys
from secure_fota.limits import MAX_MANIFEST_SIZE
from secure_fota.policy.decision import DeviceFacts, decide, decide_nothing_new
from secure_fota.policy.verifier import (
    check_freshness,
    check_image,
    check_nothing_new,
    open_checked,
)

__all__ = ["reference_verdict"]

_KEY_CACHE: dict[Path, DeviceKeys] = {}


def _keys(directory: Path) -> DeviceKeys:
    if directory not in _KEY_CACHE:
        _KEY_CACHE[directory] = load_device_keys(directory)
    return _KEY_CACHE[directory]


def _nothing_new(
    keys: DeviceKeys,
    manifest: Path | None,
    *,
    device_type: str,
    installed_seq: int,
    secure_version: int,
    chip_id: int | None,
    now: int | None,
    freshness: Path | None,
    nonce: str | None,
    device_id: str | None,
) -> dict[str, Any]:
    """An HTTP 404: the ``none`` statement, then :func:`decide_nothing_new` with the claims of
    ``manifest`` (the device's copy of its installed release's manifest), if given."""
    claims = keyset = None
    if manifest is not None:
        try:
            opened = open_checked(manifest.read_bytes()[: MAX_MANIFEST_SIZE + 1], keys)
        except ReleaseRejected as exc:
            return {"accept": False, "reason": exc.reason.value, "claims": None, "keyset": None}
        claims = opened.claims
        keyset = {"version": opened.keyset.version, "kids": sorted(opened.keyset.keys)}
    shown = {"claims": claims.to_dict() if claims else None, "keyset": keyset}
    facts = DeviceFacts(
        device_type=device_type,
        chip_id=claims.chip_id if chip_id is None and claims else (chip_id or 0),
        installed_seq=installed_seq,
        secure_version=secure_version,
    )
    try:
        if freshness is not None:
            statement = freshness.read_bytes().decode("latin-1")
            check_nothing_new(
                statement, keys, nonce=nonce or "", device_type=device_type, device_id=device_id
            )
        decide_nothing_new(claims, facts, now=now)
    except ReleaseRejected as exc:
        return {"accept": False, "reason": exc.reason.value} | shown
    raise AssertionError("decide_nothing_new always refuses")  # pragma: no cover


def reference_verdict(
    keys_dir: Path,
    manifest: Path | None,
    binary: Path | None,
    *,
    device_type: str,
    installed_seq: int,
    secure_version: int,
    chip_id: int | None = None,
    now: int | None = None,
    freshness: Path | None = None,
    nonce: str | None = None,
    keyset_version: int | None = None,
    none: bool = False,
    device_id: str | None = None,
) -> dict[str, Any]:
    """``keyset_version`` overrides the key directory's ``keyset_version`` file. ``none``:
    judge an HTTP 404 ("no release"; ``manifest``: the installed release's, or ``None``).
    ``device_id``: the device's own id for the freshness check (``None``: it has none)."""
    keys = _keys(keys_dir)
    if keyset_version is not None:
        keys = dataclasses.replace(keys, keyset_version=keyset_version)
    if none:
        return _nothing_new(
            keys,
            manifest,
            device_type=device_type,
            installed_seq=installed_seq,
            secure_version=secure_version,
            chip_id=chip_id,
            now=now,
            freshness=freshness,
            nonce=nonce,
            device_id=device_id,
        )
    assert manifest is not None
    with manifest.open("rb") as handle:
        token = handle.read(MAX_MANIFEST_SIZE + 1)
    try:
        opened = open_checked(token, keys)
    except ReleaseRejected as exc:
        return {"accept": False, "reason": exc.reason.value, "claims": None, "keyset": None}
    claims = opened.claims
    keyset = {"version": opened.keyset.version, "kids": sorted(opened.keyset.keys)}
    try:
        if freshness is not None:
            statement = freshness.read_bytes().decode("latin-1")
            check_freshness(
                statement,
                token,
                claims,
                keys,
                nonce=nonce or "",
                device_type=device_type,
                device_id=device_id,
            )
        facts = DeviceFacts(
            device_type=device_type,
            chip_id=claims.chip_id if chip_id is None else chip_id,
            installed_seq=installed_seq,
            secure_version=secure_version,
        )
        decide(claims, facts, now=now)
        if binary is not None:
            with binary.open("rb") as handle:
                check_image(handle, claims, keys)
    except ReleaseRejected as exc:
        verdict = {"accept": False, "reason": exc.reason.value, "claims": claims.to_dict()}
        return verdict | {"keyset": keyset}
    return {"accept": True, "reason": None, "claims": claims.to_dict(), "keyset": keyset}
