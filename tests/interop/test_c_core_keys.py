"""Differential test of the DER keys a key-rotation statement names (docs/formats.md §4.4).

The C core (``secure_ota_host keyid``) and the Python reference (the statement payload reader
of ``secure_fota.crypto.key_rotation``) must read exactly the same keys, with the same key ids,
and refuse the same inputs: keys of every type and size, other encodings of the same key
(compressed and hybrid points, RSA without NULL parameters), chosen RSA exponents and moduli,
and random bit flips, insertions, deletions and truncations. The one known divergence, an RSA
key in an id-RSASSA-PSS SubjectPublicKeyInfo (esp32/README.md), is checked as such.
"""

from __future__ import annotations

import base64
import json
import os
import random
import subprocess
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

from secure_fota.crypto.key_rotation import _parse
from secure_fota.crypto.keys import generate_private_key
from secure_fota.errors import FormatError

REPO = Path(__file__).resolve().parents[2]
HOST_TOOL = Path(os.environ.get("SECURE_OTA_HOST", REPO / "build/esp32-host/secure_ota_host"))
MUTATIONS = int(os.environ.get("DIFF_KEY_MUTATIONS", "60"))
RSA_ALG = bytes.fromhex("300d06092a864886f70d0101010500")

pytestmark = pytest.mark.skipif(
    not HOST_TOOL.exists(), reason=f"{HOST_TOOL} is not built (run `make host-test`)"
)


def der(key: object) -> bytes:
    return key.public_bytes(  # type: ignore[attr-defined,no-any-return]
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def tlv(tag: int, body: bytes) -> bytes:
    n = len(body)
    length = (
        bytes([n])
        if n < 128
        else bytes([0x80 | ((n.bit_length() + 7) // 8)])
        + n.to_bytes((n.bit_length() + 7) // 8, "big")
    )
    return bytes([tag]) + length + body


def integer(value: int) -> bytes:
    return tlv(2, value.to_bytes(value.bit_length() // 8 + 1, "big", signed=True))


def rsa_spki(n: int, e: int, algorithm: bytes = RSA_ALG) -> bytes:
    return tlv(0x30, algorithm + tlv(3, b"\x00" + tlv(0x30, integer(n) + integer(e))))


def python_kid(data: bytes) -> str | None:
    """The reference's reading of one listed key: its key id, or None if it refuses it."""
    key = base64.urlsafe_b64encode(data).rstrip(b"=").decode()
    try:
        _, keys = _parse(json.dumps({"version": 2, "keys": [key]}).encode())
    except FormatError:
        return None
    (kid,) = keys
    return kid


def c_kids(files: list[Path]) -> list[str | None]:
    done = subprocess.run(
        [str(HOST_TOOL), "keyid", *map(str, files)], capture_output=True, timeout=120, check=True
    )
    return [json.loads(line)["kid"] for line in done.stdout.decode().splitlines()]


def variants(rng: random.Random) -> list[tuple[str, bytes]]:
    rsa3072 = generate_private_key("rsa3072").public_key()
    rsa4096 = generate_private_key("rsa4096").public_key()
    p256 = generate_private_key("ecdsa256").public_key()
    n = rsa3072.public_numbers().n  # type: ignore[union-attr]
    cases: list[tuple[str, bytes]] = [
        ("rsa3072", der(rsa3072)),
        ("rsa4096", der(rsa4096)),
        ("p256", der(p256)),
        ("p384", der(generate_private_key("ecdsa384").public_key())),
        ("secp256k1", der(ec.generate_private_key(ec.SECP256K1()).public_key())),
        ("ed25519", der(ed25519.Ed25519PrivateKey.generate().public_key())),
        (
            "rsa2048",
            der(rsa.generate_private_key(public_exponent=65537, key_size=2048).public_key()),
        ),
        ("rsa-no-null", rsa_spki(n, 65537, bytes.fromhex("300b06092a864886f70d010101"))),
        ("rsa-bad-params", rsa_spki(n, 65537, bytes.fromhex("300f06092a864886f70d0101010400"))),
        ("rsa-even-n", rsa_spki(n - 1, 65537)),
        ("rsa-n-3071-bits", rsa_spki(n >> 1 | 1, 65537)),
        (
            "rsa-negative-n",
            tlv(0x30, RSA_ALG + tlv(3, b"\x00" + tlv(0x30, integer(-n) + integer(3)))),
        ),
    ]
    for e in (1, 2, 3, 4, 65537, 2**64 + 1, n - 2, n - 1, n, n + 2, 0):
        cases.append((f"rsa-e-{e % 10**6}", rsa_spki(n, e)))
    point = p256.public_bytes(  # type: ignore[union-attr]
        serialization.Encoding.X962, serialization.PublicFormat.CompressedPoint
    )
    ec_alg = bytes.fromhex("301306072a8648ce3d020106082a8648ce3d030107")
    full = der(p256)
    for name, encoded in (
        ("compressed", point),
        ("compressed-other-parity", bytes([point[0] ^ 1]) + point[1:]),
        ("hybrid", bytes([6 | (full[-1] & 1)]) + full[-64:]),
        ("hybrid-wrong-parity", bytes([7 - (full[-1] & 1)]) + full[-64:]),
        ("infinity", b"\x00"),
        ("short-point", b"\x04" + full[-64:-1]),
    ):
        cases.append((f"p256-{name}", tlv(0x30, ec_alg + tlv(3, b"\x00" + encoded))))
    bases = [data for _, data in cases[:3]] + [cases[7][1], cases[13][1]]
    for i in range(MUTATIONS):
        data = bytearray(rng.choice(bases))
        kind = rng.randrange(5)
        pos = rng.randrange(len(data))
        if kind == 0:
            data[pos] ^= 1 << rng.randrange(8)
        elif kind == 1:
            data.insert(pos, rng.randrange(256))
        elif kind == 2:
            del data[pos]
        elif kind == 3:
            data = data[:pos]
        else:  # a length byte of the outer structures
            data[rng.choice([1, 2, 3, 5, 6])] ^= 1 << rng.randrange(8)
        cases.append((f"mutation-{i}-{kind}", bytes(data)))
    return cases


def test_c_core_reads_the_keys_python_reads(tmp_path: Path) -> None:
    rng = random.Random(int(os.environ.get("DIFF_SEED", "20260101")))  # noqa: S311 -- test data
    cases = variants(rng)
    files = []
    for index, (_, data) in enumerate(cases):
        path = tmp_path / f"k{index}.der"
        path.write_bytes(data)
        files.append(path)
    ours = c_kids(files)
    theirs = [python_kid(data) for _, data in cases]
    mismatches = [
        (name, c, p) for (name, _), c, p in zip(cases, ours, theirs, strict=True) if c != p
    ]
    assert not mismatches, mismatches
    read = sum(kid is not None for kid in theirs)
    print(
        f"keys: {len(cases)} DER inputs, {read} read by both, {len(cases) - read} refused by both"
    )
    assert read >= 8


def test_known_divergence_rsassa_pss_spki(tmp_path: Path) -> None:
    """The reference reads an RSA key in an id-RSASSA-PSS SPKI; the C core refuses it."""
    n = generate_private_key("rsa3072").public_key().public_numbers().n  # type: ignore[union-attr]
    data = rsa_spki(n, 65537, bytes.fromhex("300b06092a864886f70d01010a"))
    path = tmp_path / "pss.der"
    path.write_bytes(data)
    assert python_kid(data) is not None
    assert c_kids([path]) == [None]
