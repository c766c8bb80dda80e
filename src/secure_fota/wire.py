"""The HTTP contract between author, update server and devices, written once (docs/api.md).

Paths, query and form field names, header names, the nonce rule, the error body and the URL
builders that the server's routes and fast paths, the device's transport, the fleet simulator,
the author's upload and the author's local service all use. The seed's endpoints and field
names are kept exactly (its FW Author app and its devices still talk to us); the versioned API
lives under :data:`API_V1`.

Pure: names, patterns and string building, no I/O and nothing above :mod:`secure_fota.errors`
and :mod:`secure_fota.limits`.
"""

from __future__ import annotations

import re
import secrets
from typing import Final
from urllib.parse import quote, urlencode

from secure_fota.errors import FotaError, InputError

__all__ = [
    "API_V1",
    "AUDIT",
    "DEVICE",
    "DEVICES",
    "DEVICE_ID",
    "DEVICE_TYPE",
    "DEVICE_TYPES",
    "DEVICE_TYPE_PATH",
    "FIRMWARE_FILE",
    "FIRMWARE_PATH",
    "FRESHNESS_HEADER",
    "FW_NAME",
    "HEALTH",
    "HOLD",
    "ID",
    "MANIFEST_FILE",
    "METRICS",
    "NEWEST_BINARY",
    "NEWEST_MANIFEST",
    "NONCE",
    "NONCE_PATTERN",
    "READY",
    "RELEASE",
    "RELEASES",
    "RELEASE_BINARY",
    "RELEASE_HEADER",
    "RELEASE_MANIFEST",
    "RELEASE_UNYANK",
    "RELEASE_YANK",
    "REPORTS",
    "REPORT_CONTENT_TYPE",
    "ROLLOUT",
    "ROLLOUTS",
    "ROLLOUT_ACTION",
    "SERVICE_UPLOAD",
    "TYPE_NEWEST_BINARY",
    "TYPE_NEWEST_MANIFEST",
    "UI",
    "UI_CSRF_FIELD",
    "UI_CSRF_HEADER",
    "UPLOAD",
    "UPLOAD_FIELDS",
    "check_nonce",
    "describe_error",
    "device_auth_headers",
    "device_type_url",
    "error_body",
    "new_nonce",
    "newest_binary_url",
    "newest_manifest_url",
    "poll_query",
    "release_binary_url",
    "reports_url",
    "upload_fields",
    "upload_url",
]

# -- the seed's endpoints (docs/api.md, "Seed-compatible endpoints") ----------------------------
#: the device poll: the newest manifest of ``deviceType``
NEWEST_MANIFEST: Final = "/update/newest/manifest"
#: the newest encrypted image of ``deviceType`` (a device should rather fetch by id)
NEWEST_BINARY: Final = "/update/newest/binary"
#: the uploader's multipart POST
UPLOAD: Final = "/uploadFile"

# -- the versioned API (relative to API_V1; ``{device_type}`` and ``{release_id}`` are path
#    parameters, written as the routes declare them) ----------------------------------------------
API_V1: Final = "/api/v1"
DEVICE_TYPES: Final = "/device-types"
DEVICE_TYPE_PATH: Final = "/device-types/{device_type}"
RELEASES: Final = "/device-types/{device_type}/releases"
RELEASE: Final = RELEASES + "/{release_id}"
RELEASE_MANIFEST: Final = RELEASE + "/manifest"
RELEASE_BINARY: Final = RELEASE + "/binary"
RELEASE_YANK: Final = RELEASE + "/yank"
RELEASE_UNYANK: Final = RELEASE + "/unyank"
TYPE_NEWEST_MANIFEST: Final = "/device-types/{device_type}/newest/manifest"
TYPE_NEWEST_BINARY: Final = "/device-types/{device_type}/newest/binary"
#: signed device reports (docs/formats.md §8), POSTed as the JWS compact text
REPORTS: Final = "/reports"
REPORT_CONTENT_TYPE: Final = "application/jose"
#: the inventory
DEVICES: Final = "/devices"
DEVICE: Final = DEVICES + "/{device_id}"
#: staged rollouts; ``{action}`` is pause, resume or abort
ROLLOUTS: Final = "/rollouts"
ROLLOUT: Final = ROLLOUTS + "/{rollout_id}"
ROLLOUT_ACTION: Final = ROLLOUT + "/{action}"
#: the audit log
AUDIT: Final = "/audit"

# -- operations ------------------------------------------------------------------------------
HEALTH: Final = "/healthz"
READY: Final = "/readyz"
METRICS: Final = "/metrics"

# -- the dashboard (server-rendered pages for people; docs/api.md, "Dashboard") ---------------
UI: Final = "/ui"
#: the session's CSRF token on every state-changing request: a header (htmx) or a form field
UI_CSRF_HEADER: Final = "X-CSRF-Token"
UI_CSRF_FIELD: Final = "csrf_token"

# -- query and form fields (the seed's names) ------------------------------------------------
ID: Final = "id"
DEVICE_TYPE: Final = "deviceType"
FW_NAME: Final = "fwName"
NONCE: Final = "nonce"
#: an upload's query flag (``hold=1``): the release reaches devices only through a rollout
HOLD: Final = "hold"
#: a device's id on its poll: the server decides per device whether a rollout offers it
DEVICE_ID: Final = "deviceId"
MANIFEST_FILE: Final = "manifestFile"
FIRMWARE_FILE: Final = "firmwareFile"
#: the text fields of an upload (form fields, or the query string as Spring's @RequestParam)
UPLOAD_FIELDS: Final = (ID, DEVICE_TYPE, FW_NAME)

# -- the author's local service (``fota author serve``, the seed's FW Author app) -------------
SERVICE_UPLOAD: Final = "/upload"
#: the firmware file the service releases (inside its --firmware-dir)
FIRMWARE_PATH: Final = "firmwarePath"

# -- headers ---------------------------------------------------------------------------------
#: the server's nonce-bound freshness statement (docs/formats.md §7), on 200 and 304
FRESHNESS_HEADER: Final = "X-Fota-Freshness"
#: the release id a manifest or image answer serves
RELEASE_HEADER: Final = "x-fota-release"

# -- the nonce rule --------------------------------------------------------------------------
#: a nonce is 16 to 32 random bytes written as lowercase hex
NONCE_PATTERN: Final = re.compile(r"[0-9a-f]{32,64}")
_NONCE_BYTES: Final = 16


def new_nonce() -> str:
    """A fresh nonce for one poll (16 random bytes, 32 hex digits)."""
    return secrets.token_hex(_NONCE_BYTES)


def check_nonce(nonce: str | None) -> str | None:
    """``nonce`` if it is absent or well formed; else :class:`InputError` naming ``nonce``."""
    if nonce is None:
        return None
    if not NONCE_PATTERN.fullmatch(nonce):
        raise InputError(NONCE, "must be 32 to 64 lowercase hex digits (16 to 32 random bytes)")
    return nonce


# -- the error body --------------------------------------------------------------------------


def error_body(message: str, field: str | None = None) -> dict[str, str | None]:
    """Every error answer's JSON: what is wrong, and the parameter, header or part at fault."""
    return {"error": message, "field": field}


def describe_error(exc: FotaError) -> tuple[str, str | None]:
    """The message and field an error answer gives for ``exc`` (an input error's message
    starts with the field: ``deviceType must not contain path separators``)."""
    if isinstance(exc, InputError):
        return f"{exc.field} {exc.detail}", exc.field
    return exc.message, None


# -- URL builders (``base`` is a server's base URL, e.g. ``https://host:8443``) -----------------


def _root(base: str) -> str:
    return base.rstrip("/")


def newest_manifest_url(base: str) -> str:
    """The device poll's URL (its query: :func:`poll_query`)."""
    return _root(base) + NEWEST_MANIFEST


def poll_query(
    device_type: str, nonce: str | None = None, device_id: str | None = None
) -> dict[str, str]:
    """The device poll's query parameters (a nonce asks for a freshness statement; a device
    id lets a rollout offer its release to this device)."""
    query = {DEVICE_TYPE: device_type}
    if nonce:
        query[NONCE] = nonce
    if device_id:
        query[DEVICE_ID] = device_id
    return query


def reports_url(base: str) -> str:
    """Where a device POSTs its signed reports."""
    return _root(base) + API_V1 + REPORTS


def release_binary_url(base: str, device_type: str, seq: int) -> str:
    """The encrypted image of release ``seq`` of ``device_type`` (what devices download)."""
    path = RELEASE_BINARY.format(device_type=quote(device_type), release_id=seq)
    return _root(base) + API_V1 + path


def newest_binary_url(base: str, device_type: str) -> str:
    """The seed's "newest image" URL (the fallback for a server that has no by-id URL)."""
    return f"{_root(base)}{NEWEST_BINARY}?{urlencode({DEVICE_TYPE: device_type})}"


def device_type_url(base: str, device_type: str) -> str:
    """One device type's summary (404: the server has never seen it)."""
    return _root(base) + API_V1 + DEVICE_TYPE_PATH.format(device_type=quote(device_type))


def device_auth_headers(token: str | None) -> dict[str, str]:
    """The header a device sends on every request when the server needs device tokens
    (``device_auth`` = ``device-type-token`` or ``device-token``): a bearer token."""
    return {"Authorization": f"Bearer {token}"} if token else {}


def upload_url(base: str) -> str:
    """The seed's upload URL (multipart: :data:`MANIFEST_FILE`, :data:`FIRMWARE_FILE` and
    :func:`upload_fields`)."""
    return _root(base) + UPLOAD


def upload_fields(seq: int, device_type: str, fw_name: str) -> dict[str, str]:
    """The text fields of an upload."""
    return {ID: str(seq), DEVICE_TYPE: device_type, FW_NAME: fw_name}
