"""Secure-boot signatures cross-checked with Espressif's own espsecure (esptool 5.x)."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from secure_fota.crypto.keys import generate_private_key, private_pem, public_pem
from secure_fota.crypto.secure_boot import sign_image, verify_image
from secure_fota.errors import VerificationError
from secure_fota.formats.app_image_builder import ImageSpec, build_app_image
from secure_fota.formats.secure_boot import Scheme

ESPSECURE = shutil.which("espsecure", path=str(Path(sys.executable).parent))

pytestmark = pytest.mark.skipif(ESPSECURE is None, reason="espsecure (esptool) is not installed")

SCHEMES = {
    Scheme.V1: "ecdsa256",
    Scheme.V2_RSA3072: "rsa3072",
    Scheme.V2_ECDSA256: "ecdsa256",
    Scheme.V2_ECDSA384: "ecdsa384",
}


def espsecure(*args: str) -> subprocess.CompletedProcess[str]:
    assert ESPSECURE is not None
    return subprocess.run(
        [ESPSECURE, *args], capture_output=True, text=True, timeout=60, check=False
    )


@pytest.fixture(scope="module")
def keys(tmp_path_factory: pytest.TempPathFactory) -> dict[Scheme, tuple[object, Path]]:
    directory = tmp_path_factory.mktemp("sbkeys")
    result = {}
    for scheme, kind in SCHEMES.items():
        key = generate_private_key(kind)
        path = directory / f"{scheme.value}.pem"
        path.write_bytes(private_pem(key))
        result[scheme] = (key, path)
    return result


@pytest.mark.parametrize("scheme", list(SCHEMES))
def test_espsecure_verifies_our_signatures(scheme: Scheme, keys, tmp_path: Path) -> None:
    key, key_path = keys[scheme]
    image = build_app_image(ImageSpec(size=50_000, seed=11))
    signed = tmp_path / "signed.bin"
    signed.write_bytes(sign_image(image, key, scheme))
    version = "1" if scheme is Scheme.V1 else "2"
    result = espsecure(
        "verify-signature", "--version", version, "--keyfile", str(key_path), str(signed)
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "valid" in (result.stdout + result.stderr).lower()
    # and a flipped byte makes espsecure refuse it, so the check above can fail
    data = bytearray(signed.read_bytes())
    data[100] ^= 1
    signed.write_bytes(bytes(data))
    assert (
        espsecure(
            "verify-signature", "--version", version, "--keyfile", str(key_path), str(signed)
        ).returncode
        != 0
    )


@pytest.mark.parametrize("scheme", list(SCHEMES))
def test_we_verify_espsecure_signatures(scheme: Scheme, keys, tmp_path: Path) -> None:
    key, key_path = keys[scheme]
    plain = tmp_path / "app.bin"
    plain.write_bytes(build_app_image(ImageSpec(size=40_000, seed=12)))
    out = tmp_path / "signed.bin"
    version = "1" if scheme is Scheme.V1 else "2"
    result = espsecure(
        "sign-data",
        "--version",
        version,
        "--keyfile",
        str(key_path),
        "--output",
        str(out),
        str(plain),
    )
    assert result.returncode == 0, result.stdout + result.stderr
    signed = out.read_bytes()
    if scheme is Scheme.V1:
        # espsecure V1 uses RFC 6979 deterministic nonces, as we do: byte-identical output
        assert signed == sign_image(plain.read_bytes(), key, scheme)
    assert verify_image(signed, key.public_key(), scheme) == len(signed) - (
        68 if scheme is Scheme.V1 else 4096
    )
    other = generate_private_key(SCHEMES[scheme])
    with pytest.raises(VerificationError):
        verify_image(signed, other.public_key(), scheme)


def test_public_key_files_are_accepted_by_espsecure(keys, tmp_path: Path) -> None:
    key, _ = keys[Scheme.V2_RSA3072]
    pub = tmp_path / "pub.pem"
    pub.write_bytes(public_pem(key))
    signed = tmp_path / "signed.bin"
    signed.write_bytes(sign_image(build_app_image(ImageSpec(size=9000)), key, Scheme.V2_RSA3072))
    result = espsecure("verify-signature", "--version", "2", "--keyfile", str(pub), str(signed))
    assert result.returncode == 0, result.stdout + result.stderr
