"""The author's private keys from a PKCS#12 keystore (the seed's Java KeyStore).

A Java keystore holds several private-key entries, each named by an alias (the PKCS#12
``friendlyName``). ``cryptography`` checks the file's MAC and password but returns only the
first key, so the key bags are walked with ``asn1crypto`` and each shrouded key is decrypted
by ``cryptography``.

Default aliases (README, "The key set"): ``secure_boot_signing_key`` and ``manifest_signing_key``;
the seed's ``private_manifest_signing_key`` is accepted for the latter.
"""

from __future__ import annotations

from pathlib import Path
from typing import Final

from asn1crypto import pkcs12 as asn1_pkcs12
from cryptography.hazmat.primitives.serialization import load_der_private_key, pkcs12

from secure_fota.bounded_read import read_bounded
from secure_fota.crypto.keys import PrivateKey, Role, check_private_key, secure_boot_role
from secure_fota.errors import KeyMaterialError

__all__ = ["DEFAULT_ALIASES", "keystore_entries", "load_keystore_keys"]

_MAX_KEYSTORE: Final = 1024 * 1024
#: the author's private keys (named as in AuthorKeys) -> aliases tried in order
DEFAULT_ALIASES: Final = {
    "secure_boot": ("secure_boot_signing_key",),
    "manifest_signing": ("manifest_signing_key", "private_manifest_signing_key"),
}


def keystore_entries(data: bytes, password: bytes) -> dict[str, PrivateKey]:
    """All private keys in a PKCS#12 file, by alias."""
    if len(data) > _MAX_KEYSTORE:
        raise KeyMaterialError(f"keystore is larger than {_MAX_KEYSTORE} bytes")
    try:
        pkcs12.load_pkcs12(data, password)  # checks the MAC and the password
    except ValueError:
        raise KeyMaterialError(
            "cannot open the keystore: wrong password or not a PKCS#12 file"
        ) from None
    entries: dict[str, PrivateKey] = {}
    try:
        pfx = asn1_pkcs12.Pfx.load(data)
        safes = asn1_pkcs12.AuthenticatedSafe.load(pfx["auth_safe"]["content"].native)
        for content_info in safes:
            if content_info["content_type"].native != "data":
                continue  # encrypted safes hold certificates in keystores we read
            for bag in asn1_pkcs12.SafeContents.load(content_info["content"].native):
                if bag["bag_id"].native != "pkcs8_shrouded_key_bag":
                    continue
                alias = None
                for attribute in bag["bag_attributes"]:
                    if attribute["type"].native == "friendly_name":
                        alias = str(attribute["values"].native[0])
                key = load_der_private_key(bag["bag_value"].untag().dump(), password)
                entries[alias or f"entry{len(entries)}"] = key  # type: ignore[assignment]
    except (ValueError, TypeError, KeyError) as exc:
        raise KeyMaterialError(f"cannot read the keystore's private keys ({exc})") from None
    return entries


def load_keystore_keys(
    path: Path,
    password: bytes,
    *,
    secure_boot_version: str,
    aliases: dict[str, tuple[str, ...]] | None = None,
) -> dict[str, PrivateKey]:
    """The ``secure_boot`` and ``manifest_signing`` keys of a keystore."""
    data = read_bounded(path, _MAX_KEYSTORE, what="keystore", error=KeyMaterialError, truncate=True)
    entries = keystore_entries(data, password)
    wanted = aliases or DEFAULT_ALIASES
    roles = {
        "secure_boot": secure_boot_role(secure_boot_version),
        "manifest_signing": Role.MANIFEST_SIGNING,
    }
    found: dict[str, PrivateKey] = {}
    for purpose, names in wanted.items():
        for alias in names:
            if alias in entries:
                found[purpose] = check_private_key(
                    roles[purpose], entries[alias], f"{path} alias {alias!r}"
                )
                break
        else:
            known = ", ".join(sorted(entries)) or "none"
            raise KeyMaterialError(
                f"{path}: no entry with alias {' or '.join(map(repr, names))} (entries: {known})"
            )
    return found
