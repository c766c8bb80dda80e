"""Verification of a release on the device's side, with one reason code per failure.

Manifest: :func:`check_manifest` opens the envelope (size, structure, algorithms,
decryption, key id, signature, claims) and applies :func:`decide`.

Image: :class:`ImageCheck` consumes the ``.bin`` as it arrives, in one pass, and yields
plaintext for the update slot. Data beyond ``enc_size`` is refused at once (endless-data
attack). At :meth:`ImageCheck.finish` the checks run in this order: length, ``enc_sha256``,
header, key and GCM tag, ``image_sha256``. Because ``enc_sha256`` is signed, any change to
the file is reported as ``enc_digest_mismatch`` before the weaker checks are consulted.
Then :func:`check_signed_image` parses the plaintext image, compares it with the claims and
verifies its secure-boot signature. :func:`check_image` runs both over a ``.bin`` read from
a stream.
"""

from __future__ import annotations

import hashlib

from secure_fota.crypto.encrypted_image import ImageDecryptor
from secure_fota.crypto.freshness import (
    ANSWER_NEWEST,
    ANSWER_NONE,
    FreshnessStatement,
    open_statement,
)
from secure_fota.crypto.keyring import DeviceKeys
from secure_fota.crypto.manifest import OpenedManifest, open_manifest
from secure_fota.crypto.secure_boot import verify_image
from secure_fota.errors import FormatError, ReleaseRejected, VerificationError
from secure_fota.formats.app_image import AppImage, Readable, parse_app_image
from secure_fota.formats.manifest import ManifestClaims
from secure_fota.limits import STREAM_CHUNK
from secure_fota.policy.decision import DeviceFacts, decide
from secure_fota.reasons import Reason

__all__ = [
    "ImageCheck",
    "check_freshness",
    "check_image",
    "check_manifest",
    "check_nothing_new",
    "check_signed_image",
    "open_checked",
]


def open_checked(token: bytes, keys: DeviceKeys) -> OpenedManifest:
    """Open a manifest with the device's keys, mapping every failure to a reason."""
    try:
        return open_manifest(
            token,
            decryption_key=keys.manifest_decryption,
            trusted=keys.manifest_signing,
            keyset_version=keys.keyset_version,
        )
    except FormatError as exc:
        raise ReleaseRejected(exc.reason or Reason.MANIFEST_MALFORMED, exc.detail) from None
    except VerificationError as exc:
        if exc.check == "manifest decryption":
            raise ReleaseRejected(
                Reason.MANIFEST_DECRYPT_FAILED, "manifest cannot be decrypted with this key"
            ) from None
        raise ReleaseRejected(Reason.BAD_SIGNATURE, "manifest signature is not valid") from None


def _open_for_poll(
    statement: bytes | str | None,
    keys: DeviceKeys,
    *,
    nonce: str,
    device_type: str,
    device_id: str | None,
) -> FreshnessStatement:
    """§7 steps 1-3: present, signed by a trusted freshness key, well formed, for this poll
    (nonce) and device type, naming exactly the id this poll sent (``device_id``; ``None``: the
    device has no id and the statement must name none) — else ``freshness_invalid``."""
    if statement is None:
        raise ReleaseRejected(Reason.FRESHNESS_INVALID, "the server sent no freshness statement")
    try:
        opened = open_statement(statement, keys.freshness)
    except FormatError as exc:
        raise ReleaseRejected(Reason.FRESHNESS_INVALID, exc.detail) from None
    except VerificationError:
        raise ReleaseRejected(
            Reason.FRESHNESS_INVALID, "freshness statement signature is not valid"
        ) from None
    if opened.nonce != nonce or opened.device_type != device_type:
        raise ReleaseRejected(
            Reason.FRESHNESS_INVALID, "freshness statement is for another poll or device type"
        )
    # §7 step 2: the id this poll sent, or none when it sent none: a statement without the id
    # may answer a poll someone stripped of it (to keep the device out of a rollout)
    if opened.device_id != device_id:
        detail = (
            "freshness statement names no device (this device sent its id)"
            if opened.device_id is None
            else "freshness statement is for another device"
        )
        raise ReleaseRejected(Reason.FRESHNESS_INVALID, detail)
    return opened


def check_freshness(
    statement: bytes | str | None,
    manifest: bytes,
    claims: ManifestClaims,
    keys: DeviceKeys,
    *,
    nonce: str,
    device_type: str,
    device_id: str | None = None,
) -> None:
    """Check the server's statement for a poll answered with ``manifest`` (HTTP 200, or 304
    for the device's cached copy): it must answer ``newest`` for exactly this manifest.

    ``freshness_invalid`` if it is missing, not signed by a trusted freshness key, malformed,
    or not for this nonce, device type and device; ``stale_manifest`` if it answers ``none`` or
    vouches for another manifest. (Its ``seq`` is the server's id for the release,
    informational only: uploaders choose ids; the claims' ``seq`` is judged by §6.)
    """
    opened = _open_for_poll(
        statement, keys, nonce=nonce, device_type=device_type, device_id=device_id
    )
    if opened.answer != ANSWER_NEWEST:
        raise ReleaseRejected(
            Reason.STALE_MANIFEST,
            f"the server states it has no release, yet served release {claims.seq}",
        )
    if opened.manifest_sha256 != hashlib.sha256(manifest).hexdigest():
        raise ReleaseRejected(
            Reason.STALE_MANIFEST,
            f"the server vouches for another manifest (its release {opened.seq}) than the one "
            f"served (release {claims.seq})",
        )


def check_nothing_new(
    statement: bytes | str | None,
    keys: DeviceKeys,
    *,
    nonce: str,
    device_type: str,
    device_id: str | None = None,
) -> None:
    """Check the server's statement for a poll answered "no release" (HTTP 404): it must
    answer ``none`` for this poll — ``freshness_invalid`` as in :func:`check_freshness`;
    ``stale_manifest`` if it answers ``newest`` (a release exists that was not served)."""
    opened = _open_for_poll(
        statement, keys, nonce=nonce, device_type=device_type, device_id=device_id
    )
    if opened.answer != ANSWER_NONE:
        raise ReleaseRejected(
            Reason.STALE_MANIFEST,
            f"the server vouches for its release {opened.seq}, but the answer was 'no release'",
        )


def check_manifest(
    token: bytes,
    keys: DeviceKeys,
    facts: DeviceFacts,
    *,
    now: int | None,
    freshness: tuple[bytes | str | None, str] | None = None,
    opened: OpenedManifest | None = None,
    device_id: str | None = None,
) -> OpenedManifest:
    """Open a manifest, check its freshness (when asked) and decide whether to update.

    ``freshness`` is ``(statement, nonce)`` for devices that hold a freshness key; the
    statement must name ``device_id`` (the device's own id, the one its poll sent), or no device
    when that is ``None``.
    ``opened`` is ``token`` already opened with ``keys`` (:func:`open_checked`): it is not
    opened again.
    """
    if opened is None:
        opened = open_checked(token, keys)
    if freshness is not None:
        statement, nonce = freshness
        check_freshness(
            statement,
            token,
            opened.claims,
            keys,
            nonce=nonce,
            device_type=facts.device_type,
            device_id=device_id,
        )
    decide(opened.claims, facts, now=now)
    return opened


class ImageCheck:
    """One-pass check and decryption of a downloaded ``.bin`` against verified claims."""

    def __init__(self, claims: ManifestClaims, keys: DeviceKeys) -> None:
        self._claims = claims
        self._received = 0
        self._enc_hash = hashlib.sha256()
        self._plain_hash = hashlib.sha256()
        self._decryptor: ImageDecryptor | None = ImageDecryptor(
            keys.image_decryption, expected_size=claims.image_size
        )
        self._deferred: ReleaseRejected | None = None

    @property
    def received(self) -> int:
        return self._received

    def _defer(self, exc: FormatError | VerificationError) -> None:
        reason = Reason.IMAGE_DECRYPT_FAILED
        if isinstance(exc, FormatError):
            reason = exc.reason or Reason.IMAGE_HEADER_INVALID
        if reason is Reason.IMAGE_SIZE_MISMATCH:
            reason = Reason.IMAGE_HEADER_INVALID
        self._deferred = ReleaseRejected(reason, str(exc))
        self._decryptor = None

    def update(self, chunk: bytes) -> bytes:
        """Consume the next bytes of the ``.bin``; return the plaintext they complete."""
        self._received += len(chunk)
        if self._received > self._claims.enc_size:
            raise ReleaseRejected(
                Reason.IMAGE_SIZE_MISMATCH,
                f"image is longer than the {self._claims.enc_size} bytes its manifest announces",
            )
        self._enc_hash.update(chunk)
        if self._decryptor is None:
            return b""
        try:
            plaintext = self._decryptor.update(chunk)
        except (FormatError, VerificationError) as exc:
            self._defer(exc)
            return b""
        self._plain_hash.update(plaintext)
        return plaintext

    def finish(self) -> None:
        """Run the end-of-stream checks in their fixed order; raise on the first failure."""
        claims = self._claims
        if self._received != claims.enc_size:
            raise ReleaseRejected(
                Reason.IMAGE_SIZE_MISMATCH,
                f"image is {self._received} bytes, its manifest announces {claims.enc_size}",
            )
        if self._enc_hash.hexdigest() != claims.enc_sha256:
            raise ReleaseRejected(
                Reason.ENC_DIGEST_MISMATCH, "image file does not match its manifest's enc_sha256"
            )
        if self._deferred is not None or self._decryptor is None:
            raise self._deferred or ReleaseRejected(Reason.IMAGE_DECRYPT_FAILED, "no decryptor")
        try:
            self._decryptor.finalize()
        except FormatError as exc:
            raise ReleaseRejected(Reason.IMAGE_HEADER_INVALID, str(exc)) from None
        except VerificationError:
            raise ReleaseRejected(
                Reason.IMAGE_DECRYPT_FAILED, "image authentication tag mismatch"
            ) from None
        if self._plain_hash.hexdigest() != claims.image_sha256:
            raise ReleaseRejected(
                Reason.IMAGE_DIGEST_MISMATCH, "decrypted image does not match image_sha256"
            )


def check_signed_image(plaintext: bytes, claims: ManifestClaims, keys: DeviceKeys) -> AppImage:
    """Parse the decrypted image, compare it with the claims, verify its secure-boot signature."""
    try:
        image = parse_app_image(plaintext)
    except FormatError as exc:
        raise ReleaseRejected(Reason.IMAGE_INVALID, str(exc)) from None
    desc = image.app_desc
    mismatches = [
        name
        for name, ours, theirs in (
            ("chip_id", image.chip_id, claims.chip_id),
            ("secure_version", desc.secure_version, claims.secure_version),
            ("version", desc.version, claims.version),
            ("project", desc.project_name, claims.project),
            ("app_elf_sha256", desc.app_elf_sha256.hex(), claims.app_elf_sha256),
        )
        if ours != theirs
    ]
    if mismatches:
        raise ReleaseRejected(
            Reason.IMAGE_INVALID, f"image differs from its manifest in {', '.join(mismatches)}"
        )
    try:
        signed_data = verify_image(plaintext, keys.secure_boot, claims.secure_boot)
    except (FormatError, VerificationError):
        raise ReleaseRejected(
            Reason.SECURE_BOOT_SIGNATURE_INVALID,
            f"image has no valid {claims.secure_boot} signature by the device's secure boot key",
        ) from None
    if signed_data < image.length:
        raise ReleaseRejected(
            Reason.SECURE_BOOT_SIGNATURE_INVALID, "signature does not cover the whole image"
        )
    return image


def check_image(stream: Readable, claims: ManifestClaims, keys: DeviceKeys) -> bytes:
    """Check a whole ``.bin`` read from ``stream`` against verified ``claims``: every byte
    through :class:`ImageCheck`, then :func:`check_signed_image`; return the verified
    plaintext image (what goes into the update slot)."""
    check = ImageCheck(claims, keys)
    plaintext = bytearray()
    while chunk := stream.read(STREAM_CHUNK):
        plaintext += check.update(chunk)
    check.finish()
    image = bytes(plaintext)
    check_signed_image(image, claims, keys)
    return image
