"""Regenerate the C core's test vectors with the Python author tool and throwaway keys.

    .venv/bin/python tests/vectors/generate.py

Writes key directories (``keys-*/``, THROWAWAY TEST KEYS), release files (``*.manifest``,
``*.bin``, ``*.freshness``) and ``cases.json``: for every case the device facts and the verdict
of the Python reference (``tests/vectors/reference.py``), which the generator also checks
against the reason each case was built to produce. Keys and ciphertexts are random, so a
regeneration changes every byte but no verdict.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import shutil
import sys
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent.parent))  # run as a script: make `tests` importable

from cryptography.hazmat.primitives import hashes  # noqa: E402
from cryptography.hazmat.primitives.asymmetric import padding  # noqa: E402
from cryptography.hazmat.primitives.ciphers.aead import AESGCM  # noqa: E402
from joserfc import jwe, jws  # noqa: E402
from joserfc.jwk import ECKey, RSAKey  # noqa: E402

from secure_fota.author.release import ReleaseRequest, build_release  # noqa: E402
from secure_fota.crypto.encrypted_image import decrypt_image, encrypt_image  # noqa: E402
from secure_fota.crypto.freshness import FreshnessStatement, make_statement  # noqa: E402
from secure_fota.crypto.keys import (  # noqa: E402
    PrivateKey,
    generate_private_key,
    key_id,
    private_pem,
    public_pem,
)
from secure_fota.crypto.manifest import seal_manifest, sign_compact  # noqa: E402
from secure_fota.crypto.secure_boot import sign_image  # noqa: E402
from secure_fota.formats.app_image_builder import ImageSpec, build_app_image  # noqa: E402
from secure_fota.formats.manifest import MANIFEST_TYP, ManifestClaims  # noqa: E402
from secure_fota.formats.secure_boot import Scheme  # noqa: E402
from secure_fota.keyfiles import AuthorKeys  # noqa: E402
from tests.vectors.reference import reference_verdict  # noqa: E402

NOW = 1_760_000_000
DEVICE = "sensor-v2"
NONCE = "00112233445566778899aabbccddeeff"
IMAGE_SIZE = 8192


class Keys:
    """One throwaway key set; several device directories differ only in the secure boot key."""

    def __init__(self) -> None:
        self.signing = generate_private_key("rsa3072")
        self.signing_ec = generate_private_key("ecdsa256")
        self.untrusted = generate_private_key("rsa3072")
        self.encryption = generate_private_key("rsa4096")
        self.other_encryption = generate_private_key("rsa4096")
        self.pre = generate_private_key("rsa3072")
        self.freshness = generate_private_key("ecdsa256")
        self.secure_boot = {
            "v1": generate_private_key("ecdsa256"),
            "v2-rsa3072": generate_private_key("rsa3072"),
            "v2-ecdsa384": generate_private_key("ecdsa384"),
        }
        self.secure_boot["v2-ecdsa256"] = self.secure_boot["v1"]
        self.rogue_secure_boot = generate_private_key("ecdsa256")

    def write_device_dir(self, directory: Path, scheme: str) -> None:
        directory.mkdir()
        files = {
            "manifest_encryption_key.pem": private_pem(self.encryption),
            "pre_encryption_key.pem": private_pem(self.pre),
            "manifest_signing_pub.pem": public_pem(self.signing),
            "manifest_signing_pub.rotated-es256.pem": public_pem(self.signing_ec),
            "secure_boot_signing_pub.pem": public_pem(self.secure_boot[scheme]),
            "freshness_pub.pem": public_pem(self.freshness),
        }
        for name, data in files.items():
            (directory / name).write_bytes(data)

    def author(self, scheme: str, signing: PrivateKey | None = None) -> AuthorKeys:
        return AuthorKeys(
            secure_boot=self.secure_boot[scheme],
            manifest_signing=signing or self.signing,
            manifest_encryption=self.encryption.public_key(),
            pre_encryption=self.pre.public_key(),
        )


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def jose_key(key: Any) -> RSAKey | ECKey:
    if hasattr(key, "curve"):
        return ECKey(key, key)
    return RSAKey(key, key)


class Builder:
    def __init__(self, out: Path, keys: Keys) -> None:
        self.out = out
        self.keys = keys
        self.cases: list[dict[str, Any]] = []
        self.work = out / "_work"
        self.work.mkdir()

    # -- building blocks ------------------------------------------------------------------

    def release(
        self,
        name: str,
        *,
        scheme: str = "v1",
        chip: str = "esp32",
        expires: int | None = None,
        signing: PrivateKey | None = None,
        seq: int = 5,
        secure_version: int = 1,
    ) -> tuple[Path, Path, ManifestClaims]:
        image = build_app_image(
            ImageSpec(
                chip=chip,
                size=IMAGE_SIZE,
                seed=len(self.cases),
                secure_version=secure_version,
                version=f"1.{seq}.0",
            )
        )
        firmware = self.work / f"{name}.app"
        firmware.write_bytes(image)
        outdir = self.work / name
        outdir.mkdir()
        files = build_release(
            ReleaseRequest(
                firmware=firmware,
                seq=seq,
                device_type=DEVICE,
                fw_name="fw",
                out_dir=outdir,
                secure_boot="v1" if scheme == "v1" else "v2",
                expires_in=expires,
            ),
            self.keys.author(scheme, signing),
            now=NOW,
        )
        manifest = self.out / f"{name}.manifest"
        binary = self.out / f"{name}.bin"
        shutil.copyfile(files.manifest, manifest)
        shutil.copyfile(files.binary, binary)
        return manifest, binary, files.claims

    def seal(self, claims: dict[str, Any], signing: PrivateKey | None = None) -> bytes:
        """Sign and encrypt arbitrary claims (no validation: for invalid_claims cases)."""
        payload = json.dumps(claims, separators=(",", ":")).encode()
        return self.sign_and_wrap(payload, signing)

    def sign_and_wrap(self, payload: bytes, signing: PrivateKey | None = None) -> bytes:
        token = sign_compact(payload, signing or self.keys.signing, MANIFEST_TYP)
        return self.wrap(token.encode())

    def wrap(
        self, plaintext: bytes, header: dict[str, Any] | None = None, key: Any = None
    ) -> bytes:
        protected = header or {"alg": "RSA-OAEP-256", "enc": "A256GCM", "cty": "JWT"}
        public = (key or self.keys.encryption).public_key()
        return jwe.encrypt_compact(
            protected,
            plaintext,
            jose_key(public),
            algorithms=[protected["alg"], protected["enc"]],
        ).encode()

    def raw_wrap(self, plaintext: bytes, header: bytes) -> bytes:
        """A JWE built by hand (RSA-OAEP-256 + A256GCM) for headers joserfc will not write."""
        cek, iv = os.urandom(32), os.urandom(12)
        wrapped = self.keys.encryption.public_key().encrypt(
            cek,
            padding.OAEP(mgf=padding.MGF1(hashes.SHA256()), algorithm=hashes.SHA256(), label=None),
        )
        protected = b64(header)
        sealed = AESGCM(cek).encrypt(iv, plaintext, protected.encode())
        return ".".join(
            [protected, b64(wrapped), b64(iv), b64(sealed[:-16]), b64(sealed[-16:])]
        ).encode()

    def write(self, name: str, data: bytes, suffix: str = ".manifest") -> Path:
        path = self.out / f"{name}{suffix}"
        path.write_bytes(data)
        return path

    def case(
        self,
        name: str,
        manifest: Path,
        binary: Path | None,
        expect: str | None,
        *,
        keys: str = "keys-v1",
        installed_seq: int = 1,
        secure_version: int = 0,
        chip_id: int | None = None,
        now: int | None = None,
        freshness: Path | None = None,
        nonce: str | None = None,
        device_type: str = DEVICE,
    ) -> None:
        verdict = reference_verdict(
            self.out / keys,
            manifest,
            binary,
            device_type=device_type,
            installed_seq=installed_seq,
            secure_version=secure_version,
            chip_id=chip_id,
            now=now,
            freshness=freshness,
            nonce=nonce,
        )
        if verdict["reason"] != expect:
            raise SystemExit(f"case {name}: built for {expect}, reference says {verdict}")
        self.cases.append(
            {
                "name": name,
                "keys": keys,
                "manifest": manifest.name,
                "bin": binary.name if binary else None,
                "device_type": device_type,
                "installed_seq": installed_seq,
                "secure_version": secure_version,
                "chip_id": chip_id,
                "now": now,
                "freshness": freshness.name if freshness else None,
                "nonce": nonce,
                "expect": verdict,
            }
        )


def tamper(data: bytes, offset: int) -> bytes:
    out = bytearray(data)
    out[offset] ^= 0x01
    return bytes(out)


def tamper_char(token: bytes, part: int, index: int) -> bytes:
    """Change one base64url character of a compact token so that its decoded bytes change."""
    parts = token.split(b".")
    segment = bytearray(parts[part])
    segment[index] = ord("B") if segment[index] != ord("B") else ord("C")
    parts[part] = bytes(segment)
    return b".".join(parts)


def build_all(b: Builder) -> None:  # noqa: PLR0915 -- one list of cases reads best
    k = b.keys
    m, bin_, claims = b.release("ok-v1")
    base = claims.to_dict()
    b.case("accept_v1", m, bin_, None)
    b.case("accept_manifest_only", m, None, None)
    b.case("accept_claims_seq_installed_0", m, bin_, None, installed_seq=0)
    m2, bin2, _ = b.release("ok-es256", signing=k.signing_ec)
    b.case("accept_es256_rotated_key", m2, bin2, None)
    for scheme, chip in (
        ("v2-rsa3072", "esp32c3"),
        ("v2-ecdsa256", "esp32s3"),
        ("v2-ecdsa384", "esp32c6"),
    ):
        mv, bv, _ = b.release(f"ok-{scheme}", scheme=scheme, chip=chip)
        b.case(f"accept_{scheme}", mv, bv, None, keys=f"keys-{scheme}")
    me, be, ce = b.release("ok-exp", expires=3600)
    b.case("accept_before_exp", me, be, None, now=NOW + 3599)
    b.case("accept_no_clock_ignores_exp", me, None, None)

    # -- freshness ---------------------------------------------------------------------
    def statement(name: str, key: PrivateKey | None = None, **changes: Any) -> Path:
        values = {
            "device_type": DEVICE,
            "seq": claims.seq,
            "nonce": NONCE,
            "iat": NOW,
            "manifest_sha256": hashlib.sha256(m.read_bytes()).hexdigest(),
        }
        values.update(changes)
        token = make_statement(key or k.freshness, FreshnessStatement(**values))
        return b.write(name, token.encode(), ".freshness")

    b.case("freshness_ok", m, None, None, freshness=statement("fresh-ok"), nonce=NONCE)
    b.case(
        "freshness_wrong_nonce",
        m,
        None,
        "freshness_invalid",
        freshness=statement("fresh-nonce", nonce="ff" * 16),
        nonce=NONCE,
    )
    b.case(
        "freshness_wrong_device_type",
        m,
        None,
        "freshness_invalid",
        freshness=statement("fresh-type", device_type="other"),
        nonce=NONCE,
    )
    b.case(
        "freshness_signed_by_manifest_key",
        m,
        None,
        "freshness_invalid",
        freshness=statement("fresh-key", key=k.signing_ec),
        nonce=NONCE,
    )
    b.case(
        "freshness_garbage",
        m,
        None,
        "freshness_invalid",
        freshness=b.write("fresh-garbage", b"not.a.statement", ".freshness"),
        nonce=NONCE,
    )
    b.case(
        "freshness_stale_digest",
        m,
        None,
        "stale_manifest",
        freshness=statement("fresh-stale", manifest_sha256="ab" * 32),
        nonce=NONCE,
    )
    b.case(
        "freshness_stale_seq",
        m,
        None,
        "stale_manifest",
        freshness=statement("fresh-seq", seq=claims.seq + 1),
        nonce=NONCE,
    )

    # -- envelope ----------------------------------------------------------------------
    token = m.read_bytes()
    b.case("too_large", b.write("too-large", b"A" * 16385), None, "manifest_too_large")
    b.case("truncated", b.write("truncated", token[: len(token) // 2]), None, "manifest_malformed")
    b.case(
        "four_parts", b.write("four-parts", token.rsplit(b".", 1)[0]), None, "manifest_malformed"
    )
    b.case(
        "bad_base64_char",
        b.write("bad-char", token[:10] + b"*" + token[11:]),
        None,
        "manifest_malformed",
    )
    b.case("base64_padding", b.write("padding", token + b"="), None, "manifest_malformed")
    b.case(
        "non_ascii",
        b.write("non-ascii", token[:10] + b"\xc3\xa9" + token[12:]),
        None,
        "manifest_malformed",
    )
    parts = token.split(b".")
    b.case(
        "header_not_json",
        b.write("header-json", b".".join([b64(b'{"alg":"RSA-OAEP-256",').encode(), *parts[1:]])),
        None,
        "manifest_malformed",
    )
    b.case(
        "header_duplicate_member",
        b.write(
            "header-dup",
            b".".join(
                [
                    b64(
                        b'{"alg":"RSA-OAEP-256","enc":"A256GCM","enc":"A256GCM","cty":"JWT"}'
                    ).encode(),
                    *parts[1:],
                ]
            ),
        ),
        None,
        "manifest_malformed",
    )
    b.case(
        "header_nul_escape",
        b.write(
            "header-nul",
            b".".join(
                [
                    b64(
                        b'{"alg":"RSA-OAEP-256","enc":"A256GCM","cty":"JWT","x":"\\u0000"}'
                    ).encode(),
                    *parts[1:],
                ]
            ),
        ),
        None,
        "manifest_malformed",
    )
    signed_ok = sign_compact(ManifestClaims.from_dict(base).to_json(), k.signing, MANIFEST_TYP)
    b.case(
        "jwe_alg_rsa_oaep",
        b.write(
            "jwe-alg",
            b.wrap(signed_ok.encode(), {"alg": "RSA-OAEP", "enc": "A256GCM", "cty": "JWT"}),
        ),
        None,
        "unsupported_algorithm",
    )
    b.case(
        "jwe_enc_a128gcm",
        b.write(
            "jwe-enc",
            b.wrap(signed_ok.encode(), {"alg": "RSA-OAEP-256", "enc": "A128GCM", "cty": "JWT"}),
        ),
        None,
        "unsupported_algorithm",
    )
    b.case(
        "jwe_cty_missing",
        b.write("jwe-cty", b.wrap(signed_ok.encode(), {"alg": "RSA-OAEP-256", "enc": "A256GCM"})),
        None,
        "manifest_malformed",
    )
    b.case(
        "jwe_hand_made_ok",
        b.write(
            "jwe-hand",
            b.raw_wrap(signed_ok.encode(), b'{"alg":"RSA-OAEP-256","enc":"A256GCM","cty":"JWT"}'),
        ),
        None,
        None,
    )
    b.case(
        "jwe_unknown_member",
        b.write(
            "jwe-member",
            b.raw_wrap(
                signed_ok.encode(), b'{"alg":"RSA-OAEP-256","enc":"A256GCM","cty":"JWT","x":1}'
            ),
        ),
        None,
        "manifest_decrypt_failed",
    )
    b.case(
        "jwe_kid_not_string",
        b.write(
            "jwe-kid",
            b.raw_wrap(
                signed_ok.encode(), b'{"alg":"RSA-OAEP-256","enc":"A256GCM","cty":"JWT","kid":1}'
            ),
        ),
        None,
        "manifest_decrypt_failed",
    )
    b.case(
        "jwe_zip",
        b.write(
            "jwe-zip",
            b.raw_wrap(
                signed_ok.encode(),
                b'{"alg":"RSA-OAEP-256","enc":"A256GCM","cty":"JWT","zip":"DEF"}',
            ),
        ),
        None,
        "unsupported_algorithm",
    )
    b.case(
        "tampered_ciphertext",
        b.write("tamper-ct", tamper_char(token, 3, 40)),
        None,
        "manifest_decrypt_failed",
    )
    b.case(
        "tampered_tag",
        b.write("tamper-tag", tamper_char(token, 4, 3)),
        None,
        "manifest_decrypt_failed",
    )
    b.case(
        "tampered_encrypted_key",
        b.write("tamper-ek", tamper_char(token, 1, 100)),
        None,
        "manifest_decrypt_failed",
    )
    b.case(
        "encrypted_for_another_device",
        b.write("other-key", b.wrap(signed_ok.encode(), key=k.other_encryption)),
        None,
        "manifest_decrypt_failed",
    )
    b.case(
        "iv_wrong_size",
        b.write(
            "iv-size", b".".join([parts[0], parts[1], b64(b"\0" * 16).encode(), parts[3], parts[4]])
        ),
        None,
        "manifest_malformed",
    )
    b.case(
        "encrypted_key_short",
        b.write("ek-short", b".".join([parts[0], b64(b"\0" * 256).encode(), *parts[2:]])),
        None,
        "manifest_decrypt_failed",
    )
    # inner JWS
    b.case(
        "jws_unknown_kid",
        b.write(
            "untrusted", b.sign_and_wrap(ManifestClaims.from_dict(base).to_json(), k.untrusted)
        ),
        None,
        "unknown_key",
    )
    rs256 = jws.serialize_compact(
        {"alg": "RS256", "kid": key_id(k.signing), "typ": MANIFEST_TYP},
        ManifestClaims.from_dict(base).to_json(),
        jose_key(k.signing),
        algorithms=["RS256"],
    )
    b.case(
        "jws_alg_rs256", b.write("jws-rs256", b.wrap(rs256.encode())), None, "unsupported_algorithm"
    )
    jparts = signed_ok.split(".")
    wrong_typ = b64(json.dumps({"alg": "PS256", "kid": key_id(k.signing), "typ": "JWT"}).encode())
    b.case(
        "jws_wrong_typ",
        b.write("jws-typ", b.wrap(".".join([wrong_typ, *jparts[1:]]).encode())),
        None,
        "manifest_malformed",
    )
    bad_sig = tamper_char(signed_ok.encode(), 2, 10)
    b.case("jws_bad_signature", b.write("jws-sig", b.wrap(bad_sig)), None, "bad_signature")
    other_payload = dict(base, seq=99)
    swapped = ".".join([jparts[0], b64(json.dumps(other_payload).encode()), jparts[2]])
    b.case(
        "jws_payload_swapped",
        b.write("jws-payload", b.wrap(swapped.encode())),
        None,
        "bad_signature",
    )
    es_as_ps = b64(
        json.dumps({"alg": "PS256", "kid": key_id(k.signing_ec), "typ": MANIFEST_TYP}).encode()
    )
    b.case(
        "jws_alg_key_mismatch",
        b.write("jws-mismatch", b.wrap(".".join([es_as_ps, *jparts[1:]]).encode())),
        None,
        "bad_signature",
    )
    b.case(
        "jws_three_parts_missing",
        b.write("jws-parts", b.wrap(".".join(jparts[:2]).encode())),
        None,
        "manifest_malformed",
    )

    # -- fuzzing seeds (prefixed with the fuzz target's mode byte by `make fuzz`) ----------
    seeds = b.out / "fuzz-seeds"
    seeds.mkdir()
    (seeds / "1-jws.txt").write_bytes(signed_ok.encode())
    (seeds / "2-claims.json").write_bytes(ManifestClaims.from_dict(base).to_json())
    (seeds / "6-app.bin").write_bytes(decrypt_image(bin_.read_bytes(), k.pre))

    # -- claims ------------------------------------------------------------------------
    def claims_case(name: str, expect: str | None, **changes: Any) -> None:
        values = dict(base)
        for key, value in changes.items():
            if value is _DROP:
                values.pop(key, None)
            else:
                values[key] = value
        b.case(name, b.write(name, b.seal(values)), None, expect)

    claims_case("claims_fmt_2", "unsupported_format", fmt=2)
    claims_case("claims_fmt_missing", "invalid_claims", fmt=_DROP)
    claims_case("claims_seq_float_integral", None, seq=5.0)
    claims_case("claims_seq_fraction", "invalid_claims", seq=5.5)
    claims_case("claims_seq_zero", "invalid_claims", seq=0)
    claims_case("claims_seq_too_big", "invalid_claims", seq=2**31)
    claims_case("claims_seq_bool", "invalid_claims", seq=True)
    claims_case("claims_seq_string", "invalid_claims", seq="5")
    claims_case("claims_missing_device_type", "invalid_claims", device_type=_DROP)
    claims_case("claims_name_dotdot", "invalid_claims", fw_name="a..b")
    claims_case("claims_name_too_long", "invalid_claims", device_type="a" * 65)
    claims_case("claims_version_32_bytes", "invalid_claims", version="v" * 32)
    claims_case("claims_version_control_char", "invalid_claims", version="1.0\n")
    claims_case("claims_hex_uppercase", "invalid_claims", image_sha256="AB" * 32)
    claims_case("claims_enc_size_relation", "invalid_claims", enc_size=base["enc_size"] + 1)
    claims_case("claims_exp_not_after_iat", "invalid_claims", exp=base["iat"])
    claims_case("claims_secure_boot_unknown", "invalid_claims", secure_boot="v3")
    claims_case(
        "claims_image_too_big",
        "invalid_claims",
        image_size=16 * 1024 * 1024 + 1,
        enc_size=16 * 1024 * 1024 + 513,
    )
    claims_case("claims_unknown_member_ignored", None, extra={"nested": [1, 2, {"a": None}]})
    nested: Any = 1
    for _ in range(32):
        nested = [nested]
    claims_case("claims_depth_33", "invalid_claims", extra=nested)
    raw = json.dumps(base, separators=(",", ":")).encode()
    b.case(
        "claims_duplicate_member",
        b.write("claims-dup", b.sign_and_wrap(raw[:-1] + b',"seq":5}')),
        None,
        "invalid_claims",
    )
    b.case(
        "claims_nested_duplicate",
        b.write("claims-nested-dup", b.sign_and_wrap(raw[:-1] + b',"x":{"a":1,"a":2}}')),
        None,
        "invalid_claims",
    )
    b.case(
        "claims_bad_utf8",
        b.write("claims-utf8", b.sign_and_wrap(raw[:-1] + b',"x":"\xc0\xaf"}')),
        None,
        "invalid_claims",
    )
    b.case(
        "claims_lone_surrogate",
        b.write("claims-surrogate", b.sign_and_wrap(raw[:-1] + b',"x":"\\ud800"}')),
        None,
        "invalid_claims",
    )
    b.case(
        "claims_not_object",
        b.write("claims-array", b.sign_and_wrap(b"[1]")),
        None,
        "invalid_claims",
    )
    b.case(
        "claims_nan",
        b.write("claims-nan", b.sign_and_wrap(raw[:-1] + b',"x":NaN}')),
        None,
        "invalid_claims",
    )

    # -- decision ----------------------------------------------------------------------
    b.case("wrong_device_type", m, None, "wrong_device_type", device_type="other-device")
    b.case("wrong_chip", m, None, "wrong_chip", chip_id=5)
    b.case("already_installed", m, None, "already_installed", installed_seq=claims.seq)
    b.case("rollback", m, None, "rollback", installed_seq=claims.seq + 1)
    b.case(
        "secure_version_too_low",
        m,
        None,
        "secure_version_too_low",
        secure_version=claims.secure_version + 1,
    )
    b.case("expired", me, None, "expired", now=ce.exp)

    # -- image -------------------------------------------------------------------------
    data = bin_.read_bytes()
    b.case("image_truncated", m, b.write("img-truncated", data[:-1], ".bin"), "image_size_mismatch")
    b.case(
        "image_extended", m, b.write("img-extended", data + b"\0", ".bin"), "image_size_mismatch"
    )
    b.case(
        "image_tampered",
        m,
        b.write("img-tampered", tamper(data, 700), ".bin"),
        "enc_digest_mismatch",
    )

    def resealed(name: str, new_bin: bytes, expect: str, **changes: Any) -> None:
        """A tampered .bin whose manifest was re-signed for it (defence-in-depth checks)."""
        values = dict(
            base,
            enc_sha256=hashlib.sha256(new_bin).hexdigest(),
            enc_size=len(new_bin),
            image_size=len(new_bin) - 512,
        )
        values.update(changes)
        manifest = b.write(
            name,
            seal_manifest(
                ManifestClaims.from_dict(values),
                signing_key=k.signing,
                encryption_key=k.encryption.public_key(),
            ),
        )
        b.case(name, manifest, b.write(name, new_bin, ".bin"), expect)

    reserved = bytearray(data)
    reserved[500] = 1
    resealed("image_header_reserved", bytes(reserved), "image_header_invalid")
    magic = bytearray(data)
    magic[0] ^= 0xFF
    resealed("image_header_magic", bytes(magic), "image_header_invalid")
    resealed("image_ciphertext_tampered", tamper(data, 4000), "image_decrypt_failed")
    resealed("image_tag_tampered", tamper(data, 410), "image_decrypt_failed")
    resealed("image_wrapped_key_tampered", tamper(data, 50), "image_decrypt_failed")
    resealed("image_digest_claim", data, "image_digest_mismatch", image_sha256="ab" * 32)
    resealed("image_version_claim", data, "image_invalid", version="9.9.9")
    resealed("image_chip_claim", data, "image_invalid", chip_id=5)
    app = build_app_image(ImageSpec(size=IMAGE_SIZE, seed=99))
    broken = bytearray(app)
    broken[40] ^= 1  # inside the app descriptor: checksum and digest no longer match
    signed = sign_image(bytes(broken), k.secure_boot["v1"], Scheme.V1)
    plain_claims = {"image_sha256": hashlib.sha256(signed).hexdigest()}
    resealed(
        "image_structure_broken",
        encrypt_image(signed, k.pre.public_key()),
        "image_invalid",
        **plain_claims,
    )
    rogue = sign_image(app, k.rogue_secure_boot, Scheme.V1)
    rogue_bin = encrypt_image(rogue, k.pre.public_key())
    resealed(
        "image_rogue_secure_boot_key",
        rogue_bin,
        "secure_boot_signature_invalid",
        image_sha256=hashlib.sha256(rogue).hexdigest(),
        app_elf_sha256=hashlib.sha256(b"secure_fota_demo/1.0.0/99").hexdigest(),
        version="1.0.0",
        secure_version=0,
    )
    bad_sig = bytearray(rogue)
    bad_sig[-1] ^= 1
    resealed(
        "image_secure_boot_sig_flipped",
        encrypt_image(bytes(bad_sig), k.pre.public_key()),
        "secure_boot_signature_invalid",
        image_sha256=hashlib.sha256(bad_sig).hexdigest(),
        app_elf_sha256=hashlib.sha256(b"secure_fota_demo/1.0.0/99").hexdigest(),
        version="1.0.0",
        secure_version=0,
    )


class _Drop:
    pass


_DROP = _Drop()


def main(out: Path = HERE) -> None:
    for path in out.iterdir():
        if path.name in ("README.md", "generate.py", "reference.py", "__init__.py", "__pycache__"):
            continue
        shutil.rmtree(path) if path.is_dir() else path.unlink()
    keys = Keys()
    for scheme in ("v1", "v2-rsa3072", "v2-ecdsa256", "v2-ecdsa384"):
        keys.write_device_dir(out / f"keys-{scheme}", scheme)
    builder = Builder(out, keys)
    try:
        build_all(builder)
    finally:
        shutil.rmtree(builder.work)
    cases = {"generated_by": "tests/vectors/generate.py", "now": NOW, "cases": builder.cases}
    (out / "cases.json").write_text(json.dumps(cases, indent=1) + "\n")
    print(f"{len(builder.cases)} cases written to {out}")


if __name__ == "__main__":
    main()
