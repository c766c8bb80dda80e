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

from cryptography.hazmat.primitives import hashes, serialization  # noqa: E402
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa, utils  # noqa: E402
from cryptography.hazmat.primitives.ciphers.aead import AESGCM  # noqa: E402
from joserfc import jwe, jws  # noqa: E402
from joserfc.jwk import ECKey, RSAKey  # noqa: E402

from secure_fota.author.release import ReleaseRequest, build_release  # noqa: E402
from secure_fota.crypto.encrypted_image import (  # noqa: E402
    decrypt_image,
    ecies_device_key,
    encrypt_image,
)
from secure_fota.crypto.freshness import FreshnessSigner  # noqa: E402
from secure_fota.crypto.key_rotation import make_rotation  # noqa: E402
from secure_fota.crypto.keyring import AuthorKeys  # noqa: E402
from secure_fota.crypto.keys import (  # noqa: E402
    PrivateKey,
    generate_private_key,
    key_id,
    private_pem,
    public_pem,
)
from secure_fota.crypto.manifest import seal_manifest, sign_compact  # noqa: E402
from secure_fota.crypto.secure_boot import sign_image  # noqa: E402
from secure_fota.formats.app_image import chip_id_for  # noqa: E402
from secure_fota.formats.app_image_builder import ImageSpec, build_app_image  # noqa: E402
from secure_fota.formats.manifest import MANIFEST_TYP, ManifestClaims  # noqa: E402
from secure_fota.formats.secure_boot import Scheme  # noqa: E402
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
        # ECDH-ES+A256KW (fota keys generate --manifest-encryption ec-p256): keys-ec-p256/
        self.encryption_ec = generate_private_key("ecdsa256")
        self.other_encryption_ec = generate_private_key("ecdsa256")
        # ECIES-P256 pre-encryption (--pre-encryption ecies-p256): keys-ec-ecies/ holds the
        # eFuse HMAC key; the device derives its P-256 image key from it
        self.ecies_hmac = os.urandom(32)
        self.ecies = ecies_device_key(self.ecies_hmac)
        self.pre = generate_private_key("rsa3072")
        self.freshness = generate_private_key("ecdsa256")
        self.secure_boot = {
            "v1": generate_private_key("ecdsa256"),
            "v2-rsa3072": generate_private_key("rsa3072"),
            "v2-ecdsa384": generate_private_key("ecdsa384"),
        }
        self.secure_boot["v2-ecdsa256"] = self.secure_boot["v1"]
        self.rogue_secure_boot = generate_private_key("ecdsa256")
        # key rotation (docs/formats.md §4.4): version 1 is {signing, signing_ec}; statement 2,
        # signed by `signing`, names {r2} (revoking both); statement 3, signed by r2, names
        # {r3, r2}. The attacker signs statements with its own key.
        self.r2 = generate_private_key("ecdsa256")
        self.r3 = generate_private_key("rsa3072")
        self.attacker = generate_private_key("ecdsa256")
        self.rsa2048 = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self.s2 = make_rotation(self.signing, 2, [self.r2.public_key()])
        self.s3 = make_rotation(self.r2, 3, [self.r3.public_key(), self.r2.public_key()])

    def write_device_dir(
        self,
        directory: Path,
        scheme: str,
        signing: list[PrivateKey] | None = None,
        keyset_version: int | None = None,
        encryption: PrivateKey | None = None,
        ecies: bool = False,
    ) -> None:
        directory.mkdir()
        trusted = signing or [self.signing, self.signing_ec]
        files = {
            "manifest_encryption_key.pem": private_pem(encryption or self.encryption),
            **(
                {"pre_encryption_hmac_key.bin": self.ecies_hmac}
                if ecies
                else {"pre_encryption_key.pem": private_pem(self.pre)}
            ),
            "secure_boot_signing_pub.pem": public_pem(self.secure_boot[scheme]),
            "freshness_pub.pem": public_pem(self.freshness),
        }
        names = ["manifest_signing_pub.pem", "manifest_signing_pub.rotated-es256.pem"]
        names += [f"manifest_signing_pub.k{i}.pem" for i in range(2, len(trusted))]
        for name, key in zip(names, trusted, strict=False):
            files[name] = public_pem(key)
        if keyset_version is not None:
            files["keyset_version"] = f"{keyset_version}\n".encode()
        for name, data in files.items():
            (directory / name).write_bytes(data)

    def author(
        self,
        scheme: str,
        signing: PrivateKey | None = None,
        rotations: tuple[str, ...] = (),
        encryption: PrivateKey | None = None,
        pre: PrivateKey | None = None,
    ) -> AuthorKeys:
        return AuthorKeys(
            secure_boot=self.secure_boot[scheme],
            manifest_signing=signing or self.signing,
            manifest_encryption=(encryption or self.encryption).public_key(),
            pre_encryption=(pre or self.pre).public_key(),
            rotations=rotations,
        )


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def jose_key(key: Any) -> RSAKey | ECKey:
    if hasattr(key, "curve"):
        return ECKey(key, key)
    return RSAKey(key, key)


def der(key: Any) -> bytes:
    return key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def noncanonical(segment: str) -> str:
    """The same bytes' segment with non-zero unused low bits in its last character."""
    if len(segment) % 4 not in (2, 3):
        raise ValueError("this segment has no unused bits")
    return segment[:-1] + B64[B64.index(segment[-1]) | 1]


B64 = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"


def raw_jws(header: dict[str, Any] | str, payload: bytes, key: Any, bend: int = -1) -> str:
    """A JWS built by hand (any header); ``bend`` makes part 0/1/2 non-canonical (signed so)."""
    text = header if isinstance(header, str) else json.dumps(header, separators=(",", ":"))
    parts = [b64(text.encode()), b64(payload)]
    for index in (0, 1):
        if bend == index:
            parts[index] = noncanonical(parts[index])
    signing_input = ".".join(parts).encode()
    if isinstance(key, ec.EllipticCurvePrivateKey):
        r, s = utils.decode_dss_signature(key.sign(signing_input, ec.ECDSA(hashes.SHA256())))
        signature = r.to_bytes(32, "big") + s.to_bytes(32, "big")
    else:
        pss = padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=32)
        signature = key.sign(signing_input, pss, hashes.SHA256())
    parts.append(b64(signature))
    if bend == 2:
        parts[2] = noncanonical(parts[2])
    return ".".join(parts)


def pad_to_mod4(header: dict[str, Any], remainder: int) -> str:
    """The header as JSON with spaces added so that its base64url length is `remainder` mod 4."""
    text = json.dumps(header, separators=(",", ":"))
    while len(b64(text.encode())) % 4 != remainder:
        text = text[:-1] + " }"
    return text


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
        rotations: tuple[str, ...] = (),
        encryption: PrivateKey | None = None,
        pre: PrivateKey | None = None,
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
            self.keys.author(scheme, signing, rotations, encryption, pre),
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

    def raw_wrap(self, plaintext: bytes, header: bytes, bend: int = -1) -> bytes:
        """A JWE built by hand (RSA-OAEP-256 + A256GCM) for headers joserfc will not write.

        ``bend`` makes that part's base64url non-canonical (the header as AAD, as received).
        """
        cek, iv = os.urandom(32), os.urandom(12)
        wrapped = self.keys.encryption.public_key().encrypt(
            cek,
            padding.OAEP(mgf=padding.MGF1(hashes.SHA256()), algorithm=hashes.SHA256(), label=None),
        )
        protected = b64(header)
        if bend == 0:
            protected = noncanonical(protected)
        sealed = AESGCM(cek).encrypt(iv, plaintext, protected.encode())
        parts = [protected, b64(wrapped), b64(iv), b64(sealed[:-16]), b64(sealed[-16:])]
        if bend > 0:
            parts[bend] = noncanonical(parts[bend])
        return ".".join(parts).encode()

    def write(self, name: str, data: bytes, suffix: str = ".manifest") -> Path:
        path = self.out / f"{name}{suffix}"
        path.write_bytes(data)
        return path

    def case(
        self,
        name: str,
        manifest: Path | None,
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
        unchanged: bool = False,
        none: bool = False,
        device_id: str | None = None,
    ) -> None:
        """``unchanged``: the C side judges the manifest as on an HTTP 304 (see build_unchanged);
        ``none``: the answer is an HTTP 404, ``manifest`` the installed one's (see build_none);
        ``device_id``: the device's own id (absent: it has none; see build_device_id)."""
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
            none=none,
            device_id=device_id,
        )
        if verdict["reason"] != expect:
            raise SystemExit(f"case {name}: built for {expect}, reference says {verdict}")
        if unchanged and (verdict["claims"] or {}).get("seq", installed_seq + 1) > installed_seq:
            raise SystemExit(f"case {name}: a 304 case needs a manifest judged installed before")
        self.cases.append(
            {
                "name": name,
                "keys": keys,
                "manifest": manifest.name if manifest else None,
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
            | ({"unchanged": True} if unchanged else {})
            | ({"none": True} if none else {})
            | ({"device_id": device_id} if device_id is not None else {})
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
        token = FreshnessSigner(key or k.freshness).sign(**values)
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
    # seq is the server's id of the release: informational, not compared with the claims
    b.case(
        "freshness_seq_mismatch_accepted",
        m,
        None,
        None,
        freshness=statement("fresh-seq", seq=claims.seq + 1),
        nonce=NONCE,
    )
    b.case(
        "freshness_integral_numbers",
        m,
        None,
        None,
        freshness=statement("fresh-float", seq=float(claims.seq), iat=float(NOW)),
        nonce=NONCE,
    )
    b.case(
        "freshness_iat_max",
        m,
        None,
        None,
        freshness=statement("fresh-iat-max", iat=2**53 - 1),
        nonce=NONCE,
    )
    for name, changes in (
        ("freshness_seq_fraction", {"seq": claims.seq + 0.5}),
        ("freshness_iat_too_big", {"iat": 2**53}),
        ("freshness_iat_negative", {"iat": -1}),
        ("freshness_seq_bool", {"seq": True}),
    ):
        fname = "fresh-" + name.removeprefix("freshness_").replace("_", "-")
        b.case(
            name,
            m,
            None,
            "freshness_invalid",
            freshness=statement(fname, **changes),
            nonce=NONCE,
        )
    fresh_payload = json.dumps(
        {
            "answer": "newest",
            "device_type": DEVICE,
            "seq": claims.seq,
            "nonce": NONCE,
            "iat": NOW,
            "manifest_sha256": hashlib.sha256(m.read_bytes()).hexdigest(),
        },
        separators=(",", ":"),
    ).encode()
    fresh_header = {"alg": "ES256", "kid": key_id(k.freshness), "typ": "fota-freshness+jwt"}
    b.case(
        "freshness_hand_made_ok",
        m,
        None,
        None,
        freshness=b.write(
            "fresh-hand", raw_jws(fresh_header, fresh_payload, k.freshness).encode(), ".freshness"
        ),
        nonce=NONCE,
    )
    b.case(
        "freshness_header_unknown_member",
        m,
        None,
        "freshness_invalid",
        freshness=b.write(
            "fresh-member",
            raw_jws(dict(fresh_header, x=1), fresh_payload, k.freshness).encode(),
            ".freshness",
        ),
        nonce=NONCE,
    )
    for part in (0, 1, 2):
        header: dict[str, Any] | str = fresh_header
        payload = fresh_payload
        if part == 0:
            header = pad_to_mod4(fresh_header, 2)
        if part == 1:
            while len(b64(payload)) % 4 == 0:
                payload = payload[:-1] + b" }"
        b.case(
            f"freshness_noncanonical_part{part + 1}",
            m,
            None,
            "freshness_invalid",
            freshness=b.write(
                f"fresh-b64-{part + 1}",
                raw_jws(header, payload, k.freshness, bend=part).encode(),
                ".freshness",
            ),
            nonce=NONCE,
        )
    build_answers(b, m, fresh_header)

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
        "manifest_malformed",
    )
    b.case(
        "jwe_kid_string_allowed",
        b.write(
            "jwe-kid-ok",
            b.raw_wrap(
                signed_ok.encode(),
                b'{"alg":"RSA-OAEP-256","enc":"A256GCM","cty":"JWT","kid":"fleet-1"}',
            ),
        ),
        None,
        None,
    )
    b.case(
        "jwe_unknown_member_and_zip",
        b.write(
            "jwe-member-zip",
            b.raw_wrap(
                signed_ok.encode(),
                b'{"alg":"RSA-OAEP-256","enc":"A256GCM","cty":"JWT","zip":"DEF","x":1}',
            ),
        ),
        None,
        "unsupported_algorithm",
    )
    # the JWE header segment: at most 1024 characters (768 bytes; 769 bytes give 1026)
    for size, raw_len, expect in ((1024, 768, None), (1026, 769, "manifest_malformed")):
        start = '{"alg":"RSA-OAEP-256","enc":"A256GCM","cty":"JWT","kid":"'
        text = start + "k" * (raw_len - len(start) - 2) + '"}'
        assert len(b64(text.encode())) == size
        b.case(
            f"jwe_header_{size}_chars",
            b.write(f"jwe-header-{size}", b.raw_wrap(signed_ok.encode(), text.encode())),
            None,
            expect,
        )
    # non-canonical base64url in each JWE part but the IV (12 bytes: no unused bits)
    jwe_header = pad_to_mod4({"alg": "RSA-OAEP-256", "enc": "A256GCM", "cty": "JWT"}, 2)
    inner = signed_ok.encode()
    while len(b64(inner)) % 4 == 0:  # a ciphertext with unused bits
        inner = inner + b" "
    for part in (0, 1, 3, 4):
        b.case(
            f"jwe_noncanonical_part{part + 1}",
            b.write(f"jwe-b64-{part + 1}", b.raw_wrap(inner, jwe_header.encode(), bend=part)),
            None,
            "manifest_malformed",
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
    seeds.mkdir(exist_ok=True)
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
    # rule 3 of §6: the installed release past its exp is a freeze, before it is just installed
    b.case("installed_expired", me, None, "expired", installed_seq=ce.seq, now=ce.exp)
    b.case(
        "installed_before_exp", me, None, "already_installed", installed_seq=ce.seq, now=ce.exp - 1
    )

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
    build_jws_headers(b, base)
    build_rotation(b, base)
    build_unchanged(b, m, claims, me, ce)


def build_jws_headers(b: Builder, base: dict[str, Any]) -> None:
    """Inner JWS header members and base64url (docs/formats.md §4.3)."""
    k = b.keys
    claims = ManifestClaims.from_dict(base).to_json()
    ok = {"alg": "PS256", "kid": key_id(k.signing), "typ": MANIFEST_TYP}
    ec_ok = {"alg": "ES256", "kid": key_id(k.signing_ec), "typ": MANIFEST_TYP}
    for name, header, expect in (
        ("jws_hand_made_ok", ok, None),
        ("jws_unknown_member", dict(ok, x=1), "manifest_malformed"),
        ("jws_cty_member", dict(ok, cty="JWT"), "manifest_malformed"),
        ("jws_unknown_member_bad_alg", dict(ok, alg="RS256", x=1), "unsupported_algorithm"),
        ("jws_unknown_member_bad_typ", dict(ok, typ="JWT", x=1), "manifest_malformed"),
        ("jws_unknown_member_unknown_kid", dict(ok, kid="00" * 32, x=1), "manifest_malformed"),
        ("jws_rot_and_bad_alg", dict(ok, alg="RS256", rot=5), "manifest_malformed"),
    ):
        token = raw_jws(header, claims, k.signing)
        b.case(name, b.write(name.replace("_", "-"), b.wrap(token.encode())), None, expect)
    for part in (0, 1, 2):
        header_text: dict[str, Any] | str = ec_ok
        payload = claims
        if part == 0:
            header_text = pad_to_mod4(ec_ok, 3)
        if part == 1:
            while len(b64(payload)) % 4 == 0:
                payload = payload[:-1] + b" }"
        token = raw_jws(header_text, payload, k.signing_ec, bend=part)
        name = f"jws_noncanonical_part{part + 1}"
        b.case(
            name,
            b.write(name.replace("_", "-"), b.wrap(token.encode())),
            None,
            "manifest_malformed",
        )


def build_rotation(b: Builder, base: dict[str, Any]) -> None:  # noqa: PLR0915 -- one list of cases
    """Key rotation (docs/formats.md §4.4): chains, forged and broken statements, revocation."""
    k = b.keys
    k.write_device_dir(b.out / "keys-rot-v2", "v1", [k.r2], keyset_version=2)
    k.write_device_dir(b.out / "keys-rot-v3", "v1", [k.r3, k.r2], keyset_version=3)
    claims = ManifestClaims.from_dict(base).to_json()

    def sealed(name: str, signer: PrivateKey, rot: Any, **header: Any) -> Path:
        """A manifest signed by `signer` whose JWS header carries `rot` as given."""
        fields = {
            "alg": "ES256" if hasattr(signer, "curve") else "PS256",
            "kid": key_id(signer),
            "typ": MANIFEST_TYP,
            **header,
        }
        if rot is not _DROP:
            fields["rot"] = rot
        return b.write(name, b.wrap(raw_jws(fields, claims, signer).encode()))

    def statement(signer: PrivateKey, payload: Any, header: Any = None, bend: int = -1) -> str:
        fields = header or {
            "alg": "ES256" if hasattr(signer, "curve") else "PS256",
            "kid": key_id(signer),
            "typ": "fota-keys+jwt",
        }
        text = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
        return raw_jws(fields, text, signer, bend=bend)

    r2_b64 = b64(der(k.r2.public_key()))
    r2_der = der(k.r2.public_key())
    unknown_algorithm = r2_der.replace(
        bytes.fromhex("2a8648ce3d0201"), bytes.fromhex("2a8648ce3d0209")
    )
    unknown_curve = r2_der.replace(
        bytes.fromhex("2a8648ce3d030107"), bytes.fromhex("2a8648ce3d030108")
    )
    # chains, through the author tool
    m1, bin1, _ = b.release("rot-chain1", signing=k.r2, rotations=(k.s2,), seq=6)
    b.case("rot_chain1_device_v1", m1, bin1, None)
    m2, _, _ = b.release("rot-chain2", signing=k.r3, rotations=(k.s2, k.s3), seq=7)
    b.case("rot_chain2_device_v1", m2, None, None)
    b.case("rot_chain2_device_v2", m2, None, None, keys="keys-rot-v2")
    b.case("rot_chain2_device_v3", m2, None, None, keys="keys-rot-v3")
    m3, _, _ = b.release("rot-chain2-kept", signing=k.r2, rotations=(k.s2, k.s3), seq=7)
    b.case("rot_chain2_kept_key_signs", m3, None, None)
    # revocation: the old key after a device committed version 2, or with the chain attached
    b.case(
        "rot_revoked_after_commit",
        b.out / "ok-v1.manifest",
        None,
        "unknown_key",
        keys="keys-rot-v2",
    )
    m4, _, _ = b.release("rot-old-signer", signing=k.signing, rotations=(k.s2,), seq=6)
    b.case("rot_old_key_revoked_by_its_chain", m4, None, "unknown_key")
    b.case("rot_chain1_device_v3_r2_kept", m1, None, None, keys="keys-rot-v3")
    # forged statements, version gaps
    forged = make_rotation(k.attacker, 2, [k.attacker.public_key()])
    b.case("rot_forged", sealed("rot-forged", k.attacker, [forged]), None, "unknown_key")
    b.case(
        "rot_forged_before_valid",
        sealed("rot-forged-first", k.r2, [forged, k.s2]),
        None,
        "unknown_key",
    )
    b.case(
        "rot_forged_old_version_skipped",
        sealed("rot-forged-skipped", k.r3, [forged, k.s3]),
        None,
        None,
        keys="keys-rot-v2",
    )
    gap = make_rotation(k.signing, 3, [k.r2.public_key()])
    b.case("rot_version_gap", sealed("rot-gap", k.r2, [gap]), None, "unknown_key")
    b.case(
        "rot_statement_skipping_a_version", sealed("rot-skip3", k.r3, [k.s3]), None, "unknown_key"
    )
    b.case(
        "rot_garbage_statement", sealed("rot-garbage", k.r2, ["garbage", k.s2]), None, "unknown_key"
    )
    b.case("rot_eight_statements", sealed("rot-eight", k.r2, [k.s2] * 8), None, None)
    # the shape of rot
    for name, rot in (
        ("rot_not_an_array", "x"),
        ("rot_empty", []),
        ("rot_nine_strings", ["a"] * 9),
        ("rot_not_strings", [k.s2, 5]),
        ("rot_null", None),
    ):
        b.case(name, sealed(name.replace("_", "-"), k.r2, rot), None, "manifest_malformed")
    # statements: payload and header rules
    r2 = [r2_b64]
    for name, stmt, expect in (
        ("rot_stmt_hand_made_ok", statement(k.signing, {"version": 2, "keys": r2}), None),
        (
            "rot_stmt_version_integral_float",
            statement(k.signing, {"version": 2.0, "keys": r2}),
            None,
        ),
        ("rot_stmt_extra_member", statement(k.signing, {"version": 2, "keys": r2, "x": [1]}), None),
        ("rot_stmt_key_listed_twice", statement(k.signing, {"version": 2, "keys": r2 * 2}), None),
        (
            "rot_stmt_version_fraction",
            statement(k.signing, {"version": 2.5, "keys": r2}),
            "unknown_key",
        ),
        (
            "rot_stmt_version_string",
            statement(k.signing, {"version": "2", "keys": r2}),
            "unknown_key",
        ),
        ("rot_stmt_no_keys", statement(k.signing, {"version": 2, "keys": []}), "unknown_key"),
        ("rot_stmt_five_keys", statement(k.signing, {"version": 2, "keys": r2 * 5}), "unknown_key"),
        (
            "rot_stmt_key_not_base64",
            statement(k.signing, {"version": 2, "keys": ["**"]}),
            "unknown_key",
        ),
        (
            "rot_stmt_key_too_long",
            statement(k.signing, {"version": 2, "keys": ["A" * 2052]}),
            "unknown_key",
        ),
        (
            "rot_stmt_key_p384",
            statement(
                k.signing,
                {"version": 2, "keys": [b64(der(k.secure_boot["v2-ecdsa384"].public_key()))]},
            ),
            "unknown_key",
        ),
        (
            "rot_stmt_key_rsa2048",
            statement(k.signing, {"version": 2, "keys": [b64(der(k.rsa2048.public_key()))]}),
            "unknown_key",
        ),
        (  # cryptography raises UnsupportedAlgorithm for these two: still unreadable
            "rot_stmt_key_unknown_algorithm",
            statement(k.signing, {"version": 2, "keys": [b64(unknown_algorithm)]}),
            "unknown_key",
        ),
        (
            "rot_stmt_key_unknown_curve",
            statement(k.signing, {"version": 2, "keys": [b64(unknown_curve)]}),
            "unknown_key",
        ),
        (
            "rot_stmt_wrong_typ",
            statement(
                k.signing,
                {"version": 2, "keys": r2},
                {"alg": "PS256", "kid": key_id(k.signing), "typ": "JWT"},
            ),
            "unknown_key",
        ),
        (
            "rot_stmt_unknown_member",
            statement(
                k.signing,
                {"version": 2, "keys": r2},
                {"alg": "PS256", "kid": key_id(k.signing), "typ": "fota-keys+jwt", "x": 1},
            ),
            "unknown_key",
        ),
        (
            "rot_stmt_rot_member",
            statement(
                k.signing,
                {"version": 2, "keys": r2},
                {"alg": "PS256", "kid": key_id(k.signing), "typ": "fota-keys+jwt", "rot": []},
            ),
            "unknown_key",
        ),
        (
            "rot_stmt_version_gap_from_v1",
            statement(k.signing, {"version": 3, "keys": r2}),
            "unknown_key",
        ),
    ):
        b.case(name, sealed(name.replace("_", "-"), k.r2, [stmt]), None, expect)
    # key encodings the reference reads: compressed and hybrid points, RSA without NULL
    point = k.r2.public_key().public_bytes(
        serialization.Encoding.X962, serialization.PublicFormat.CompressedPoint
    )
    ec_alg = bytes.fromhex("301306072a8648ce3d020106082a8648ce3d030107")
    compressed = (
        b"\x30"
        + bytes([len(ec_alg) + len(point) + 3])
        + ec_alg
        + b"\x03"
        + bytes([len(point) + 1])
        + b"\x00"
        + point
    )
    uncompressed = der(k.r2.public_key())
    hybrid = uncompressed[:-65] + bytes([6 | (uncompressed[-1] & 1)]) + uncompressed[-64:]
    r3_der = der(k.r3.public_key())
    no_null = bytearray(
        r3_der.replace(
            bytes.fromhex("300d06092a864886f70d0101010500"),
            bytes.fromhex("300b06092a864886f70d010101"),
            1,
        )
    )
    no_null[2:4] = (int.from_bytes(no_null[2:4], "big") - 2).to_bytes(2, "big")
    for name, key_der, signer in (
        ("rot_stmt_key_compressed_point", compressed, k.r2),
        ("rot_stmt_key_hybrid_point", hybrid, k.r2),
        ("rot_stmt_key_rsa_without_null", bytes(no_null), k.r3),
    ):
        stmt = statement(k.signing, {"version": 2, "keys": [b64(key_der)]})
        b.case(name, sealed(name.replace("_", "-"), signer, [stmt]), None, None)
    # non-canonical base64url in each part of statement 3: the walk stops at version 2
    r3_only = [b64(der(k.r3.public_key()))]
    for part in (-1, 0, 1, 2):
        header = {"alg": "ES256", "kid": key_id(k.r2), "typ": "fota-keys+jwt"}
        payload = json.dumps({"version": 3, "keys": r3_only}).encode()
        header_text: Any = pad_to_mod4(header, 2) if part == 0 else header
        while part == 1 and len(b64(payload)) % 4 == 0:
            payload = payload[:-1] + b" }"
        stmt = raw_jws(header_text, payload, k.r2, bend=part)
        name = f"rot_stmt_noncanonical_part{part + 1}" if part >= 0 else "rot_stmt_canonical"
        b.case(
            name,
            sealed(name.replace("_", "-"), k.r3, [k.s2, stmt]),
            None,
            None if part < 0 else "unknown_key",
        )

    # fuzzing seeds: an inner JWS with a chain, a JWS header with rot, keys
    seeds = b.out / "fuzz-seeds"
    (seeds / "1-jws-rot.txt").write_bytes(
        raw_jws(
            {"alg": "PS256", "kid": key_id(k.r3), "typ": MANIFEST_TYP, "rot": [k.s2, k.s3]},
            claims,
            k.r3,
        ).encode()
    )
    (seeds / "8-header-rot.json").write_bytes(
        json.dumps(
            {"alg": "PS256", "kid": key_id(k.r3), "typ": MANIFEST_TYP, "rot": [forged, k.s2, k.s3]}
        ).encode()
    )
    (seeds / "7-key-ec.der").write_bytes(uncompressed)
    (seeds / "7-key-ec-compressed.der").write_bytes(compressed)
    (seeds / "7-key-rsa.der").write_bytes(r3_der)


class _Drop:
    pass


_DROP = _Drop()


def build_answers(b: Builder, m: Path, header: dict[str, Any]) -> None:
    """Explicit answers (docs/formats.md §7, issue 14): a statement answers ``newest`` (with
    ``seq`` and ``manifest_sha256``) or ``none``; any other member or answer is refused, and
    the wrong answer for what was served is ``stale_manifest``."""
    k = b.keys
    digest = hashlib.sha256(m.read_bytes()).hexdigest()
    newest = {"answer": "newest", "device_type": DEVICE, "seq": 1, "manifest_sha256": digest,
              "nonce": NONCE, "iat": NOW}  # fmt: skip
    none = {"answer": "none", "device_type": DEVICE, "nonce": NONCE, "iat": NOW}

    def hand(name: str, payload: dict[str, Any]) -> Path:
        data = json.dumps(payload, separators=(",", ":")).encode()
        return b.write(
            f"fresh-answer-{name}", raw_jws(header, data, k.freshness).encode(), ".freshness"
        )

    def without(payload: dict[str, Any], member: str) -> dict[str, Any]:
        return {key: value for key, value in payload.items() if key != member}

    for name, payload, expect in (
        ("newest-ok", newest, None),
        ("missing", without(newest, "answer"), "freshness_invalid"),
        ("unknown", newest | {"answer": "maybe"}, "freshness_invalid"),
        ("upper-case", newest | {"answer": "NEWEST"}, "freshness_invalid"),
        ("not-a-string", newest | {"answer": 1}, "freshness_invalid"),
        ("extra-member", newest | {"x": 1}, "freshness_invalid"),
        ("newest-without-seq", without(newest, "seq"), "freshness_invalid"),
        ("newest-without-digest", without(newest, "manifest_sha256"), "freshness_invalid"),
        ("device-id", newest | {"device_id": "dev-1"}, "freshness_invalid"),
        ("device-id-malformed", newest | {"device_id": "a/b"}, "freshness_invalid"),
        ("none-on-a-manifest", none, "stale_manifest"),
        ("none-with-seq", none | {"seq": 1}, "freshness_invalid"),
        ("none-with-digest", none | {"manifest_sha256": digest}, "freshness_invalid"),
    ):
        b.case(
            f"fresh_answer_{name.replace('-', '_')}",
            m,
            None,
            expect,
            freshness=hand(name, payload),
            nonce=NONCE,
        )
    (b.out / "fuzz-seeds").mkdir(exist_ok=True)
    (b.out / "fuzz-seeds" / "9-statement-newest.json").write_bytes(json.dumps(newest).encode())
    (b.out / "fuzz-seeds" / "9-statement-none.json").write_bytes(json.dumps(none).encode())


def build_unchanged(
    b: Builder, m: Path, claims: ManifestClaims, me: Path, ce: ManifestClaims
) -> None:
    """An HTTP 304 to If-None-Match: the newest manifest is still the one judged installed.

    The reference device judges its cached copy again (``check_manifest``); the C glue kept only
    the manifest's SHA-256 and ``exp`` and asks ``so_decide_unchanged`` (``"unchanged": true``:
    ``secure_ota_host verify --unchanged``). Rule 3 of docs/formats.md §6 either way.
    """
    for name, now in (("unchanged_installed", None), ("unchanged_no_exp_clock_set", NOW + 10**8)):
        b.case(
            name, m, None, "already_installed", installed_seq=claims.seq, now=now, unchanged=True
        )
    assert ce.exp is not None
    for name, now, expect in (
        ("unchanged_exp_no_clock", None, "already_installed"),
        ("unchanged_before_exp", ce.exp - 1, "already_installed"),
        ("unchanged_at_exp", ce.exp, "expired"),
        ("unchanged_after_exp", ce.exp + 86400, "expired"),
    ):
        b.case(name, me, None, expect, installed_seq=ce.seq, now=now, unchanged=True)
    for name, statement, expect in (
        ("unchanged_freshness_ok", "fresh-ok", "already_installed"),
        ("unchanged_freshness_stale_digest", "fresh-stale", "stale_manifest"),
        ("unchanged_freshness_wrong_nonce", "fresh-nonce", "freshness_invalid"),
        ("unchanged_answer_none", "fresh-answer-none-on-a-manifest", "stale_manifest"),
        ("unchanged_answer_extra_member", "fresh-answer-extra-member", "freshness_invalid"),
    ):
        b.case(
            name,
            m,
            None,
            expect,
            installed_seq=claims.seq,
            freshness=b.out / f"{statement}.freshness",
            nonce=NONCE,
            unchanged=True,
        )
    # a 304 (the statement vouching for the cached manifest) for a release below the installed
    # one: the server is rolling the device back (the record keeps seq)
    for name, statement, installed in (
        ("unchanged_rollback", None, claims.seq + 1),
        ("unchanged_rollback_with_statement", "fresh-ok", claims.seq + 1),
        ("unchanged_rollback_far_below", None, 2**31 - 1),
        ("unchanged_rollback_stale_statement", "fresh-stale", claims.seq + 1),
    ):
        b.case(
            name,
            m,
            None,
            "stale_manifest" if statement == "fresh-stale" else "rollback",
            installed_seq=installed,
            freshness=b.out / f"{statement}.freshness" if statement else None,
            nonce=NONCE if statement else None,
            unchanged=True,
        )
    build_none(b, m, claims, me, ce)


def build_none(b: Builder, m: Path, claims: ManifestClaims, me: Path, ce: ManifestClaims) -> None:
    """An HTTP 404 ("no release for this type", ``"none": true``): only a statement answering
    ``none`` for this poll is believed; the installed release's ``exp`` (its manifest, if the
    device kept it) still bounds a freeze (``secure_ota_host verify --none``)."""
    k = b.keys
    signer = FreshnessSigner(k.freshness)

    def none_statement(name: str, **changes: Any) -> Path:
        values: dict[str, Any] = {"device_type": DEVICE, "nonce": NONCE, "iat": NOW} | changes
        return b.write(f"fresh-none-{name}", signer.sign_none(**values).encode(), ".freshness")

    ok = none_statement("ok")
    empty = b.write("fresh-none-empty", b"", ".freshness")
    assert ce.exp is not None
    for name, manifest, statement, installed, now, expect in (
        ("none_ok", None, ok, 1, None, "already_installed"),
        ("none_ok_with_installed_manifest", m, ok, claims.seq, NOW, "already_installed"),
        ("none_no_statement", None, empty, 1, None, "freshness_invalid"),
        ("none_wrong_nonce", None, none_statement("nonce", nonce="ff" * 16), 1, None,
         "freshness_invalid"),
        ("none_wrong_device_type", None, none_statement("type", device_type="other"), 1, None,
         "freshness_invalid"),
        ("none_device_id", None, none_statement("device-id", device_id="dev-1"), 1, None,
         "freshness_invalid"),
        ("none_answer_newest", None, b.out / "fresh-ok.freshness", 1, None, "stale_manifest"),
        ("none_extra_member", None, b.out / "fresh-answer-none-with-seq.freshness", 1, None,
         "freshness_invalid"),
        ("none_before_exp", me, ok, ce.seq, ce.exp - 1, "already_installed"),
        ("none_at_exp", me, ok, ce.seq, ce.exp, "expired"),
        ("none_after_exp_no_clock", me, ok, ce.seq, None, "already_installed"),
        ("none_exp_of_another_release", me, ok, ce.seq + 1, ce.exp + 1, "already_installed"),
        ("none_without_freshness_after_exp", me, None, ce.seq, ce.exp + 1, "expired"),
    ):  # fmt: skip
        b.case(
            name,
            manifest,
            None,
            expect,
            installed_seq=installed,
            now=now,
            freshness=statement,
            nonce=NONCE if statement else None,
            none=True,
        )
    head = f"X-Fota-Release: 7\r\nContent-Encoding: identity\r\nX-Fota-Freshness: {ok.read_text()}"
    (b.out / "fuzz-seeds" / "10-head-404.txt").write_bytes(b"\x00" + head.encode())


EC_PREFIX = "ec-"  # files and the key directory of build_ec; its cases start with "ec_"


def ecdh_es_a256kw_wrap(
    plaintext: bytes,
    device: ec.EllipticCurvePublicKey,
    epk_json: Any = None,
    *,
    extra: dict[str, Any] | None = None,
    ephemeral: ec.EllipticCurvePrivateKey | None = None,
) -> bytes:
    """An ECDH-ES+A256KW + A256GCM JWE written from RFC 7518 with ``cryptography`` alone (no
    JOSE library): the C core's vectors do not depend on joserfc having got it right.

    ``epk_json`` replaces the header's ``epk`` (``None``: the real one; ``...``: no epk).
    """
    from cryptography.hazmat.primitives.kdf.concatkdf import ConcatKDFHash
    from cryptography.hazmat.primitives.keywrap import aes_key_wrap

    eph = ephemeral or ec.generate_private_key(ec.SECP256R1())
    numbers = eph.public_key().public_numbers()
    epk = {
        "kty": "EC",
        "crv": "P-256",
        "x": b64(numbers.x.to_bytes(32, "big")),
        "y": b64(numbers.y.to_bytes(32, "big")),
    }
    z = eph.exchange(ec.ECDH(), device)
    alg = b"ECDH-ES+A256KW"
    other = len(alg).to_bytes(4, "big") + alg + bytes(8) + (256).to_bytes(4, "big")
    kek = ConcatKDFHash(hashes.SHA256(), 32, other).derive(z)
    cek, iv = os.urandom(32), os.urandom(12)
    header: dict[str, Any] = {"alg": "ECDH-ES+A256KW", "enc": "A256GCM", "cty": "JWT"}
    if epk_json is not ...:
        header["epk"] = epk if epk_json is None else epk_json
    header |= extra or {}
    protected = b64(json.dumps(header, separators=(",", ":")).encode())
    sealed = AESGCM(cek).encrypt(iv, plaintext, protected.encode())
    parts = [protected, b64(aes_key_wrap(kek, cek)), b64(iv), b64(sealed[:-16]), b64(sealed[-16:])]
    return ".".join(parts).encode()


def build_ec(b: Builder) -> None:
    """ECDH-ES+A256KW manifests (docs/formats.md §4.2) for a device with a P-256 manifest key."""
    k = b.keys
    keys = f"keys-{EC_PREFIX}p256"
    k.write_device_dir(b.out / keys, "v1", encryption=k.encryption_ec)
    m, bin_, claims = b.release(f"{EC_PREFIX}ok", encryption=k.encryption_ec)
    b.case("ec_accept", m, bin_, None, keys=keys)
    b.case("ec_accept_manifest_only", m, None, None, keys=keys)
    # the device's key decides the algorithm, both ways
    rsa_manifest = b.release(f"{EC_PREFIX}rsa-ok")[0]
    b.case("ec_rsa_manifest_on_ec_device", rsa_manifest, None, "unsupported_algorithm", keys=keys)
    b.case("ec_manifest_on_rsa_device", m, None, "unsupported_algorithm")
    signed = sign_compact(claims.to_json(), k.signing, MANIFEST_TYP).encode()
    device = k.encryption_ec.public_key()
    point = device.public_numbers()
    x, y = b64(point.x.to_bytes(32, "big")), b64(point.y.to_bytes(32, "big"))

    def hand(name: str, expect: str | None, token: bytes) -> None:
        b.case(
            f"ec_{name}",
            b.write(EC_PREFIX + name.replace("_", "-"), token),
            None,
            expect,
            keys=keys,
        )

    hand("hand_made_ok", None, ecdh_es_a256kw_wrap(signed, device))
    hand("kid_ok", None, ecdh_es_a256kw_wrap(signed, device, extra={"kid": "fleet-ec"}))
    hand(
        "kid_number",
        "manifest_decrypt_failed",
        ecdh_es_a256kw_wrap(signed, device, extra={"kid": 7}),
    )
    hand("apu", "manifest_malformed", ecdh_es_a256kw_wrap(signed, device, extra={"apu": "QQ"}))
    hand("zip", "unsupported_algorithm", ecdh_es_a256kw_wrap(signed, device, extra={"zip": "DEF"}))
    hand(
        "other_key",
        "manifest_decrypt_failed",
        ecdh_es_a256kw_wrap(signed, k.other_encryption_ec.public_key()),
    )
    hand("epk_missing", "manifest_decrypt_failed", ecdh_es_a256kw_wrap(signed, device, ...))
    hand("epk_string", "manifest_decrypt_failed", ecdh_es_a256kw_wrap(signed, device, "P-256"))
    real = ec.generate_private_key(ec.SECP256R1())
    rn = real.public_key().public_numbers()
    rx, ry = b64(rn.x.to_bytes(32, "big")), b64(rn.y.to_bytes(32, "big"))
    good = {"kty": "EC", "crv": "P-256", "x": rx, "y": ry}
    off_curve_y = b64(((rn.y + 1) % 2**256).to_bytes(32, "big"))
    p256 = 2**256 - 2**224 + 2**192 + 2**96 - 1
    for name, epk in (
        ("epk_off_curve", good | {"y": off_curve_y}),
        ("epk_x_is_p", good | {"x": b64(p256.to_bytes(32, "big"))}),
        ("epk_extra_member", good | {"d": rx}),
        ("epk_no_y", {"kty": "EC", "crv": "P-256", "x": rx}),
        ("epk_crv_p384", good | {"crv": "P-384"}),
        ("epk_kty_oct", good | {"kty": "oct"}),
        ("epk_x_31_bytes", good | {"x": b64(rn.x.to_bytes(32, "big")[1:])}),
        ("epk_x_noncanonical", good | {"x": noncanonical(rx)}),
        ("epk_y_number", good | {"y": 1}),
    ):
        # the ephemeral key really is `real`: only the epk as written is wrong
        hand(
            name,
            "manifest_decrypt_failed",
            ecdh_es_a256kw_wrap(signed, device, epk, ephemeral=real),
        )
    hand(
        "epk_device_own_point",
        "manifest_decrypt_failed",
        ecdh_es_a256kw_wrap(signed, device, good | {"x": x, "y": y}, ephemeral=real),
    )
    token = m.read_bytes()
    hand("ek_tampered", "manifest_decrypt_failed", tamper_char(token, 1, 5))
    hand("tag_tampered", "manifest_decrypt_failed", tamper_char(token, 4, 3))
    hand("ct_tampered", "manifest_decrypt_failed", tamper_char(token, 3, 7))
    parts = token.split(b".")
    hand(
        "ek_short",
        "manifest_decrypt_failed",
        b".".join(
            [parts[0], b64(base64.urlsafe_b64decode(parts[1] + b"==")[:32]).encode(), *parts[2:]]
        ),
    )
    hand(
        "ek_rsa_sized",
        "manifest_decrypt_failed",
        b".".join([parts[0], b64(os.urandom(512)).encode(), *parts[2:]]),
    )


def build_ecies(b: Builder) -> None:
    """ECIES-P256 pre-encryption (docs/formats.md §3) for a device whose manifest key is P-256
    too, its image key derived from an eFuse HMAC key (keys-ec-ecies/: the HMAC key file)."""
    k = b.keys
    keys = f"keys-{EC_PREFIX}ecies"
    k.write_device_dir(b.out / keys, "v2-ecdsa256", encryption=k.encryption_ec, ecies=True)
    chip = {"scheme": "v2-ecdsa256", "chip": "esp32c3", "encryption": k.encryption_ec}
    m, bin_, claims = b.release(f"{EC_PREFIX}ecies-ok", pre=k.ecies, **chip)
    facts = {"keys": keys, "chip_id": chip_id_for("esp32c3")}
    b.case("ec_ecies_accept", m, bin_, None, **facts)
    # an RSA-3072 image for this device: the 384 bytes are no point || salt || zeros
    m_rsa, bin_rsa, _ = b.release(f"{EC_PREFIX}ecies-rsa-image", **chip)
    b.case("ec_ecies_rsa_image", m_rsa, bin_rsa, "image_header_invalid", **facts)
    # the ECIES image on a device whose image key is RSA-3072 (keys-ec-p256)
    b.case(
        "ec_ecies_image_on_rsa_device",
        m,
        bin_,
        "image_decrypt_failed",
        keys=f"keys-{EC_PREFIX}p256",
        chip_id=facts["chip_id"],
    )
    data = bin_.read_bytes()
    base = claims.to_dict()

    def resealed(name: str, new_bin: bytes, expect: str) -> None:
        values = dict(base, enc_sha256=hashlib.sha256(new_bin).hexdigest())
        token = seal_manifest(
            ManifestClaims.from_dict(values),
            signing_key=k.signing,
            encryption_key=k.encryption_ec.public_key(),
        )
        stem = EC_PREFIX + name.replace("_", "-")
        b.case(f"ec_{name}", b.write(stem, token), b.write(stem, new_bin, ".bin"), expect, **facts)

    p256 = 2**256 - 2**224 + 2**192 + 2**96 - 1
    x_is_p = bytearray(data)
    x_is_p[4:36] = p256.to_bytes(32, "big")
    resealed("ecies_point_x_is_p", bytes(x_is_p), "image_decrypt_failed")
    resealed("ecies_point_off_curve", tamper(data, 67), "image_decrypt_failed")
    resealed("ecies_salt_tampered", tamper(data, 80), "image_decrypt_failed")
    resealed("ecies_reserved_nonzero", tamper(data, 387), "image_header_invalid")
    resealed("ecies_tag_tampered", tamper(data, 410), "image_decrypt_failed")
    resealed("ecies_ciphertext_tampered", tamper(data, 4000), "image_decrypt_failed")
    # not resealed: the manifest's enc_sha256 catches it first
    b.case(
        "ec_ecies_bin_tampered",
        m,
        b.write(f"{EC_PREFIX}ecies-bin-tampered", tamper(data, 80), ".bin"),
        "enc_digest_mismatch",
        **facts,
    )


DEVID_PREFIX = "devid-"  # files of build_device_id (and keys-devid/); its cases start "devid_"
DEVID = "esp32c3-7cdfa1e2f3a4"  # an id as the ESP32 component derives it (target, base MAC)


def build_device_id(b: Builder) -> None:
    """A device with an id (docs/formats.md §7 step 2; the ESP32 component's polls send it as
    ``deviceId``): a statement naming exactly this id passes; naming no device (a poll stripped
    of its id on the way), another id (one byte more or less, another case), a malformed one,
    or any id for a device without one is ``freshness_invalid`` — on a 200, a 304
    (``unchanged``) and a 404 (``none``).

    ``keys-devid/`` is ``keys-v1`` with a freshness key of its own, so that these statements
    can be added to the committed vectors (``--only-device-id``) for the committed
    ``ok-v1.manifest``."""
    keys = f"keys-{DEVID_PREFIX.rstrip('-')}"
    directory = b.out / keys
    directory.mkdir()
    for path in (b.out / "keys-v1").iterdir():
        if path.name != "freshness_pub.pem":
            shutil.copyfile(path, directory / path.name)
    freshness = generate_private_key("ecdsa256")
    (directory / "freshness_pub.pem").write_bytes(public_pem(freshness))
    signer = FreshnessSigner(freshness)
    m = b.out / "ok-v1.manifest"
    digest = hashlib.sha256(m.read_bytes()).hexdigest()
    opened = reference_verdict(
        directory, m, None, device_type=DEVICE, installed_seq=0, secure_version=0
    )
    seq = opened["claims"]["seq"]
    header = {"alg": "ES256", "kid": key_id(freshness), "typ": "fota-freshness+jwt"}

    def newest(name: str, device_id: str | None, **changes: Any) -> Path:
        values: dict[str, Any] = {"device_type": DEVICE, "seq": seq, "manifest_sha256": digest,
                                  "nonce": NONCE, "iat": NOW, "device_id": device_id}  # fmt: skip
        token = signer.sign(**(values | changes))
        return b.write(f"{DEVID_PREFIX}{name}", token.encode(), ".freshness")

    def none(name: str, device_id: str | None) -> Path:
        token = signer.sign_none(device_type=DEVICE, nonce=NONCE, iat=NOW, device_id=device_id)
        return b.write(f"{DEVID_PREFIX}{name}", token.encode(), ".freshness")

    def hand(name: str, device_id: Any) -> Path:
        payload = {"answer": "newest", "device_type": DEVICE, "seq": seq,
                   "manifest_sha256": digest, "nonce": NONCE, "iat": NOW,
                   "device_id": device_id}  # fmt: skip
        data = json.dumps(payload, separators=(",", ":")).encode()
        token = raw_jws(header, data, freshness)
        return b.write(f"{DEVID_PREFIX}{name}", token.encode(), ".freshness")

    own, bare = newest("newest-own", DEVID), newest("newest-bare", None)
    longest = "e" + "0123456789abcdef" * 3 + "0123456789abcde"
    assert len(longest) == 64
    # HTTP 200: the device judges the manifest received
    bad = "freshness_invalid"
    for name, statement, device_id, expect in (
        ("newest_own_id", own, DEVID, None),
        ("newest_no_id", bare, DEVID, bad),
        ("newest_other_id", newest("newest-other", "esp32c3-000000000000"), DEVID, bad),
        ("newest_id_one_more_byte", newest("newest-longer", DEVID + "0"), DEVID, bad),
        ("newest_id_one_less_byte", newest("newest-shorter", DEVID[:-1]), DEVID, bad),
        ("newest_id_upper_case", newest("newest-upper", DEVID.upper()), DEVID, "freshness_invalid"),
        ("newest_id_malformed", hand("newest-malformed", "esp32c3/7cdfa1e2f3a4"), DEVID, bad),
        ("newest_id_dot_dot", hand("newest-dotdot", "esp32c3..7cdfa1e2f3a4"), DEVID, bad),
        ("newest_id_65_chars", hand("newest-65", longest + "f"), longest, "freshness_invalid"),
        ("newest_id_not_a_string", hand("newest-number", 7), DEVID, "freshness_invalid"),
        ("newest_id_null", hand("newest-null", None), DEVID, "freshness_invalid"),
        ("newest_id_64_chars", newest("newest-64", longest), longest, None),
        ("newest_id_hand_made_ok", hand("newest-hand", DEVID), DEVID, None),
        ("device_without_id", own, None, "freshness_invalid"),
        ("device_without_id_bare", bare, None, None),
        ("newest_own_id_stale_digest", newest("newest-stale", DEVID, manifest_sha256="ab" * 32),
         DEVID, "stale_manifest"),
        ("newest_own_id_wrong_nonce", newest("newest-nonce", DEVID, nonce="ff" * 16), DEVID,
         "freshness_invalid"),
        ("newest_own_id_wrong_type", newest("newest-type", DEVID, device_type="other"), DEVID,
         "freshness_invalid"),
    ):  # fmt: skip
        b.case(f"devid_{name}", m, None, expect, keys=keys, freshness=statement, nonce=NONCE,
               device_id=device_id)  # fmt: skip
    # HTTP 304: the device judged this manifest (its installed release's) already_installed
    for name, statement, device_id, expect in (
        ("unchanged_own_id", own, DEVID, "already_installed"),
        ("unchanged_no_id", bare, DEVID, "freshness_invalid"),
        ("unchanged_other_id", b.out / f"{DEVID_PREFIX}newest-other.freshness", DEVID,
         "freshness_invalid"),
        ("unchanged_device_without_id", own, None, "freshness_invalid"),
    ):  # fmt: skip
        b.case(f"devid_{name}", m, None, expect, keys=keys, installed_seq=seq,
               freshness=statement, nonce=NONCE, unchanged=True, device_id=device_id)  # fmt: skip
    # HTTP 404: no release for this type
    for name, statement, device_id, expect in (
        ("none_own_id", none("none-own", DEVID), DEVID, "already_installed"),
        ("none_no_id", none("none-bare", None), DEVID, "freshness_invalid"),
        ("none_other_id", none("none-other", DEVID + "0"), DEVID, "freshness_invalid"),
        ("none_device_without_id", b.out / f"{DEVID_PREFIX}none-own.freshness", None,
         "freshness_invalid"),
        ("none_own_id_answer_newest", own, DEVID, "stale_manifest"),
    ):  # fmt: skip
        b.case(f"devid_{name}", None, None, expect, keys=keys, installed_seq=seq,
               freshness=statement, nonce=NONCE, none=True, device_id=device_id)  # fmt: skip


def _clear(out: Path, keep: Any) -> None:
    for path in out.iterdir():
        if path.name in ("README.md", "generate.py", "reference.py", "__init__.py", "__pycache__"):
            continue
        if keep(path):
            continue
        shutil.rmtree(path) if path.is_dir() else path.unlink()


def main(out: Path = HERE, *, only: str | None = None) -> None:
    """Regenerate every vector, or only those of :func:`build_ec` and :func:`build_ecies`
    (``only="ec"``: new throwaway keys in ``keys-ec-*/``) or of :func:`build_device_id`
    (``only="device-id"``: a new freshness key in ``keys-devid/``), appended to the committed
    cases."""
    previous: list[dict[str, Any]] = []
    prefixes = {
        "ec": ("ec_", (EC_PREFIX, "keys-ec-")),
        "device-id": ("devid_", (DEVID_PREFIX, "keys-devid")),
    }
    if only is not None:
        case_prefix, file_prefixes = prefixes[only]
        committed = json.loads((out / "cases.json").read_text())["cases"]
        previous = [case for case in committed if not case["name"].startswith(case_prefix)]
        _clear(out, lambda path: not path.name.startswith(file_prefixes))
    else:
        _clear(out, lambda _path: False)
    keys = Keys()
    if only is None:
        for scheme in ("v1", "v2-rsa3072", "v2-ecdsa256", "v2-ecdsa384"):
            keys.write_device_dir(out / f"keys-{scheme}", scheme)
    builder = Builder(out, keys)
    try:
        if only is None:
            build_all(builder)
        if only in (None, "ec"):
            build_ec(builder)
            build_ecies(builder)
        if only in (None, "device-id"):
            build_device_id(builder)
    finally:
        shutil.rmtree(builder.work)
    all_cases = previous + builder.cases
    cases = {"generated_by": "tests/vectors/generate.py", "now": NOW, "cases": all_cases}
    (out / "cases.json").write_text(json.dumps(cases, indent=1) + "\n")
    print(f"{len(all_cases)} cases written to {out} ({len(builder.cases)} built now)")


if __name__ == "__main__":
    flags = {"--only-ec": "ec", "--only-device-id": "device-id"}
    main(only=next((flags[arg] for arg in sys.argv[1:] if arg in flags), None))
