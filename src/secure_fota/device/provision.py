"""``fota device init``: provision a simulated device with its keys, CA and factory app.

The device receives only what a device holds: the manifest and image decryption keys, the
trusted manifest-signing and freshness public keys, and the secure boot public key. The
factory image is signed here with the secure boot key, as a factory's provisioning station
would; the private key is not stored on the device.
"""

from __future__ import annotations

import secrets
import shutil
from dataclasses import dataclass
from pathlib import Path

from secure_fota.atomic_file import write_atomic
from secure_fota.crypto.keys import Role, generate_private_key, private_pem, secure_boot_scheme_of
from secure_fota.crypto.secure_boot import sign_image, verify_image
from secure_fota.device.flash import Flash
from secure_fota.device.state import DeviceConfig, Nvs, StateDir
from secure_fota.errors import (
    ConfigError,
    FormatError,
    InputError,
    NotFoundError,
    VerificationError,
)
from secure_fota.formats.app_image import chip_id_for, chip_name, parse_app_image
from secure_fota.formats.names import check_name, check_seq
from secure_fota.keys.directory import (
    SECURE_BOOT_SIGNING_KEY,
    copy_device_keys,
    load_device_keys,
    load_private_key_file,
)
from secure_fota.limits import MAX_IMAGE_SIZE
from secure_fota.tls_client import client_context

__all__ = ["Provisioning", "check_server_url", "provision"]


@dataclass(frozen=True, slots=True)
class Provisioning:
    state: Path
    device_type: str
    chip: str
    keys: Path
    server: str
    ca: Path | None
    firmware: Path
    seq: int
    secure_boot: str = "v1"
    slot_size: int = MAX_IMAGE_SIZE
    require_freshness: bool = True
    force: bool = False
    #: the bearer token for a server with device_auth (stored like the ESP32's NVS key)
    token: str | None = None
    #: accept a plain ``http://`` server (tests only: no TLS, no server authentication)
    insecure_plain_http_for_tests: bool = False
    #: the device's id (default: the device type and 8 random hex digits)
    device_id: str | None = None


def check_server_url(server: str, *, plain_http: bool = False) -> str:
    """``server`` if it is an ``https://`` URL (``http://`` only with ``plain_http``, for
    tests); else :class:`InputError` naming ``--server``."""
    scheme, sep, rest = server.partition("://")
    scheme = scheme.lower()
    if not sep or not rest or scheme not in ("https", "http"):
        raise InputError("--server", f"{server!r} is not an https:// URL")
    if scheme == "http" and not plain_http:
        raise InputError(
            "--server",
            f"{server!r} is plain HTTP: the device's token and polls would travel unprotected "
            "and any host on the path could answer for the server; use https:// "
            "(--insecure-plain-http-for-tests exists for test rigs only)",
        )
    return server


def provision(request: Provisioning) -> DeviceConfig:
    """Create the device's state directory; refuse to overwrite one unless ``force``."""
    check_server_url(request.server, plain_http=request.insecure_plain_http_for_tests)
    check_name("--device-type", request.device_type)
    device_id = check_name(
        "--device-id", request.device_id or f"{request.device_type[:55]}-{secrets.token_hex(4)}"
    )
    seq = check_seq("--seq", request.seq)
    chip_id = chip_id_for(request.chip)
    state = StateDir(request.state)
    if (request.state / "device.json").exists() and not request.force:
        raise ConfigError(f"{request.state} already holds a device (use --force to replace it)")
    try:
        firmware = request.firmware.read_bytes()
    except FileNotFoundError:
        raise NotFoundError(f"{request.firmware}: firmware file not found") from None
    image = parse_app_image(firmware)
    if image.chip_id != chip_id:
        raise InputError(
            "--firmware", f"image is for {image.chip}, the device is {chip_name(chip_id)}"
        )
    if request.ca is not None:
        client_context(request.ca)  # a --ca that is no certificate: one line, nothing written
    if request.force and request.state.exists():
        shutil.rmtree(request.state)
    request.state.mkdir(parents=True, exist_ok=True)
    copy_device_keys(request.keys, state.keys)
    keys = load_device_keys(state.keys)
    scheme = secure_boot_scheme_of(keys.secure_boot, request.secure_boot)
    if image.trailer_length:
        try:
            verify_image(firmware, keys.secure_boot, scheme)
        except (FormatError, VerificationError):
            raise InputError(
                "--firmware", "image carries a signature this device's secure boot key rejects"
            ) from None
        signed = firmware
    else:
        signer = load_private_key_file(Role.SECURE_BOOT_V2, request.keys / SECURE_BOOT_SIGNING_KEY)
        signed = sign_image(firmware, signer, scheme)
    if request.ca is not None:
        shutil.copyfile(request.ca, state.ca)
    config = DeviceConfig(
        device_type=request.device_type,
        chip_id=chip_id,
        server=request.server,
        secure_boot=scheme,
        slot_size=request.slot_size,
        require_freshness=request.require_freshness and bool(keys.freshness),
        device_id=device_id,
    )
    # the device's own report key: generated here, never leaves the device (its public half
    # reaches the server with the first report, or an operator registers it beforehand)
    write_atomic(state.report_key, private_pem(generate_private_key("ecdsa256")), mode=0o600)
    state.save_config(config)
    if request.token:
        state.save_token(request.token)
    flash = Flash(request.state, request.slot_size)
    flash.write_factory(signed)
    flash.burn_secure_version(image.app_desc.secure_version)
    state.save_nvs(Nvs(slot_seq={"factory": seq}), "provisioning")
    return config
