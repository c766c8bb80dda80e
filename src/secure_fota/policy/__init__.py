"""The device's side of the release format: pure decisions and verification, no I/O.

:mod:`.decision` decides whether verified claims are an acceptable update for a device;
:mod:`.verifier` opens a manifest and checks an image against it, mapping every failure to
one :class:`secure_fota.reasons.Reason`. The Python reference device and the tests use these;
the C core implements the same rules in the same order.
"""

from secure_fota.policy.decision import DeviceFacts, decide, decide_nothing_new
from secure_fota.policy.verifier import (
    ImageCheck,
    check_image,
    check_manifest,
    check_nothing_new,
    check_signed_image,
)

__all__ = [
    "DeviceFacts",
    "ImageCheck",
    "check_image",
    "check_manifest",
    "check_nothing_new",
    "check_signed_image",
    "decide",
    "decide_nothing_new",
]
