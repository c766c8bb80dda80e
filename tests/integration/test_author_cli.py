"""``fota keys`` and ``fota author`` end to end, through the real command line."""

from __future__ import annotations

import base64
import json
import os
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from secure_fota.formats.app_image_builder import ImageSpec, build_app_image
from secure_fota.keys.directory import load_device_keys
from secure_fota.policy.verifier import ImageCheck, check_signed_image, open_checked


def release_args(firmware: Path, keys: Path, out: Path, *extra: str) -> list[str]:
    return [
        "author",
        "release",
        str(firmware),
        "--seq",
        "3",
        "--device-type",
        "sensor",
        "--name",
        "app",
        "--keys",
        str(keys),
        "--out",
        str(out),
        *extra,
    ]


def test_keys_generate_layout_and_permissions(tmp_path: Path, fota_main) -> None:
    out = tmp_path / "keys"
    code, _stdout, _ = fota_main("keys", "generate", "--out", str(out))
    assert code == 0
    names = sorted(p.name for p in out.iterdir())
    for required in (
        "secure_boot_signing_key.pem",
        "flash_encryption_key.bin",
        "manifest_signing_key.pem",
        "manifest_signing_pub.pem",
        "manifest_encryption_key.pem",
        "manifest_encryption_pub.pem",
        "pre_encryption_key.pem",
        "pre_encryption_pub.pem",
    ):
        assert required in names
    for private in (
        "secure_boot_signing_key.pem",
        "flash_encryption_key.bin",
        "manifest_signing_key.pem",
        "manifest_encryption_key.pem",
        "pre_encryption_key.pem",
    ):
        assert stat.S_IMODE((out / private).stat().st_mode) == 0o600
    assert len((out / "flash_encryption_key.bin").read_bytes()) == 32
    before = (out / "manifest_signing_key.pem").read_bytes()
    code, _, err = fota_main("keys", "generate", "--out", str(out))
    assert code == 1
    assert "never overwritten without --force" in err
    assert (out / "manifest_signing_key.pem").read_bytes() == before
    code, _, _ = fota_main(
        "keys", "generate", "--out", str(out), "--force", "--secure-boot", "v2-rsa3072"
    )
    assert code == 0
    assert (out / "manifest_signing_key.pem").read_bytes() != before


def test_tls_files_form_a_chain(tmp_path: Path, fota_main) -> None:
    from cryptography import x509
    from cryptography.x509.verification import PolicyBuilder, Store

    code, _, _ = fota_main(
        "keys", "tls", "--out", str(tmp_path), "--host", "localhost", "--host", "127.0.0.1"
    )
    assert code == 0
    ca = x509.load_pem_x509_certificate((tmp_path / "ca.pem").read_bytes())
    server = x509.load_pem_x509_certificate((tmp_path / "server.pem").read_bytes())
    verifier = PolicyBuilder().store(Store([ca])).build_server_verifier(x509.DNSName("localhost"))
    verifier.verify(server, [])
    ip_verifier = (
        PolicyBuilder()
        .store(Store([ca]))
        .build_server_verifier(x509.IPAddress(__import__("ipaddress").ip_address("127.0.0.1")))
    )
    ip_verifier.verify(server, [])
    assert stat.S_IMODE((tmp_path / "server.key").stat().st_mode) == 0o600
    assert server.public_key().curve.name == "secp256r1"


def test_release_then_verify(tmp_path: Path, key_dir: Path, firmware: Path, fota_main) -> None:
    out = tmp_path / "out"
    out.mkdir()
    code, stdout, err = fota_main(
        *release_args(firmware, key_dir, out, "--expires", "30d", "--json")
    )
    assert code == 0, err
    result = json.loads(stdout)
    assert sorted(p.name for p in out.iterdir()) == ["app-3.bin", "app-3.manifest"]
    claims = result["claims"]
    assert (
        claims["seq"] == 3 and claims["device_type"] == "sensor" and claims["exp"] > claims["iat"]
    )
    manifest, binary = out / "app-3.manifest", out / "app-3.bin"

    code, stdout, _ = fota_main(
        "author",
        "verify",
        str(manifest),
        str(binary),
        "--keys",
        str(key_dir),
        "--json",
    )
    assert code == 0
    assert json.loads(stdout)["accept"] is True

    code, stdout, _ = fota_main(
        "author",
        "verify",
        str(manifest),
        str(binary),
        "--keys",
        str(key_dir),
        "--device-type",
        "other",
        "--json",
    )
    assert code == 3
    assert json.loads(stdout)["reason"] == "wrong_device_type"

    code, _, err = fota_main(
        "author",
        "verify",
        str(manifest),
        "--keys",
        str(key_dir),
        "--installed-seq",
        "5",
    )
    assert code == 3
    assert "rollback" in err

    tampered = bytearray(binary.read_bytes())
    tampered[-1] ^= 1
    binary.write_bytes(bytes(tampered))
    code, stdout, _ = fota_main(
        "author",
        "verify",
        str(manifest),
        str(binary),
        "--keys",
        str(key_dir),
        "--json",
    )
    assert code == 3
    assert json.loads(stdout)["reason"] == "enc_digest_mismatch"


def test_released_image_checks_out_in_the_device_policy(
    tmp_path: Path, key_dir: Path, firmware: Path, fota_main
) -> None:
    code, _, err = fota_main(*release_args(firmware, key_dir, tmp_path))
    assert code == 0, err
    keys = load_device_keys(key_dir)
    claims = open_checked((tmp_path / "app-3.manifest").read_bytes(), keys).claims
    check = ImageCheck(claims, keys)
    plaintext = check.update((tmp_path / "app-3.bin").read_bytes())
    check.finish()
    image = check_signed_image(plaintext, claims, keys)
    assert plaintext[: image.length] == firmware.read_bytes()
    assert plaintext[image.length :][:4] == b"\0\0\0\0"  # the V1 block follows the image


def test_v2_release(tmp_path: Path, fota_main) -> None:
    keys = tmp_path / "keys"
    assert fota_main("keys", "generate", "--out", str(keys), "--secure-boot", "v2-ecdsa384")[0] == 0
    image = tmp_path / "c3.bin"
    image.write_bytes(build_app_image(ImageSpec(chip="esp32c3", size=20_000)))
    code, stdout, err = fota_main(
        *release_args(image, keys, tmp_path, "--secure-boot", "v2", "--json")
    )
    assert code == 0, err
    claims = json.loads(stdout)["claims"]
    assert claims["secure_boot"] == "v2-ecdsa384"
    assert claims["image_size"] % 4096 == 0
    code, stdout, _ = fota_main(
        "author",
        "verify",
        str(tmp_path / "app-3.manifest"),
        str(tmp_path / "app-3.bin"),
        "--keys",
        str(keys),
        "--json",
    )
    assert code == 0, stdout


def test_ec_manifest_encryption_release(tmp_path: Path, firmware: Path, fota_main) -> None:
    keys = tmp_path / "keys"
    code, _, err = fota_main(
        "keys", "generate", "--out", str(keys), "--manifest-encryption", "ec-p256"
    )
    assert code == 0, err
    code, _, err = fota_main(*release_args(firmware, keys, tmp_path))
    assert code == 0, err
    token = (tmp_path / "app-3.manifest").read_bytes()
    header = token.split(b".")[0]
    assert b'"alg":"ECDH-ES+A256KW"' in base64.urlsafe_b64decode(header + b"==")
    code, stdout, _ = fota_main(
        "author", "verify", str(tmp_path / "app-3.manifest"), str(tmp_path / "app-3.bin"),
        "--device-keys", str(keys), "--json",
    )  # fmt: skip
    assert code == 0, stdout
    # the legacy manifest is RSA-only: a clear error, nothing written
    out = tmp_path / "legacy"
    out.mkdir()
    code, _, err = fota_main(*release_args(firmware, keys, out, "--legacy-manifest"))
    assert code == 1 and "RSA-4096 manifest encryption key" in err
    assert list(out.iterdir()) == []


def test_ecies_pre_encryption_release(tmp_path: Path, fota_main) -> None:
    keys = tmp_path / "keys"
    code, _, err = fota_main(
        "keys", "generate", "--out", str(keys), "--pre-encryption", "ecies-p256",
        "--manifest-encryption", "ec-p256", "--secure-boot", "v2-ecdsa256",
    )  # fmt: skip
    assert code == 0, err
    assert (keys / "pre_encryption_hmac_key.bin").stat().st_mode & 0o777 == 0o600
    assert not (keys / "pre_encryption_key.pem").exists()
    image = tmp_path / "c3.bin"
    image.write_bytes(build_app_image(ImageSpec(chip="esp32c3", size=20_000)))
    code, _, err = fota_main(*release_args(image, keys, tmp_path, "--secure-boot", "v2"))
    assert code == 0, err
    code, stdout, _ = fota_main(
        "author", "verify", str(tmp_path / "app-3.manifest"), str(tmp_path / "app-3.bin"),
        "--keys", str(keys), "--json",
    )  # fmt: skip
    assert code == 0, stdout
    # a device bundle carries the HMAC key, not a PEM image key
    device = tmp_path / "device"
    from secure_fota.keys.directory import copy_device_keys

    copy_device_keys(keys, device)
    assert (device / "pre_encryption_hmac_key.bin").exists()
    assert load_device_keys(device).image_decryption is not None
    # the original ESP32 has no HMAC peripheral: refused, nothing written
    out = tmp_path / "esp32"
    out.mkdir()
    esp32 = tmp_path / "esp32.bin"
    esp32.write_bytes(build_app_image(ImageSpec(chip="esp32", size=20_000)))
    code, _, err = fota_main(*release_args(esp32, keys, out, "--secure-boot", "v2"))
    assert code == 1 and "no HMAC peripheral" in err, err
    assert list(out.iterdir()) == []


def test_legacy_manifest(tmp_path: Path, key_dir: Path, firmware: Path, fota_main) -> None:
    from secure_fota.crypto.keys import Role, load_private_key, load_public_key
    from secure_fota.crypto.legacy_manifest import open_legacy_manifest

    code, _, err = fota_main(*release_args(firmware, key_dir, tmp_path, "--legacy-manifest"))
    assert code == 0
    assert "does not stop downgrades" in err
    legacy = (tmp_path / "app-3.legacy-manifest").read_bytes()
    assert len(legacy) == 1024
    desc = open_legacy_manifest(
        legacy,
        load_private_key(
            Role.MANIFEST_ENCRYPTION, (key_dir / "manifest_encryption_key.pem").read_bytes()
        ),
        load_public_key(Role.MANIFEST_SIGNING, (key_dir / "manifest_signing_pub.pem").read_bytes()),
    )
    assert desc == firmware.read_bytes()[32:288]


@pytest.mark.parametrize(
    ("make_input", "extra", "message", "code"),
    [
        (lambda p: p.write_bytes(b"not an image" * 100), [], "image magic", 1),
        (lambda p: p.write_bytes(build_app_image(ImageSpec(size=9000))[:5000]), [], "truncated", 1),
        (
            lambda p: p.write_bytes(build_app_image(ImageSpec(size=9000))[:-1] + b"\0"),
            [],
            "SHA-256",
            1,
        ),
        (
            lambda p: p.write_bytes(build_app_image(ImageSpec(chip="esp32c3", size=9000))),
            [],
            "only on the ESP32",
            2,
        ),
        (
            lambda p: p.write_bytes(build_app_image(ImageSpec(size=9000, secure_version=33))),
            [],
            "eFuse",
            1,
        ),
        (
            lambda p: p.write_bytes(build_app_image(ImageSpec(size=9000)) + b"\0" * 68),
            [],
            "already signed",
            1,
        ),
        (lambda _p: None, [], "not found", 1),
        (lambda p: p.mkdir(), [], "directory", 2),
    ],
)
def test_bad_firmware_writes_nothing(
    tmp_path: Path, key_dir: Path, fota_main, make_input, extra, message, code
) -> None:
    firmware = tmp_path / "fw.bin"
    make_input(firmware)
    out = tmp_path / "out"
    out.mkdir()
    got, _stdout, err = fota_main(*release_args(firmware, key_dir, out, *extra))
    assert got == code
    assert message in err
    assert err.startswith("error: ") and err.count("\n") == 1
    assert list(out.iterdir()) == []


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--seq", "0"], "must be positive"),
        (["--seq", "-4"], "must be positive"),
        (["--seq", "1.5"], "must be an integer"),
        (["--seq", "seven"], "must be an integer"),
        (["--name", "../evil"], "separators"),
        (["--name", "x" * 65], "65 characters"),
        (["--device-type", "a\x01b"], "control characters"),
        (["--expires", "soon"], "duration"),
    ],
)
def test_bad_arguments_write_nothing(
    tmp_path: Path, key_dir: Path, firmware: Path, fota_main, args, message
) -> None:
    out = tmp_path / "out"
    out.mkdir()
    base = release_args(firmware, key_dir, out)
    for flag_index in range(0, len(args), 2):
        position = base.index(args[flag_index]) if args[flag_index] in base else None
        if position is None:
            base += args[flag_index : flag_index + 2]
        else:
            base[position + 1] = args[flag_index + 1]
    code, _, err = fota_main(*base)
    assert code == 2
    assert message in err
    assert list(out.iterdir()) == []


def test_wrong_key_types_are_named(
    tmp_path: Path, key_dir: Path, firmware: Path, fota_main
) -> None:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    keys = tmp_path / "keys"
    shutil.copytree(key_dir, keys)
    weak = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    (keys / "pre_encryption_pub.pem").write_bytes(
        weak.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )
    out = tmp_path / "out"
    out.mkdir()
    code, _, err = fota_main(*release_args(firmware, keys, out))
    assert code == 1
    assert "pre-encryption needs an RSA-3072 key" in err and "RSA-2048" in err
    assert list(out.iterdir()) == []
    (keys / "pre_encryption_pub.pem").write_bytes(b"garbage")
    code, _, err = fota_main(*release_args(firmware, keys, out))
    assert "cannot load a PEM public key" in err
    (keys / "manifest_signing_key.pem").unlink()
    code, _, err = fota_main(*release_args(firmware, keys, out))
    assert code == 1 and "key file not found" in err


@pytest.mark.skipif(shutil.which("keytool") is None, reason="Java keytool is not installed")
def test_keys_from_a_java_keystore(
    tmp_path: Path, key_dir: Path, firmware: Path, fota_main, monkeypatch
) -> None:
    store = tmp_path / "author.p12"
    for alias, algorithm in (
        ("manifest_signing_key", ["-keyalg", "RSA", "-keysize", "3072"]),
        ("secure_boot_signing_key", ["-keyalg", "EC", "-groupname", "secp256r1"]),
    ):
        subprocess.run(
            [
                "keytool",
                "-genkeypair",
                "-alias",
                alias,
                *algorithm,
                "-dname",
                f"CN={alias}",
                "-storetype",
                "PKCS12",
                "-keystore",
                str(store),
                "-storepass",
                "s3cret-pw",
                "-keypass",
                "s3cret-pw",
                "-validity",
                "30",
            ],
            check=True,
            capture_output=True,
            timeout=120,
        )
    monkeypatch.setenv("FOTA_KEYSTORE_PASSWORD", "s3cret-pw")
    out = tmp_path / "out"
    out.mkdir()
    code, stdout, err = fota_main(
        *release_args(firmware, key_dir, out, "--keystore", str(store), "--json")
    )
    assert code == 0, err
    # the manifest is signed by the keystore's key, which the key directory's devices do not trust
    code, stdout, _ = fota_main(
        "author",
        "verify",
        str(out / "app-3.manifest"),
        "--keys",
        str(key_dir),
        "--json",
    )
    assert json.loads(stdout)["reason"] == "unknown_key"
    monkeypatch.setenv("FOTA_KEYSTORE_PASSWORD", "wrong")
    code, _, err = fota_main(*release_args(firmware, key_dir, tmp_path, "--keystore", str(store)))
    assert code == 1 and "wrong password" in err


def test_console_script_prints_one_line_without_traceback(tmp_path: Path, key_dir: Path) -> None:
    fota = Path(sys.executable).parent / "fota"
    result = subprocess.run(
        [
            str(fota),
            "author",
            "release",
            str(tmp_path / "missing.bin"),
            "--seq",
            "1",
            "--device-type",
            "t",
            "--name",
            "n",
            "--keys",
            str(key_dir),
            "--out",
            str(tmp_path),
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env={**os.environ, "FOTA_DEBUG": ""},
    )
    assert result.returncode == 1
    assert result.stderr == f"error: {tmp_path / 'missing.bin'}: firmware file not found\n"
    assert "Traceback" not in result.stderr


def test_out_folder_is_created(tmp_path: Path, key_dir: Path, firmware: Path, fota_main) -> None:
    out = tmp_path / "dist" / "nested"
    code, stdout, err = fota_main(*release_args(firmware, key_dir, out))
    assert code == 0, err
    assert sorted(p.name for p in out.iterdir()) == ["app-3.bin", "app-3.manifest"]
    assert "sensor/3" in stdout


def test_out_that_is_a_file_is_one_error_line(
    tmp_path: Path, key_dir: Path, firmware: Path, fota_main
) -> None:
    out = tmp_path / "taken"
    out.write_text("x")
    code, _stdout, err = fota_main(*release_args(firmware, key_dir, out))
    assert code == 2
    assert err.startswith("error: ") and err.count("\n") == 1
    assert "'--out'" in err and "is a file" in err and "--help" in err


def test_retired_spellings_still_work_and_warn(
    tmp_path: Path, key_dir: Path, firmware: Path, fota_main
) -> None:
    out = tmp_path / "out"
    args = release_args(firmware, key_dir, out)
    args[args.index("--seq")] = "--id"
    code, _stdout, err = fota_main(*args)
    assert code == 0, err
    assert "warning: --id is deprecated; use --seq" in err
    manifest, binary = out / "app-3.manifest", out / "app-3.bin"
    code, stdout, err = fota_main(
        "author", "verify", str(manifest), str(binary), f"--device-keys={key_dir}"
    )
    assert code == 0, err
    assert "warning: --device-keys is deprecated; use --keys" in err
    assert "accepted: sensor/3 (app)" in stdout
    assert " UTC" in stdout  # iat as a date, not an epoch number


def test_release_takes_the_scheme_of_the_key_set(tmp_path: Path, fota_main) -> None:
    keys = tmp_path / "keys"
    code, _stdout, err = fota_main(
        "keys", "generate", "--out", str(keys), "--secure-boot", "v2-ecdsa256"
    )
    assert code == 0, err
    assert (keys / "secure_boot_scheme").read_text() == "v2-ecdsa256\n"
    firmware = tmp_path / "app.bin"
    firmware.write_bytes(build_app_image(ImageSpec(chip="esp32c3", version="1.0.0", size=8192)))
    code, stdout, err = fota_main(*release_args(firmware, keys, tmp_path / "out"), "--json")
    assert code == 0, err
    assert json.loads(stdout)["claims"]["secure_boot"] == "v2-ecdsa256"
    # an ESP32-C3's ROM verifies RSA-3072 only
    assert "warning: secure boot v2-ecdsa256 for esp32c3" in err
    assert "verifies only v2-rsa3072" in err


def test_release_without_warning_for_a_matching_chip(tmp_path: Path, fota_main) -> None:
    keys = tmp_path / "keys"
    assert fota_main("keys", "generate", "--out", str(keys), "--secure-boot", "v2-rsa3072")[0] == 0
    firmware = tmp_path / "app.bin"
    firmware.write_bytes(build_app_image(ImageSpec(chip="esp32c3", version="1.0.0", size=8192)))
    code, stdout, err = fota_main(*release_args(firmware, keys, tmp_path / "out"), "--json")
    assert code == 0, err
    assert json.loads(stdout)["claims"]["secure_boot"] == "v2-rsa3072"
    assert "warning" not in err
