"""Whether a verified manifest is an update this device should install.

The rules, in order (the first failing rule is the reason):

1. ``device_type`` equals the device's type              -> ``wrong_device_type``
2. ``chip_id`` equals the device's chip                   -> ``wrong_chip``
3. ``seq`` is not the installed one                       -> ``already_installed``
   (but ``expired`` when the device knows the time and it is past ``exp``: the server keeps
   offering a release its author no longer vouches for, so newer ones are being withheld)
4. ``seq`` is greater than the installed one              -> ``rollback``
5. ``secure_version`` is not below the device's eFuse     -> ``secure_version_too_low``
6. when the device knows the time, it is before ``exp``   -> ``expired``
7. ``image_size`` fits the device's update slot           -> ``image_too_large``
"""

from __future__ import annotations

from dataclasses import dataclass

from secure_fota.errors import ReleaseRejected
from secure_fota.formats.app_image import chip_name
from secure_fota.formats.manifest import ManifestClaims
from secure_fota.limits import MAX_IMAGE_SIZE
from secure_fota.reasons import Reason

__all__ = ["DeviceFacts", "decide", "decide_nothing_new"]


@dataclass(frozen=True, slots=True)
class DeviceFacts:
    """What a device knows about itself when it judges a release."""

    device_type: str
    chip_id: int
    installed_seq: int
    secure_version: int
    slot_size: int = MAX_IMAGE_SIZE


def decide(claims: ManifestClaims, facts: DeviceFacts, *, now: int | None) -> None:
    """Return if ``claims`` describe an acceptable update; raise :class:`ReleaseRejected` if not.

    ``now`` is the current Unix time, or ``None`` when the device has no trusted clock (then
    ``exp`` is not checked and freshness rests on the server's nonce-bound statement).
    """
    if claims.device_type != facts.device_type:
        raise ReleaseRejected(
            Reason.WRONG_DEVICE_TYPE,
            f"release is for device type {claims.device_type!r}, this is {facts.device_type!r}",
        )
    if claims.chip_id != facts.chip_id:
        raise ReleaseRejected(
            Reason.WRONG_CHIP,
            f"release is for {chip_name(claims.chip_id)}, this device is "
            f"{chip_name(facts.chip_id)}",
        )
    expired = now is not None and claims.exp is not None and now >= claims.exp
    if claims.seq == facts.installed_seq:
        if expired:
            raise ReleaseRejected(
                Reason.EXPIRED,
                f"the server's newest release is the installed release {claims.seq}, which "
                f"expired at {claims.exp} (device time {now}): updates are being withheld",
            )
        raise ReleaseRejected(Reason.ALREADY_INSTALLED, f"release {claims.seq} is installed")
    if claims.seq < facts.installed_seq:
        raise ReleaseRejected(
            Reason.ROLLBACK,
            f"release {claims.seq} is older than the installed release {facts.installed_seq}",
        )
    if claims.secure_version < facts.secure_version:
        raise ReleaseRejected(
            Reason.SECURE_VERSION_TOO_LOW,
            f"secure_version {claims.secure_version} is below the device's "
            f"anti-rollback value {facts.secure_version}",
        )
    if expired:
        raise ReleaseRejected(
            Reason.EXPIRED, f"manifest expired at {claims.exp} (device time {now})"
        )
    if claims.image_size > facts.slot_size:
        raise ReleaseRejected(
            Reason.IMAGE_TOO_LARGE,
            f"image of {claims.image_size} bytes does not fit the {facts.slot_size}-byte slot",
        )


def decide_nothing_new(
    installed: ManifestClaims | None, facts: DeviceFacts, *, now: int | None
) -> None:
    """The decision when the server answers that the device type has no release (HTTP 404,
    its ``none`` statement checked): always :class:`ReleaseRejected` — ``already_installed``
    (nothing to do), or ``expired`` when ``installed`` (the device's copy of its installed
    release's manifest, if it holds one) is past ``exp`` on a trusted clock: as in rule 3, a
    server that withholds every release must not keep the device past the author's bound."""
    if (
        installed is not None
        and installed.seq == facts.installed_seq
        and now is not None
        and installed.exp is not None
        and now >= installed.exp
    ):
        raise ReleaseRejected(
            Reason.EXPIRED,
            f"the server states it has no release; the installed release {installed.seq} "
            f"expired at {installed.exp} (device time {now}): updates are being withheld",
        )
    raise ReleaseRejected(Reason.ALREADY_INSTALLED, "the server has no release for this type")
