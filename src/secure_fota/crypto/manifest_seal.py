"""Sealing a manifest: the claims signed (JWS compact), then encrypted (JWE compact).

The author's half of :mod:`secure_fota.crypto.manifest` (which opens manifests with joserfc),
written with :mod:`secure_fota.crypto.jose_writer` so that ``fota author release`` never imports
a JOSE library (docs/PERFORMANCE.md §1). The formats are those of docs/formats.md §4.
"""

from __future__ import annotations

from collections.abc import Sequence

from secure_fota.crypto.jose_writer import seal_jwe, sign_jws
from secure_fota.crypto.keys import ManifestEncryptionKey, PrivateKey
from secure_fota.errors import KeyMaterialError
from secure_fota.formats.manifest import MANIFEST_TYP, ManifestClaims
from secure_fota.limits import MAX_ROTATIONS

__all__ = ["seal_manifest"]


def seal_manifest(
    claims: ManifestClaims,
    *,
    signing_key: PrivateKey,
    encryption_key: ManifestEncryptionKey,
    rotations: Sequence[str] = (),
) -> bytes:
    """Sign the claims, then encrypt the signed token for the fleet. Returns ASCII bytes.

    ``rotations`` are the key-rotation statements leading to ``signing_key``'s key set, oldest
    first; they travel in the JWS header's ``rot`` member.
    """
    if len(rotations) > MAX_ROTATIONS:
        raise KeyMaterialError(f"a manifest carries at most {MAX_ROTATIONS} key rotations")
    extra = {"rot": list(rotations)} if rotations else None
    signed = sign_jws(claims.to_json(), signing_key, MANIFEST_TYP, extra)
    return seal_jwe(signed.encode("ascii"), encryption_key, "JWT").encode("ascii")
