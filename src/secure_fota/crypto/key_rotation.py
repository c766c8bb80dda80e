"""Rotation of the manifest-signing key: devices learn new keys from statements signed by old ones.

A key-rotation statement is a JWS (``typ`` ``fota-keys+jwt``) signed by a key of key set
version *v* whose payload is ``{"version": v + 1, "keys": [<base64url DER
SubjectPublicKeyInfo>, ...]}``: the complete set of manifest-signing keys to trust from then
on (leaving a key out revokes it). The author tool puts every statement since the fleet's
first key set into the ``rot`` member of each manifest's JWS header, so a device that missed
releases catches up by walking the chain from the version it holds. A device commits the new
set only when it confirms an installed release signed under it.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Final

from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization

from secure_fota.crypto.jws import TrustedKeys, open_signed, sign_compact
from secure_fota.crypto.keys import PrivateKey, PublicKey, Role, check_public_key, key_id
from secure_fota.errors import FormatError, KeyMaterialError, VerificationError
from secure_fota.formats.jose_compact import (
    b64url_decode,
    b64url_encode,
    json_int,
    parse_json_object,
)
from secure_fota.limits import MAX_ROTATIONS  # most statements a manifest header carries
from secure_fota.reasons import Reason

__all__ = [
    "KEYS_TYP",
    "MAX_ROTATIONS",
    "MAX_SET_KEYS",
    "KeySet",
    "advance",
    "make_rotation",
    "rotation_version",
]

KEYS_TYP: Final = "fota-keys+jwt"
#: most keys one set may hold
MAX_SET_KEYS: Final = 4
_MAX_STATEMENT: Final = 8192


@dataclass(frozen=True, slots=True)
class KeySet:
    """The manifest-signing keys a device trusts, and the version of that set."""

    version: int
    keys: TrustedKeys = field(default_factory=dict)


def _der(key: PublicKey) -> bytes:
    return key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def make_rotation(signer: PrivateKey, version: int, keys: Sequence[PublicKey]) -> str:
    """A statement, signed by ``signer`` (a key of set ``version - 1``), naming set ``version``."""
    if not 2 <= version <= 2**31 - 1:
        raise KeyMaterialError(f"key set version {version} is out of range")
    if not 1 <= len(keys) <= MAX_SET_KEYS:
        raise KeyMaterialError(f"a key set holds 1 to {MAX_SET_KEYS} keys")
    for key in keys:
        check_public_key(Role.MANIFEST_SIGNING, key, "new manifest signing key")
    payload = {"version": version, "keys": [b64url_encode(_der(key)) for key in keys]}
    return sign_compact(
        json.dumps(payload, sort_keys=True, separators=(",", ":")).encode(), signer, KEYS_TYP
    )


def _bad(message: str) -> FormatError:
    return FormatError("key rotation statement", message, reason=Reason.UNKNOWN_KEY)


def _parse(payload: bytes) -> tuple[int, dict[str, PublicKey]]:
    data: dict[str, Any] = parse_json_object(
        "key rotation statement", payload, reason=Reason.UNKNOWN_KEY
    )
    version, encoded = json_int(data.get("version")), data.get("keys")
    if version is None or not 2 <= version <= 2**31 - 1:
        raise _bad("version is missing or out of range")
    if not isinstance(encoded, list) or not 1 <= len(encoded) <= MAX_SET_KEYS:
        raise _bad(f"keys must be a list of 1 to {MAX_SET_KEYS} keys")
    keys: dict[str, PublicKey] = {}
    for item in encoded:
        if not isinstance(item, str) or len(item) > 2048:
            raise _bad("a key is not a base64url string")
        try:
            loaded = serialization.load_der_public_key(
                b64url_decode("rotation key", item, reason=Reason.UNKNOWN_KEY)
            )
        except (ValueError, UnsupportedAlgorithm):  # unknown key types and curves raise the latter
            raise _bad("a key is not a DER SubjectPublicKeyInfo") from None
        try:
            key = check_public_key(Role.MANIFEST_SIGNING, loaded, "rotation key")
        except KeyMaterialError as exc:
            raise _bad(str(exc)) from None
        keys[key_id(key)] = key
    return version, keys


def rotation_version(statement: str) -> int:
    """The version a statement introduces (read without verifying; for sorting files)."""
    parts = statement.split(".")
    if len(parts) != 3:
        raise _bad("not a JWS compact statement")
    version, _ = _parse(b64url_decode("rotation payload", parts[1], reason=Reason.UNKNOWN_KEY))
    return version


def advance(keyset: KeySet, statements: Sequence[str]) -> KeySet:
    """Walk ``statements`` from ``keyset``; return the newest set reachable by valid signatures.

    Statements for versions already held are skipped. The walk stops at the first statement
    that is not the next version or does not verify under the current set: what follows it
    cannot be trusted, and the manifest's key must then already be known.
    """
    current = keyset
    for statement in statements:
        if len(statement) > _MAX_STATEMENT:
            break
        try:
            if rotation_version(statement) <= current.version:
                continue  # already held; its signer may since have been revoked
            payload, _, _ = open_signed(statement, current.keys, KEYS_TYP, "key rotation statement")
            version, keys = _parse(payload)
        except (FormatError, VerificationError):
            break
        if version != current.version + 1:
            break
        current = KeySet(version=version, keys=keys)
    return current
