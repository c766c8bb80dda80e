"""Differential test: the ESP32 C core (``secure_ota_host``) against the Python reference.

Random releases (random images, sequence numbers, expiry, device facts), then random changes:
characters and bytes of the manifest, truncation, hand-made claims sealed with the real keys
(bounds, types, floats, NaN, missing and extra members), random JOSE headers on both layers,
non-canonical base64url in any part, tampered or resealed ``.bin`` files, freshness statements
(naming no device, this device or another, for a device with or without an id), and key
rotation: a random history of key sets (each statement signed by a key of the previous
set, old keys kept or revoked at random), devices at random versions, and manifests carrying
random chains (complete, cut, shuffled, repeated, with forged, gapped, mutated or garbage
statements, or a malformed ``rot``), and HTTP 304 answers for the installed release (the C side
judges the SHA-256 and ``exp`` it kept, the reference its cached manifest: ``--unchanged``, at
random times around ``exp``, with random freshness statements). Both implementations must agree
on ``accept``, ``reason``, ``claims`` and the key set reached for every input. ``DIFF_CASES``
sets the number of releases (default 60, each judged several ways); ``DIFF_SEED`` the random
seed.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import random
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding, utils
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from joserfc import jwe
from joserfc.jwk import RSAKey

from secure_fota.author.release import ReleaseRequest, build_release
from secure_fota.crypto.encrypted_image import encrypt_image
from secure_fota.crypto.freshness import FreshnessSigner
from secure_fota.crypto.key_rotation import make_rotation
from secure_fota.crypto.keys import (
    PrivateKey,
    Role,
    generate_private_key,
    key_id,
    load_private_key,
    public_pem,
)
from secure_fota.crypto.manifest import sign_compact
from secure_fota.crypto.secure_boot import sign_image
from secure_fota.formats.app_image import parse_app_image
from secure_fota.formats.app_image_builder import ImageSpec, build_app_image
from secure_fota.formats.manifest import MANIFEST_TYP
from secure_fota.formats.secure_boot import Scheme
from secure_fota.keys.directory import load_author_keys
from secure_fota.keys.generate import generate_key_set
from tests.vectors.reference import reference_verdict

REPO = Path(__file__).resolve().parents[2]
HOST_TOOL = Path(os.environ.get("SECURE_OTA_HOST", REPO / "build/esp32-host/secure_ota_host"))
CASES = int(os.environ.get("DIFF_CASES", "60"))
SEED = int(os.environ.get("DIFF_SEED", "20260101"))
NOW = 1_760_000_000
B64 = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
ODD_VALUES: list[Any] = [
    0,
    -1,
    1,
    5,
    7.0,
    7.5,
    -0.0,
    2**31 - 1,
    2**31,
    2**32 - 1,
    2**32,
    2**53 - 1,
    2**53,
    1e300,
    True,
    False,
    None,
    "x",
    "",
    "a" * 31,
    "a" * 32,
    "\u00e9" * 15,
    "\u00e9" * 16,
    "\x7f",
    "\u0085",
    "1.0\t",
    [],
    {},
    [1, {"a": None}],
    "AB" * 32,
    "ab" * 32,
    "a..b",
    "-a",
    "a" * 64,
    "a" * 65,
    "v1",
    "v2-rsa3072",
    "v2-ecdsa384",
    "v3",
]

JWE_HEADERS = [
    '{"alg":"RSA-OAEP-256","enc":"A256GCM","cty":"JWT"}',
    '{ "cty" : "JWT", "enc":"A256GCM", "alg":"RSA-OAEP-256" }',
    '{"alg":"RSA-OAEP-256","enc":"A256GCM","cty":"JWT","kid":"device-fleet"}',
    '{"alg":"RSA-OAEP-256","enc":"A256GCM","cty":"JWT","kid":1}',
    '{"alg":"RSA-OAEP-256","enc":"A256GCM","cty":"JWT","x-extra":true}',
    '{"alg":"RSA-OAEP-256","enc":"A256GCM","cty":"JWT","jku":"https://x"}',
    '{"alg":"RSA-OAEP-256","enc":"A256GCM","cty":"JWT","jku":"ftp://x"}',
    '{"alg":"RSA-OAEP-256","enc":"A256GCM","cty":"JWT","x5c":["AA"]}',
    '{"alg":"RSA-OAEP-256","enc":"A256GCM","cty":"JWT","x5c":"AA"}',
    '{"alg":"RSA-OAEP-256","enc":"A256GCM","cty":"JWT","b64":true}',
    '{"alg":"RSA-OAEP-256","enc":"A256GCM","cty":"JWT","zip":"DEF"}',
    '{"alg":"RSA-OAEP-256","enc":"A256GCM","cty":"JWT","crit":["exp"]}',
    '{"alg":"RSA-OAEP-256","enc":"A256GCM","cty":"jwt"}',
    '{"alg":"RSA-OAEP-256","enc":"A256GCM"}',
    '{"alg":"RSA-OAEP","enc":"A256GCM","cty":"JWT"}',
    '{"alg":"RSA-OAEP-256","enc":"A128GCM","cty":"JWT"}',
    '{"\\u0061lg":"RSA-OAEP-256","enc":"A256GCM","cty":"JWT"}',
    '{"alg":"RSA-OAEP-256","alg":"RSA-OAEP-256","enc":"A256GCM","cty":"JWT"}',
    '{"alg":"RSA-OAEP-256","enc":"A256GCM","cty":"JWT","n":[[[[1]]]]}',
    '["alg"]',
]
JWS_HEADERS = [
    '{"alg":"%(alg)s","kid":"%(kid)s","typ":"fota-manifest+jwt"}',
    '{"typ":"fota-manifest+jwt","kid":"%(kid)s","alg":"%(alg)s"}',
    '{"alg":"%(alg)s","kid":"%(kid)s","typ":"fota-manifest+jwt","cty":"json"}',
    '{"alg":"%(alg)s","kid":"%(kid)s","typ":"fota-manifest+jwt","x":1}',
    '{"alg":"%(alg)s","kid":"%(kid)s","typ":"fota-manifest+jwt","b64":true}',
    '{"alg":"%(alg)s","kid":"%(kid)s","typ":"fota-manifest+jwt","b64":false}',
    '{"alg":"%(alg)s","kid":"%(kid)s","typ":"fota-manifest+jwt","crit":["b64"]}',
    '{"alg":"%(alg)s","kid":"%(kid)s","typ":"fota-manifest+jwt","jwk":{}}',
    '{"alg":"%(alg)s","kid":"%(kid)s","typ":"JWT"}',
    '{"alg":"%(alg)s","kid":"%(kid)s"}',
    '{"alg":"%(alg)s","kid":"0000","typ":"fota-manifest+jwt"}',
    '{"alg":"%(alg)s","kid":7,"typ":"fota-manifest+jwt"}',
    '{"alg":"RS256","kid":"%(kid)s","typ":"fota-manifest+jwt"}',
    '{"alg":"none","kid":"%(kid)s","typ":"fota-manifest+jwt"}',
    '{"alg":"%(other)s","kid":"%(kid)s","typ":"fota-manifest+jwt"}',
    '{"alg":"%(alg)s","kid":"%(kid)s","typ":"fota-manifest+jwt","alg":"%(alg)s"}',
    '{"alg":"%(alg)s","kid":"%(kid)s","typ":"fota-manifest+jwt","rot":[]}',
    '{"alg":"%(alg)s","kid":"%(kid)s","typ":"fota-manifest+jwt","rot":"x"}',
    '{"alg":"%(alg)s","kid":"%(kid)s","typ":"fota-manifest+jwt","rot":null}',
    '{"alg":"%(alg)s","kid":"%(kid)s","typ":"fota-manifest+jwt","rot":["a.b.c"]}',
    '{"alg":"%(alg)s","kid":"%(kid)s","typ":"fota-manifest+jwt","rot":["a","b",1]}',
    '{"alg":"RS256","kid":"%(kid)s","typ":"fota-manifest+jwt","rot":7}',
    '{"alg":"%(alg)s","kid":"%(kid)s","typ":"JWT","rot":["x"],"y":1}',
    '{"alg":"%(alg)s","kid":"%(kid)s","typ":"fota-manifest+jwt","x":1,"rot":["x"]}',
]
JWE_HEADERS += [  # around the 1024-character limit of the encoded header (768 bytes)
    '{"alg":"RSA-OAEP-256","enc":"A256GCM","cty":"JWT","kid":"%s"}' % ("k" * (size - 60))
    for size in (767, 768, 769, 770)
]


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def noncanonical(segment: str) -> str:
    """The same bytes' segment with non-zero unused bits in its last character."""
    return segment[:-1] + B64[B64.index(segment[-1]) | 1]


def bend(token: bytes, rng: random.Random) -> bytes | None:
    """A compact token with one random part made non-canonical; None if no part can be."""
    parts = token.decode("ascii").split(".")
    candidates = [i for i, part in enumerate(parts) if len(part) % 4 in (2, 3)]
    if not candidates:
        return None
    index = rng.choice(candidates)
    parts[index] = noncanonical(parts[index])
    return ".".join(parts).encode()


def raw_jws(header: str, payload: bytes, key: Any, bend_part: int = -1) -> bytes:
    """A JWS with any header; ``bend_part`` 0..2 is made non-canonical (and signed so)."""
    parts = [b64(header.encode()), b64(payload)]
    for index in (0, 1):
        if bend_part == index and len(parts[index]) % 4:
            parts[index] = noncanonical(parts[index])
    signing_input = ".".join(parts).encode()
    if isinstance(key, ec.EllipticCurvePrivateKey):
        r, s = utils.decode_dss_signature(key.sign(signing_input, ec.ECDSA(hashes.SHA256())))
        signature = r.to_bytes(32, "big") + s.to_bytes(32, "big")
    else:
        pss = padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=32)
        signature = key.sign(signing_input, pss, hashes.SHA256())
    parts.append(b64(signature))
    if bend_part == 2 and len(parts[2]) % 4:
        parts[2] = noncanonical(parts[2])
    return ".".join(parts).encode()


def raw_jwe(header: str, plaintext: bytes, public: Any) -> bytes:
    cek, iv = os.urandom(32), os.urandom(12)
    oaep = padding.OAEP(mgf=padding.MGF1(hashes.SHA256()), algorithm=hashes.SHA256(), label=None)
    protected = b64(header.encode())
    sealed = AESGCM(cek).encrypt(iv, plaintext, protected.encode())
    parts = [protected, b64(public.encrypt(cek, oaep)), b64(iv), b64(sealed[:-16]),
             b64(sealed[-16:])]  # fmt: skip
    return ".".join(parts).encode()


pytestmark = pytest.mark.skipif(
    not HOST_TOOL.exists(),
    reason=f"{HOST_TOOL} is not built (run `make host-test`; needs cmake, libmbedtls-dev, "
    "libcjson-dev)",
)


def run_c(keys: Path, manifest: Path, binary: Path | None, facts: dict[str, Any]) -> dict:
    args = [
        str(HOST_TOOL), "verify", "--device-keys", str(keys),
        "--installed-seq", str(facts["installed_seq"]),
        "--secure-version", str(facts["secure_version"]),
        "--device-type", facts["device_type"],
    ]  # fmt: skip
    if facts.get("chip_id") is not None:
        args += ["--chip-id", str(facts["chip_id"])]
    if facts.get("now") is not None:
        args += ["--now", str(facts["now"])]
    if facts.get("freshness") is not None:
        args += ["--freshness", str(facts["freshness"]), "--nonce", facts["nonce"]]
    if facts.get("device_id") is not None:
        args += ["--device-id", facts["device_id"]]
    if facts.get("keyset_version") is not None:
        args += ["--keyset-version", str(facts["keyset_version"])]
    if facts.get("unchanged"):
        args.append("--unchanged")
    args.append(str(manifest))
    if binary is not None:
        args.append(str(binary))
    done = subprocess.run(args, capture_output=True, timeout=60, check=False)
    assert done.returncode in (0, 3), done.stderr.decode()
    lines = done.stdout.decode().splitlines()
    assert len(lines) == 1, done.stdout
    verdict = json.loads(lines[0])
    assert (done.returncode == 0) == verdict["accept"]
    return verdict


def run_python(keys: Path, manifest: Path, binary: Path | None, facts: dict[str, Any]) -> dict:
    # facts["unchanged"] (an HTTP 304): the reference device judges its cached manifest anew
    return reference_verdict(
        keys, manifest, binary,
        device_type=facts["device_type"], installed_seq=facts["installed_seq"],
        secure_version=facts["secure_version"], chip_id=facts.get("chip_id"),
        now=facts.get("now"), freshness=facts.get("freshness"), nonce=facts.get("nonce"),
        keyset_version=facts.get("keyset_version"), device_id=facts.get("device_id"),
    )  # fmt: skip


class Session:
    def __init__(self, root: Path, rng: random.Random) -> None:
        self.root = root
        self.rng = rng
        self.keys = root / "keys"
        self.keys.mkdir()
        generate_key_set(self.keys, secure_boot="v1")
        self.author = load_author_keys(self.keys, secure_boot_version="v1")
        self.freshness_key = load_private_key(
            Role.FRESHNESS, (self.keys / "freshness_key.pem").read_bytes()
        )
        self.ec_signing = generate_private_key("ecdsa256")
        (self.keys / "manifest_signing_pub.ec.pem").write_bytes(public_pem(self.ec_signing))
        self.rogue_secure_boot = generate_private_key("ecdsa256")
        self.count = 0
        self.reasons: dict[str | None, int] = {}
        #: accepted or opened rotation manifests by how many versions the walk advanced
        self.reached: dict[int, int] = {}
        self.chain = Chain(self, rng, top=5)

    def path(self, suffix: str) -> Path:
        self.count += 1
        return self.root / f"f{self.count}{suffix}"

    def compare(
        self, manifest: Path, binary: Path | None, facts: dict[str, Any], keys: Path | None = None
    ) -> dict[str, Any]:
        ours = run_c(keys or self.keys, manifest, binary, facts)
        theirs = run_python(keys or self.keys, manifest, binary, facts)
        assert ours == theirs, (manifest, binary, facts, keys)
        self.reasons[theirs["reason"]] = self.reasons.get(theirs["reason"], 0) + 1
        return theirs

    def seal(self, payload: bytes) -> bytes:
        token = sign_compact(payload, self.author.manifest_signing, MANIFEST_TYP)
        public = self.author.manifest_encryption
        header = {"alg": "RSA-OAEP-256", "enc": "A256GCM", "cty": "JWT"}
        return jwe.encrypt_compact(
            header, token.encode(), RSAKey(public, public), algorithms=["RSA-OAEP-256", "A256GCM"]
        ).encode()

    def release(self) -> tuple[Path, Path, dict[str, Any]]:
        rng = self.rng
        firmware = self.path(".app")
        firmware.write_bytes(
            build_app_image(
                ImageSpec(
                    size=rng.choice([4096, 6000, 8192, 12000]),
                    version=f"{rng.randrange(10)}.{rng.randrange(100)}",
                    secure_version=rng.randrange(4),
                    seed=rng.randrange(1000),
                )
            )
        )
        out = self.path("-out")
        out.mkdir()
        files = build_release(
            ReleaseRequest(
                firmware=firmware, seq=rng.randrange(1, 2000), device_type="dev-a",
                fw_name="fw", out_dir=out, expires_in=rng.choice([None, 60, 86400]),
            ),
            self.author, now=NOW,
        )  # fmt: skip
        return files.manifest, files.binary, files.claims.to_dict()

    def facts(self, claims: dict[str, Any]) -> dict[str, Any]:
        rng = self.rng
        seq = claims["seq"]
        facts: dict[str, Any] = {
            "device_type": rng.choice(["dev-a"] * 6 + ["dev-b"]),
            "installed_seq": rng.choice([0, seq - 1, seq, seq + 1, rng.randrange(-5, 3000)]),
            "secure_version": rng.choice([0, 0, claims["secure_version"], 4]),
            "chip_id": rng.choice([None, None, 0, 5]),
            "now": rng.choice([None, NOW, claims.get("exp", NOW) - 1, claims.get("exp", NOW)]),
        }
        return facts


def jose_variant(session: Session, rng: random.Random, claims: dict[str, Any]) -> bytes:
    """A manifest with random (valid or not) JOSE headers on both layers, correctly sealed,
    sometimes with a non-canonical part in the inner JWS or the JWE."""
    use_ec = rng.random() < 0.4
    key = session.ec_signing if use_ec else session.author.manifest_signing
    alg, other = ("ES256", "PS256") if use_ec else ("PS256", "ES256")
    header = rng.choice(JWS_HEADERS) % {"alg": alg, "kid": key_id(key), "other": other}
    inner_bend = rng.choice([-1, -1, -1, 0, 1, 2])
    signed = raw_jws(header, json.dumps(claims).encode(), key, inner_bend)
    token = raw_jwe(rng.choice(JWE_HEADERS), signed, session.author.manifest_encryption)
    if rng.random() < 0.15:
        token = bend(token, rng) or token
    return token


class Chain:
    """A random history of manifest-signing key sets 1..top and the statements between them.

    Set 1 is the session's (the author's RSA key and the EC key); each later set has a new key
    plus a random subset of the previous set's keys (the rest revoked), and its statement is
    signed by a random key of the previous set. ``dirs[v]`` is a device key directory at
    version ``v``.
    """

    def __init__(self, session: Session, rng: random.Random, top: int) -> None:
        self.top = top
        self.sets: dict[int, list[PrivateKey]] = {
            1: [session.author.manifest_signing, session.ec_signing]
        }
        self.statements: dict[int, str] = {}
        self.dirs: dict[int, Path] = {1: session.keys}
        self.attacker = generate_private_key("ecdsa256")
        for version in range(2, top + 1):
            previous = self.sets[version - 1]
            fresh = generate_private_key("rsa3072" if version == 3 else "ecdsa256")
            kept = [key for key in previous if rng.random() < 0.4]
            keys = [fresh, *kept][:4]
            rng.shuffle(keys)
            self.sets[version] = keys
            signer = rng.choice(previous)
            self.statements[version] = make_rotation(
                signer, version, [key.public_key() for key in keys]
            )
            folder = session.root / f"device-v{version}"
            shutil.copytree(
                session.keys, folder, ignore=shutil.ignore_patterns("manifest_signing_pub*")
            )
            for index, key in enumerate(keys):
                (folder / f"manifest_signing_pub.k{index}.pem").write_bytes(public_pem(key))
            (folder / "keyset_version").write_text(f"{version}\n")
            self.dirs[version] = folder

    def all_keys(self) -> list[PrivateKey]:
        return [key for keys in self.sets.values() for key in keys]

    def statement_list(self, rng: random.Random) -> Any:
        """A random `rot`: mostly a list of statements, sometimes an invalid one."""
        chain = [self.statements[v] for v in range(2, self.top + 1)]
        kind = rng.randrange(12)
        if kind == 0:
            rot: Any = chain
        elif kind == 1:
            rot = chain[: rng.randrange(len(chain) + 1)]
        elif kind == 2:
            rot = chain[rng.randrange(len(chain)) :]
        elif kind == 3:
            rot = rng.sample(chain, len(chain))
        elif kind == 4:  # a forged statement, signed by a key no set holds
            forged = make_rotation(
                self.attacker, rng.randint(2, self.top + 1), [self.attacker.public_key()]
            )
            rot = list(chain)
            rot.insert(rng.randrange(len(rot) + 1), forged)
        elif kind == 5:  # a version gap, signed by a key of a real set
            version = rng.randint(1, self.top)
            signer = rng.choice(self.sets[version])
            gap = make_rotation(signer, version + 2, [self.attacker.public_key()])
            rot = list(chain)
            rot.insert(rng.randrange(len(rot) + 1), gap)
        elif kind == 6:  # one statement changed
            rot = list(chain)
            index = rng.randrange(len(rot))
            changed = bend(rot[index].encode(), rng) if rng.random() < 0.5 else None
            rot[index] = (changed or mutate_token(rng, rot[index].encode())).decode("latin-1")
        elif kind == 7:  # repeated statements
            rot = [rng.choice(chain) for _ in range(rng.randint(1, 8))]
        elif kind == 8:
            rot = list(chain)
            rot.insert(rng.randrange(len(rot) + 1), rng.choice(["", "x", "a.b.c", "..", "é.é.é"]))
        elif kind == 9:  # no rot at all
            rot = None
        else:
            rot = rng.choice([[], "x", 5, None, {"a": 1}, chain + chain[:1] * (9 - len(chain))])
            rot = [rot] if rng.random() < 0.2 else rot
        return rot[:8] if isinstance(rot, list) and kind not in {10, 11} else rot


def rotation_case(session: Session, rng: random.Random, claims: dict[str, Any]) -> None:
    """A manifest carrying a random chain, signed by a random key of any set (or the attacker),
    judged by a device at a random version."""
    chain = session.chain
    rot = chain.statement_list(rng)
    signer = rng.choice([*chain.all_keys(), chain.attacker])
    alg = "ES256" if isinstance(signer, ec.EllipticCurvePrivateKey) else "PS256"
    header: dict[str, Any] = {"alg": alg, "kid": key_id(signer), "typ": "fota-manifest+jwt"}
    if rot is not None:
        header["rot"] = rot
    if rng.random() < 0.05:
        header["x"] = 1
    signed = raw_jws(json.dumps(header), json.dumps(claims).encode(), signer)
    manifest = session.path(".manifest")
    manifest.write_bytes(raw_jwe(JWE_HEADERS[0], signed, session.author.manifest_encryption))
    device = rng.randint(1, chain.top)
    facts: dict[str, Any] = {"device_type": "dev-a", "installed_seq": 0, "secure_version": 0}
    if rng.random() < 0.15:  # the version given explicitly (even one that does not fit the keys)
        facts["keyset_version"] = rng.randint(1, chain.top + 1)
    verdict = session.compare(manifest, None, facts, chain.dirs[device])
    if verdict["keyset"] is not None:
        session.reached[verdict["keyset"]["version"] - device] = (
            session.reached.get(verdict["keyset"]["version"] - device, 0) + 1
        )


def mutate_token(rng: random.Random, token: bytes) -> bytes:
    kind = rng.randrange(6)
    data = bytearray(token)
    pos = rng.randrange(len(data))
    if kind == 0:
        data[pos] = ord(rng.choice(B64))
    elif kind == 1:
        return bytes(data[:pos])
    elif kind == 2:
        data.insert(pos, ord("."))
    elif kind == 3:
        data[pos] = rng.randrange(256)
    elif kind == 4:
        del data[pos]
    else:
        data += rng.choice([b"=", b"\n", b"A", b".A"])
    return bytes(data)


def mutate_claims(rng: random.Random, claims: dict[str, Any]) -> dict[str, Any]:
    values = dict(claims)
    for _ in range(rng.randrange(1, 3)):
        key = rng.choice([*values.keys(), "exp", "extra"])
        if rng.random() < 0.2:
            values.pop(key, None)
        else:
            values[key] = rng.choice(ODD_VALUES)
    return values


def test_c_core_agrees_with_python(tmp_path: Path) -> None:  # noqa: PLR0915 -- one sequence
    rng = random.Random(SEED)  # noqa: S311 -- reproducible test inputs, not secrets
    session = Session(tmp_path, rng)
    unchanged_reasons: set[str | None] = set()
    for _ in range(CASES):
        manifest, binary, claims = session.release()
        facts = session.facts(claims)
        session.compare(manifest, binary if rng.random() < 0.5 else None, facts)
        token = manifest.read_bytes()
        # an HTTP 304 for it once installed: the C device kept its SHA-256 and exp only
        exp = claims.get("exp", NOW)
        installed = {"device_type": "dev-a", "installed_seq": claims["seq"], "unchanged": True}
        for now in (
            None,
            rng.choice([NOW, exp - 1]),
            rng.choice([exp, exp + rng.randrange(10**6)]),
        ):
            verdict = session.compare(
                manifest, None, dict(installed, secure_version=facts["secure_version"], now=now)
            )
            unchanged_reasons.add(verdict["reason"])
        # the manifest, changed
        changed = session.path(".manifest")
        changed.write_bytes(mutate_token(rng, token))
        session.compare(changed, None, facts)
        # random claims, sealed with the real keys
        sealed = session.path(".manifest")
        values = mutate_claims(rng, claims)
        sealed.write_bytes(session.seal(json.dumps(values).encode()))
        session.compare(sealed, None, dict(facts, installed_seq=0, secure_version=0))
        # random JOSE headers on both layers
        jose = session.path(".manifest")
        jose.write_bytes(jose_variant(session, rng, claims))
        session.compare(jose, None, dict(facts, installed_seq=0, secure_version=0))
        # the manifest with one part's base64url made non-canonical
        bent = bend(token, rng)
        if bent is not None:
            noncanonical_file = session.path(".manifest")
            noncanonical_file.write_bytes(bent)
            session.compare(noncanonical_file, None, facts)
        # key rotation: random chains, signers and device versions
        for _ in range(3):
            rotation_case(session, rng, claims)
        # the binary, changed (and sometimes resealed so that the deeper checks run)
        data = bytearray(binary.read_bytes())
        where = rng.randrange(len(data))
        data[where] ^= 1 << rng.randrange(8)
        tampered = session.path(".bin")
        tampered.write_bytes(bytes(data) if rng.random() < 0.8 else bytes(data[:where]))
        ok_facts = {"device_type": "dev-a", "installed_seq": 0, "secure_version": 0}
        session.compare(manifest, tampered, ok_facts)
        if rng.random() < 0.5:
            resealed = session.path(".manifest")
            enc = bytes(data)
            resealed.write_bytes(
                session.seal(
                    json.dumps(dict(claims, enc_sha256=hashlib.sha256(enc).hexdigest())).encode()
                )
            )
            session.compare(resealed, tampered, ok_facts)
        # an image whose claims or signature do not match, resealed so that §8 steps 5-7 run
        if rng.random() < 0.4:
            image = build_app_image(
                ImageSpec(
                    size=4096,
                    seed=rng.randrange(1000),
                    version=claims["version"],
                    secure_version=claims["secure_version"],
                )
            )
            signer = session.rogue_secure_boot if rng.random() < 0.4 else session.author.secure_boot
            signed_image = sign_image(image, signer, Scheme.V1)
            enc = encrypt_image(signed_image, session.author.pre_encryption)
            values = dict(
                claims,
                image_size=len(signed_image),
                enc_size=len(enc),
                enc_sha256=hashlib.sha256(enc).hexdigest(),
                image_sha256=hashlib.sha256(signed_image).hexdigest(),
                app_elf_sha256=parse_app_image(image).app_desc.app_elf_sha256.hex(),
            )
            wrong = rng.choice(["version", "project", "image_sha256", "app_elf_sha256", None, None])
            if wrong:
                values[wrong] = "ab" * 32 if wrong.endswith("sha256") else "other"
            odd_bin = session.path(".bin")
            odd_bin.write_bytes(enc)
            odd_manifest = session.path(".manifest")
            odd_manifest.write_bytes(session.seal(json.dumps(values).encode()))
            session.compare(odd_manifest, odd_bin, ok_facts)
        # a freshness statement, sometimes wrong
        nonce = f"{rng.getrandbits(128):032x}"
        statement: dict[str, Any] = {
            "device_type": rng.choice(["dev-a", "dev-a", "dev-b"]),
            "seq": claims["seq"] + rng.choice([0, 0, 0, 1]),
            "manifest_sha256": hashlib.sha256(token).hexdigest()
            if rng.random() < 0.8
            else "ab" * 32,
            "nonce": nonce if rng.random() < 0.8 else "cd" * 16,
            "iat": NOW,
            # the server names the polling device when it knows it (docs/formats.md §7)
            "device_id": rng.choice([None, None, "dev-1", "dev-1", "dev-10", "dev-", "Dev-1"]),
        }
        device_id = rng.choice([None, "dev-1", "dev-1"])
        fresh = session.path(".freshness")
        text = FreshnessSigner(session.freshness_key).sign(**statement).encode()
        choice = rng.random()
        if choice < 0.1:
            text = bend(text, rng) or text
        elif choice < 0.25:
            text = mutate_token(rng, text)
        fresh.write_bytes(text)
        poll = {"freshness": fresh, "nonce": nonce, "device_id": device_id}
        session.compare(manifest, None, ok_facts | poll)
        # ... and with a 304 for the installed release: checked against the kept digest
        unchanged = dict(ok_facts, installed_seq=claims["seq"], unchanged=True)
        session.compare(manifest, None, unchanged | poll)
    print(
        f"differential: {session.count} files, verdicts {sorted(session.reasons.items(), key=str)}"
        f", rotation manifests opened by versions walked {sorted(session.reached.items())}"
    )
    assert len(session.reasons) >= 15, session.reasons
    assert unchanged_reasons == {"already_installed", "expired"}, unchanged_reasons
    assert len(session.reached) >= 3, session.reached  # walks of 0, 1, 2, ... versions


# -- ECDH-ES+A256KW (a device with a P-256 manifest key) ---------------------------------------

EC_JWE_EXTRA: list[Any] = [
    {},
    {},
    {"kid": "fleet"},
    {"kid": 1},
    {"apu": "QQ"},
    {"apv": ""},
    {"zip": "DEF"},
    {"x": 1},
    {"alg": "RSA-OAEP-256"},
    {"alg": "ECDH-ES"},
    {"alg": "ECDH-ES+A128KW"},
    {"enc": "A128GCM"},
    {"cty": "jwt"},
]


def odd_epk(rng: random.Random, epk: dict[str, Any]) -> Any:
    """The true epk, or a changed one (members, curve, coordinates, types)."""
    choice = rng.randrange(12)
    p256 = 2**256 - 2**224 + 2**192 + 2**96 - 1
    name = rng.choice(["x", "y"])
    value = int.from_bytes(base64.urlsafe_b64decode(epk[name] + "=="), "big")
    if choice < 4:
        return epk
    changes: list[Any] = [
        {name: b64(((value + rng.randrange(1, 5)) % 2**256).to_bytes(32, "big"))},
        {name: b64(p256.to_bytes(32, "big"))},
        {name: b64(value.to_bytes(32, "big")[1:])},
        {name: noncanonical(epk[name])},
        {"crv": rng.choice(["P-384", "secp256r1", ""])},
        {"kty": rng.choice(["OKP", "RSA", "ec"])},
        {"d": epk["x"]},
        {name: rng.choice(ODD_VALUES)},
    ]
    if choice == 11:
        return rng.choice([None, "P-256", [epk], {k: v for k, v in epk.items() if k != name}])
    return epk | changes[choice - 4]


def raw_jwe_ec(
    rng: random.Random, plaintext: bytes, device: ec.EllipticCurvePublicKey, extra: dict
) -> bytes:
    """ECDH-ES+A256KW + A256GCM from RFC 7518 with ``cryptography`` alone, random epk."""
    from cryptography.hazmat.primitives.kdf.concatkdf import ConcatKDFHash
    from cryptography.hazmat.primitives.keywrap import aes_key_wrap

    eph = ec.generate_private_key(ec.SECP256R1())
    point = eph.public_key().public_numbers()
    epk = {"kty": "EC", "crv": "P-256", "x": b64(point.x.to_bytes(32, "big")),
           "y": b64(point.y.to_bytes(32, "big"))}  # fmt: skip
    other = b"\0\0\0\x0eECDH-ES+A256KW" + bytes(8) + (256).to_bytes(4, "big")
    kek = ConcatKDFHash(hashes.SHA256(), 32, other).derive(eph.exchange(ec.ECDH(), device))
    header: dict[str, Any] = {"alg": "ECDH-ES+A256KW", "enc": "A256GCM", "cty": "JWT"}
    epk_value = odd_epk(rng, epk)
    if epk_value is not None:
        header["epk"] = epk_value
    header |= extra
    cek, iv = os.urandom(32), os.urandom(12)
    protected = b64(json.dumps(header).encode())
    sealed = AESGCM(cek).encrypt(iv, plaintext, protected.encode())
    wrapped = aes_key_wrap(kek, cek)
    if rng.random() < 0.1:
        wrapped = rng.choice([wrapped[:32], wrapped + b"\0" * 8, os.urandom(40)])
    parts = [protected, b64(wrapped), b64(iv), b64(sealed[:-16]), b64(sealed[-16:])]
    return ".".join(parts).encode()


def jwcrypto_jwe_ec(plaintext: bytes, device: ec.EllipticCurvePublicKey) -> bytes:
    """The second JOSE library's ECDH-ES+A256KW."""
    from jwcrypto import jwe as cjwe
    from jwcrypto import jwk

    outer = cjwe.JWE(plaintext, protected={"alg": "ECDH-ES+A256KW", "enc": "A256GCM", "cty": "JWT"})
    outer.add_recipient(jwk.JWK.from_pem(public_pem(device)))
    return outer.serialize(compact=True).encode()


def test_c_core_agrees_with_python_ec_manifest_key(tmp_path: Path) -> None:
    """Releases for a device whose manifest key is P-256 (ECDH-ES+A256KW): made by the author
    tool (joserfc), by jwcrypto and from the RFC by hand, with random epk and header changes and
    random character changes; an RSA device judges the EC manifests too."""
    rng = random.Random(SEED + 1)  # noqa: S311 -- reproducible test inputs, not secrets
    session = Session(tmp_path, rng)
    ec_keys = tmp_path / "ec-keys"
    generate_key_set(ec_keys, secure_boot="v1", manifest_encryption="ec-p256")
    author = load_author_keys(ec_keys, secure_boot_version="v1")
    device = author.manifest_encryption
    assert isinstance(device, ec.EllipticCurvePublicKey)
    session.author = author
    session.keys = ec_keys
    for _ in range(max(CASES // 3, 5)):
        manifest, binary, claims = session.release()
        facts = session.facts(claims)
        session.compare(manifest, binary if rng.random() < 0.5 else None, facts)
        session.compare(manifest, None, facts, keys=tmp_path / "keys")  # an RSA device
        token = manifest.read_bytes()
        for _ in range(2):
            changed = session.path(".manifest")
            changed.write_bytes(mutate_token(rng, token))
            session.compare(changed, None, facts)
        signed = sign_compact(json.dumps(claims).encode(), author.manifest_signing, MANIFEST_TYP)
        open_facts = dict(facts, installed_seq=0, secure_version=0)
        for _ in range(3):
            hand = session.path(".manifest")
            hand.write_bytes(raw_jwe_ec(rng, signed.encode(), device, rng.choice(EC_JWE_EXTRA)))
            session.compare(hand, None, open_facts)
        second = session.path(".manifest")
        second.write_bytes(jwcrypto_jwe_ec(signed.encode(), device))
        assert session.compare(second, None, open_facts)["claims"] is not None
    verdicts = sorted(session.reasons.items(), key=str)
    print(f"differential (EC): {session.count} files, verdicts {verdicts}")
    assert len(session.reasons) >= 5, session.reasons
    assert session.reasons.get("manifest_decrypt_failed", 0) >= 5, session.reasons
