"""``fota author release``: an ESP-IDF app image in, ``NAME-N.manifest`` and ``NAME-N.bin`` out.

The image is read once, in chunks: each chunk is validated, hashed and encrypted as it is
read, and the signature is appended at the end; the encrypted file is read once more for its
digest. Memory use does not grow with the image. Both output files appear together or not at
all.
"""

from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO, Final

from secure_fota.atomic_file import commit_all, staged_output
from secure_fota.crypto.encrypted_image import (
    EncryptedImageWriter,
    EncryptionResult,
    pre_encryption_scheme,
)
from secure_fota.crypto.keyring import AuthorKeys
from secure_fota.crypto.keys import secure_boot_scheme_of
from secure_fota.crypto.legacy_manifest import seal_legacy_manifest
from secure_fota.crypto.manifest_seal import seal_manifest
from secure_fota.crypto.secure_boot import SecureBootSigner, signed_length
from secure_fota.errors import FormatError, InputError, NotFoundError
from secure_fota.formats.app_image import AppImage, read_app_image
from secure_fota.formats.manifest import MANIFEST_FORMAT, ManifestClaims
from secure_fota.formats.names import check_name, check_seq
from secure_fota.formats.secure_boot import Scheme
from secure_fota.limits import MAX_IMAGE_SIZE, STREAM_CHUNK

__all__ = [
    "ReleaseFiles",
    "ReleaseRequest",
    "build_release",
    "parse_duration",
    "release_paths",
]

#: eFuse bits available for the anti-rollback secure_version (ESP32: 32, later chips: 16)
SECURE_VERSION_LIMIT: Final = {0: 32}
_DEFAULT_SECURE_VERSION_LIMIT: Final = 16
_DURATION = re.compile(r"([1-9][0-9]{0,8})([smhdw])")
_UNIT_SECONDS: Final = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def parse_duration(text: str) -> int:
    """Seconds in ``30d``, ``12h``, ``90m``, ``3600s`` or ``2w``."""
    match = _DURATION.fullmatch(text.strip())
    if not match:
        raise InputError("--expires", f"{text!r} is not a duration like 30d, 12h, 90m or 2w")
    return int(match.group(1)) * _UNIT_SECONDS[match.group(2)]


@dataclass(frozen=True, slots=True)
class ReleaseRequest:
    """Everything ``build_release`` needs besides keys."""

    firmware: Path
    seq: int
    device_type: str
    fw_name: str
    out_dir: Path
    secure_boot: str = "v1"
    expires_in: int | None = None
    legacy_manifest: bool = False

    def validated(self) -> ReleaseRequest:
        check_seq("--id", self.seq)
        check_name("--device-type", self.device_type)
        check_name("--name", self.fw_name)
        if self.secure_boot not in ("v1", "v2"):
            raise InputError("--secure-boot", "must be v1 or v2")
        return self


@dataclass(frozen=True, slots=True)
class ReleaseFiles:
    """The two files of a release and what their manifest says."""

    manifest: Path
    binary: Path
    claims: ManifestClaims
    image: AppImage
    legacy_manifest: Path | None = None


def release_paths(out_dir: Path, fw_name: str, seq: int) -> tuple[Path, Path]:
    """``OUTDIR/NAME-N.manifest`` and ``OUTDIR/NAME-N.bin``."""
    return out_dir / f"{fw_name}-{seq}.manifest", out_dir / f"{fw_name}-{seq}.bin"


def _open_firmware(path: Path) -> BinaryIO:
    try:
        handle = path.open("rb")
    except FileNotFoundError:
        raise NotFoundError(f"{path}: firmware file not found") from None
    except IsADirectoryError:
        raise InputError("FIRMWARE", f"{path} is a directory, not an image file") from None
    except OSError as exc:
        raise InputError("FIRMWARE", f"cannot read {path} ({exc.strerror})") from None
    return handle


def _check_image(image: AppImage, scheme: Scheme) -> None:
    if image.trailer_length:
        raise FormatError(
            "app image",
            f"{image.trailer_length} bytes follow the image's digest (already signed?); "
            "give the unsigned image that ESP-IDF built",
        )
    if scheme is Scheme.V1 and image.chip_id != 0:
        raise InputError(
            "--secure-boot",
            f"Secure Boot V1 exists only on the ESP32; this image is for {image.chip}",
        )
    limit = SECURE_VERSION_LIMIT.get(image.chip_id, _DEFAULT_SECURE_VERSION_LIMIT)
    if image.app_desc.secure_version > limit:
        raise FormatError(
            "app image",
            f"secure_version {image.app_desc.secure_version} exceeds the {limit} anti-rollback "
            f"eFuse bits of the {image.chip}",
        )


#: chips without the HMAC peripheral (ESP-IDF's SOC_HMAC_SUPPORTED): no ECIES pre-encryption
_NO_HMAC: Final = frozenset({"esp32", "esp32c2"})


def _sign_and_encrypt(
    firmware: BinaryIO, binary: BinaryIO, signer: SecureBootSigner, keys: AuthorKeys
) -> tuple[AppImage, EncryptionResult]:
    """Validate, sign and encrypt in one pass over ``firmware``, writing ``binary``.

    Every chunk the image parser reads is hashed once and encrypted as it is read. The one
    SHA-256 serves the appended-digest check, the secure boot digest (SHA-256 schemes) and,
    extended by the signature bytes, the signed image's ``image_sha256``; the encrypted
    plaintext is exactly the bytes hashed (the writer counts them against the signed length).
    If the image is invalid, nothing of it is kept (the caller removes the staged file).
    """
    scheme = signer.scheme
    size = os.fstat(firmware.fileno()).st_size
    total = signed_length(scheme, size)
    writer: EncryptedImageWriter | None = None
    sinks: list[Callable[[bytes], object]] = []
    if size <= MAX_IMAGE_SIZE and total <= MAX_IMAGE_SIZE:
        writer = EncryptedImageWriter(binary, keys.pre_encryption, total, hash_plaintext=False)
        sinks.append(writer.write)
    sha256 = hashlib.sha256()
    boot_hasher = signer.new_hasher()
    if boot_hasher.name == "sha256":
        boot_hasher = sha256
    else:
        sinks.append(boot_hasher.update)  # V2 ECDSA-384 signs a SHA-384 digest
    image = read_app_image(_Tee(firmware, sinks), max_size=MAX_IMAGE_SIZE, sha256=sha256)
    _check_image(image, scheme)
    if image.chip in _NO_HMAC and pre_encryption_scheme(keys.pre_encryption) == "ecies-p256":
        raise FormatError(
            "app image",
            f"the {image.chip} has no HMAC peripheral, which esp_encrypted_img's ECIES scheme "
            "derives the device key with; use a key set with --pre-encryption rsa3072",
        )
    if writer is None or image.length != size:
        # only when the signed image would exceed the size limit: the writer says so
        EncryptedImageWriter(binary, keys.pre_encryption, signed_length(scheme, image.length))
        raise FormatError("app image", "file changed while it was being read")
    suffix = signer.suffix(boot_hasher, image.length)
    writer.write(suffix)
    signed_digest = sha256.copy()
    signed_digest.update(suffix)
    return image, writer.finish(signed_digest.digest())


def _sha256_file(handle: BinaryIO) -> str:
    handle.seek(0)
    digest = hashlib.sha256()
    while chunk := handle.read(STREAM_CHUNK * 4):
        digest.update(chunk)
    return digest.hexdigest()


def build_release(request: ReleaseRequest, keys: AuthorKeys, *, now: int) -> ReleaseFiles:
    """Validate, sign, encrypt and describe one release; write both files atomically."""
    request = request.validated()
    scheme = secure_boot_scheme_of(keys.secure_boot, request.secure_boot)
    signer = SecureBootSigner(keys.secure_boot, scheme)
    if request.out_dir.exists() and not request.out_dir.is_dir():
        raise InputError("--out", f"{request.out_dir} is not a directory")
    try:
        request.out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise InputError("--out", f"cannot create {request.out_dir}: {exc.strerror}") from None
    manifest_path, binary_path = release_paths(request.out_dir, request.fw_name, request.seq)

    temps: list[Path] = []
    try:
        with (
            _open_firmware(request.firmware) as firmware,
            staged_output(binary_path) as (binary, binary_temp),
        ):
            temps.append(binary_temp)
            image, encrypted = _sign_and_encrypt(firmware, binary, signer, keys)
            binary.flush()
            enc_sha256 = _sha256_file(binary)
        claims = _claims(request, image, scheme, encrypted, enc_sha256, now)
        token = seal_manifest(
            claims,
            signing_key=keys.manifest_signing,
            encryption_key=keys.manifest_encryption,
            rotations=keys.rotations,
        )
        with staged_output(manifest_path) as (manifest, manifest_temp):
            temps.append(manifest_temp)
            manifest.write(token)
        pairs = [(binary_temp, binary_path), (manifest_temp, manifest_path)]
        legacy_path = None
        if request.legacy_manifest:
            legacy_path = manifest_path.with_suffix(".legacy-manifest")
            legacy = seal_legacy_manifest(
                image.app_desc_raw, keys.manifest_signing, keys.manifest_encryption
            )
            with staged_output(legacy_path) as (legacy_file, legacy_temp):
                temps.append(legacy_temp)
                legacy_file.write(legacy)
            pairs.append((legacy_temp, legacy_path))
        commit_all(pairs)
    except BaseException:
        for temp in temps:
            temp.unlink(missing_ok=True)
        raise
    return ReleaseFiles(
        manifest=manifest_path,
        binary=binary_path,
        claims=claims,
        image=image,
        legacy_manifest=legacy_path,
    )


def _claims(
    request: ReleaseRequest,
    image: AppImage,
    scheme: Scheme,
    encrypted: EncryptionResult,
    enc_sha256: str,
    now: int,
) -> ManifestClaims:
    desc = image.app_desc
    values: dict[str, object] = {
        "fmt": MANIFEST_FORMAT,
        "fw_name": request.fw_name,
        "device_type": request.device_type,
        "seq": request.seq,
        "version": desc.version,
        "project": desc.project_name,
        "idf_ver": desc.idf_ver,
        "secure_version": desc.secure_version,
        "chip_id": image.chip_id,
        "app_elf_sha256": desc.app_elf_sha256.hex(),
        "image_size": encrypted.header.bin_size,
        "image_sha256": encrypted.plaintext_sha256.hex(),
        "enc_size": encrypted.total_size,
        "enc_sha256": enc_sha256,
        "secure_boot": scheme.value,
        "iat": now,
    }
    if request.expires_in is not None:
        values["exp"] = now + request.expires_in
    return ManifestClaims.from_dict(values)


class _Tee:
    """A read-only stream that also hands everything read to each of ``sinks``, in order."""

    def __init__(self, stream: BinaryIO, sinks: list[Callable[[bytes], Any]]) -> None:
        self._stream = stream
        self._sinks = sinks

    def read(self, size: int = -1) -> bytes:
        data = self._stream.read(size)
        for sink in self._sinks:
            sink(data)
        return data
