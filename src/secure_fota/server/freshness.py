"""The server's side of freshness statements (docs/formats.md §7)."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

from secure_fota.crypto.freshness import FreshnessStatement, StatementSigner
from secure_fota.crypto.keys import PrivateKey, Role, load_private_key
from secure_fota.keys.directory import read_key_file

__all__ = ["FreshnessSigner"]


class FreshnessSigner:
    """Signs statements with the online freshness key (EC P-256, ES256)."""

    def __init__(self, key: PrivateKey, *, clock: Callable[[], float] = time.time) -> None:
        self._signer = StatementSigner(key)
        self._clock = clock

    @classmethod
    def from_file(cls, path: Path) -> FreshnessSigner:
        return cls(load_private_key(Role.FRESHNESS, read_key_file(path), str(path)))

    def sign(self, *, device_type: str, seq: int, manifest_sha256: str, nonce: str) -> str:
        return self._signer.sign(
            FreshnessStatement(
                device_type=device_type,
                seq=seq,
                manifest_sha256=manifest_sha256,
                nonce=nonce,
                iat=int(self._clock()),
            ),
        )
