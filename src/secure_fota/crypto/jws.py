"""JWS compact signing and verification with explicit ``typ`` and key selection by ``kid``.

Used for manifests (``fota-manifest+jwt``), freshness statements (``fota-freshness+jwt``) and
key-rotation statements (``fota-keys+jwt``); the checks run in the order of docs/formats.md
§4.3, each failure with its own reason.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

from cryptography.hazmat.primitives.asymmetric import rsa
from joserfc import jws
from joserfc.errors import JoseError
from joserfc.jwk import ECKey, RSAKey
from joserfc.registry import HeaderParameter

from secure_fota.crypto.jose_writer import signing_alg
from secure_fota.crypto.keys import PrivateKey, PublicKey, TrustedKeys, key_id
from secure_fota.errors import FormatError, KeyMaterialError, VerificationError
from secure_fota.formats.jose_compact import b64url_decode, parse_json_object, split_compact
from secure_fota.reasons import Reason

__all__ = [
    "SIGNING_ALGS",
    "CompactSigner",
    "TrustedKeys",
    "jose_key",
    "open_signed",
    "read_header",
    "sign_compact",
    "signing_alg",
]

SIGNING_ALGS: Final = ("PS256", "ES256")
#: largest protected header we sign or verify (a manifest's carries key-rotation statements)
MAX_HEADER: Final = 12 * 1024
_HEADERS: Final = {"rot": HeaderParameter("key rotation statements", "list[str]")}
#: the only members a JWS header may have (a manifest's may also carry ``rot``)
BASIC_HEADER: Final = frozenset({"alg", "kid", "typ"})
MANIFEST_HEADER: Final = BASIC_HEADER | {"rot"}


def jose_key(key: PrivateKey | PublicKey) -> RSAKey | ECKey:
    """The joserfc key object wrapping a ``cryptography`` key."""
    if isinstance(key, rsa.RSAPrivateKey | rsa.RSAPublicKey):
        return RSAKey(key, key)
    return ECKey(key, key)


def sign_compact(
    payload: bytes, key: PrivateKey, typ: str, extra: Mapping[str, Any] | None = None
) -> str:
    """A JWS compact serialisation of ``payload`` with ``kid``, explicit ``typ`` and ``extra``."""
    alg = signing_alg(key)
    header: dict[str, Any] = {"alg": alg, "kid": key_id(key), "typ": typ, **(extra or {})}
    return jws.serialize_compact(header, payload, jose_key(key), registry=_registry(alg))


class CompactSigner:
    """:func:`sign_compact` for one key and ``typ``, with the key id, joserfc's key object and
    registry made once: the update server signs a freshness statement on every poll, and
    rebuilding them cost more than the ECDSA signature itself."""

    def __init__(self, key: PrivateKey, typ: str) -> None:
        alg = signing_alg(key)
        self._header: Final = {"alg": alg, "kid": key_id(key), "typ": typ}
        self._key: Final = jose_key(key)
        self._registry: Final = _registry(alg)

    def sign(self, payload: bytes) -> str:
        return jws.serialize_compact(
            dict(self._header), payload, self._key, registry=self._registry
        )


def _registry(alg: str) -> jws.JWSRegistry:
    registry = jws.JWSRegistry(header_registry=_HEADERS, algorithms=[alg])
    registry.max_header_length = MAX_HEADER
    return registry


def read_header(token: bytes | str, what: str) -> tuple[list[str], dict[str, Any]]:
    """Split a JWS compact token and decode its protected header (not yet trusted)."""
    parts = split_compact(what, token, 3)
    if len(parts[0]) > MAX_HEADER:
        raise FormatError(
            what, f"JWS header is over {MAX_HEADER} characters", reason=Reason.MANIFEST_MALFORMED
        )
    return parts, parse_json_object(f"{what} JWS header", b64url_decode("JWS header", parts[0]))


def open_signed(
    token: bytes | str,
    trusted: TrustedKeys,
    typ: str,
    what: str = "manifest",
    *,
    allowed: frozenset[str] = BASIC_HEADER,
) -> tuple[bytes, str, str]:
    """Verify a JWS compact token against keys chosen by ``kid``; return (payload, kid, alg).

    Structural problems raise :class:`FormatError` with a reason; a bad signature raises
    :class:`VerificationError`.
    """
    parts, header = read_header(token, what)
    alg = header.get("alg")
    if alg not in SIGNING_ALGS or "crit" in header:
        raise FormatError(
            what,
            f"JWS alg {alg!r} is not one of {', '.join(SIGNING_ALGS)}",
            reason=Reason.UNSUPPORTED_ALGORITHM,
        )
    if header.get("typ") != typ:
        raise FormatError(what, f"JWS typ is not {typ!r}", reason=Reason.MANIFEST_MALFORMED)
    unknown = sorted(set(header) - allowed)
    if unknown:
        raise FormatError(
            what, f"JWS header has unknown members {unknown}", reason=Reason.MANIFEST_MALFORMED
        )
    kid = header.get("kid")
    key = trusted.get(kid) if isinstance(kid, str) else None
    if key is None or not isinstance(kid, str):
        raise FormatError(what, f"signed by unknown key {kid!r}", reason=Reason.UNKNOWN_KEY)
    payload = b64url_decode("JWS payload", parts[1])
    b64url_decode("JWS signature", parts[2])
    try:
        if signing_alg(key) != alg:
            raise VerificationError(f"{what} signature")
        jws.deserialize_compact(token, jose_key(key), registry=_registry(alg))
    except (JoseError, ValueError, KeyMaterialError) as exc:
        raise VerificationError(f"{what} signature") from exc
    return payload, kid, alg
