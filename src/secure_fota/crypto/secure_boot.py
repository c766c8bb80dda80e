"""Secure-boot signing and verification (V1 and V2), byte-compatible with ``espsecure``.

Signing is split so that it streams: the caller feeds the image through :meth:`new_hasher`
while reading it once, then asks for :meth:`SecureBootSigner.suffix`, the bytes to append
(the V1 block, or the V2 padding and signature sector). V1 ECDSA signatures use RFC 6979
deterministic nonces, as espsecure does.
"""

from __future__ import annotations

import hashlib
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa, utils

from secure_fota.crypto.keys import PrivateKey, PublicKey
from secure_fota.errors import FormatError, KeyMaterialError, VerificationError
from secure_fota.formats.secure_boot import (
    SECTOR_SIZE,
    V1_BLOCK_SIZE,
    EcdsaCurve,
    Scheme,
    build_ecdsa_block,
    build_rsa_block,
    build_signature_sector,
    build_v1_block,
    parse_signature_sector,
    parse_v1_block,
    v2_padding,
)

__all__ = ["SecureBootSigner", "sign_image", "signed_length", "verify_image"]

_CHECK = "secure boot signature"
_PSS = padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=32)


def _hash_name(scheme: Scheme) -> str:
    return "sha384" if scheme is Scheme.V2_ECDSA384 else "sha256"


def _hash_algorithm(scheme: Scheme) -> hashes.HashAlgorithm:
    return hashes.SHA384() if scheme is Scheme.V2_ECDSA384 else hashes.SHA256()


def signed_length(scheme: Scheme, data_length: int) -> int:
    """Length of the signed image for ``data_length`` bytes of unsigned data."""
    if scheme is Scheme.V1:
        return data_length + V1_BLOCK_SIZE
    return data_length + v2_padding(data_length) + SECTOR_SIZE


class SecureBootSigner:
    """Signs one image with one key under one scheme."""

    def __init__(self, key: PrivateKey, scheme: Scheme) -> None:
        expected: tuple[type, ...]
        if scheme is Scheme.V2_RSA3072:
            expected = (rsa.RSAPrivateKey,)
        else:
            expected = (ec.EllipticCurvePrivateKey,)
        if not isinstance(key, expected):
            raise KeyMaterialError(f"secure boot scheme {scheme} cannot sign with this key type")
        self._key = key
        self.scheme = scheme

    def new_hasher(self) -> Any:
        """A fresh hash object to feed the unsigned image through."""
        return hashlib.new(_hash_name(self.scheme))

    def suffix(self, hasher: Any, data_length: int) -> bytes:
        """The bytes to append to the ``data_length`` bytes fed to ``hasher``."""
        if self.scheme is Scheme.V1 and isinstance(self._key, ec.EllipticCurvePrivateKey):
            der = self._key.sign(
                hasher.digest(),
                ec.ECDSA(utils.Prehashed(hashes.SHA256()), deterministic_signing=True),
            )
            r, s = utils.decode_dss_signature(der)
            return build_v1_block(r, s)
        pad = v2_padding(data_length)
        full = hasher.copy()
        full.update(b"\xff" * pad)
        digest = full.digest()
        prehashed = utils.Prehashed(_hash_algorithm(self.scheme))
        if isinstance(self._key, rsa.RSAPrivateKey):
            signature = self._key.sign(digest, _PSS, prehashed)
            numbers = self._key.public_key().public_numbers()
            block = build_rsa_block(digest, numbers.n, numbers.e, signature)
        else:
            der = self._key.sign(digest, ec.ECDSA(prehashed))
            r, s = utils.decode_dss_signature(der)
            point = self._key.public_key().public_numbers()
            curve = EcdsaCurve.P384 if self.scheme is Scheme.V2_ECDSA384 else EcdsaCurve.P256
            block = build_ecdsa_block(digest, curve, point.x, point.y, r, s)
        return b"\xff" * pad + build_signature_sector([block])


def sign_image(data: bytes, key: PrivateKey, scheme: Scheme) -> bytes:
    """Return ``data`` signed under ``scheme`` (in memory; see :class:`SecureBootSigner`)."""
    signer = SecureBootSigner(key, scheme)
    hasher = signer.new_hasher()
    hasher.update(data)
    return data + signer.suffix(hasher, len(data))


def _same_public_key(block_key: PublicKey, key: PublicKey) -> bool:
    if isinstance(block_key, rsa.RSAPublicKey) and isinstance(key, rsa.RSAPublicKey):
        return block_key.public_numbers() == key.public_numbers()
    if isinstance(block_key, ec.EllipticCurvePublicKey) and isinstance(
        key, ec.EllipticCurvePublicKey
    ):
        return block_key.public_numbers() == key.public_numbers()
    return False


def _verify_v1(signed: bytes, key: PublicKey) -> int:
    if len(signed) <= V1_BLOCK_SIZE:
        raise FormatError("signed image", "too short to carry a secure boot V1 signature")
    if not isinstance(key, ec.EllipticCurvePublicKey) or key.curve.name != "secp256r1":
        raise VerificationError(_CHECK, "secure boot V1 needs an EC P-256 public key")
    r, s = parse_v1_block(signed[-V1_BLOCK_SIZE:])
    data = signed[:-V1_BLOCK_SIZE]
    try:
        key.verify(utils.encode_dss_signature(r, s), data, ec.ECDSA(hashes.SHA256()))
    except InvalidSignature:
        raise VerificationError(_CHECK) from None
    return len(data)


def _verify_v2(signed: bytes, key: PublicKey, scheme: Scheme) -> int:
    if len(signed) < 2 * SECTOR_SIZE or len(signed) % SECTOR_SIZE:
        raise FormatError(
            "signed image", "a secure boot V2 image is a multiple of 4096 bytes, at least 8192"
        )
    data = signed[:-SECTOR_SIZE]
    blocks = [b for b in parse_signature_sector(signed[-SECTOR_SIZE:]) if b.scheme is scheme]
    if not blocks:
        raise VerificationError(_CHECK, f"no valid {scheme} signature block in the image")
    digest = hashlib.new(_hash_name(scheme), data).digest()
    for block in blocks:
        if block.digest != digest:
            continue
        try:
            if block.is_rsa:
                block_key: PublicKey = rsa.RSAPublicNumbers(block.rsa_e, block.rsa_n).public_key()
                if not isinstance(key, rsa.RSAPublicKey) or not _same_public_key(block_key, key):
                    continue
                key.verify(block.rsa_signature, digest, _PSS, utils.Prehashed(hashes.SHA256()))
            else:
                curve: ec.EllipticCurve = (
                    ec.SECP384R1() if block.curve is EcdsaCurve.P384 else ec.SECP256R1()
                )
                try:
                    block_key = ec.EllipticCurvePublicNumbers(
                        block.ec_x, block.ec_y, curve
                    ).public_key()
                except ValueError:
                    continue
                if not isinstance(key, ec.EllipticCurvePublicKey) or not _same_public_key(
                    block_key, key
                ):
                    continue
                key.verify(
                    utils.encode_dss_signature(block.ec_r, block.ec_s),
                    digest,
                    ec.ECDSA(utils.Prehashed(_hash_algorithm(scheme))),
                )
        except (InvalidSignature, ValueError):
            continue
        return len(data)
    raise VerificationError(_CHECK)


def verify_image(signed: bytes, key: PublicKey, scheme: Scheme) -> int:
    """Verify ``signed`` under ``scheme`` with ``key``; return the length of the signed data.

    Raises :class:`VerificationError` if no signature by ``key`` is valid, and
    :class:`FormatError` if the image cannot carry a signature of that scheme at all.
    """
    if scheme is Scheme.V1:
        return _verify_v1(signed, key)
    return _verify_v2(signed, key, scheme)
