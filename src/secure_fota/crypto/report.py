"""Device reports: what a device tells the update server after each step of an update
(docs/formats.md §11), signed by the device's own P-256 key (ES256, JWS compact).

The payload names the device, its type, the event, its running release and a monotonic
counter (the server refuses a counter it has seen, so a captured report cannot be replayed),
and carries the device's public key (SPKI, base64url) so that the server can register it on
first contact. The server checks the signature with that key and, once a key is registered for
the device id, refuses any other key.
"""

from __future__ import annotations

import json
import re
from dataclasses import asdict, dataclass
from enum import StrEnum
from typing import Any, Final

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from secure_fota.crypto.jws import CompactSigner, open_signed, read_header
from secure_fota.crypto.keys import PrivateKey, PublicKey, Role, check_public_key, key_id
from secure_fota.errors import FormatError, InputError, KeyMaterialError, VerificationError
from secure_fota.formats.jose_compact import (
    b64url_decode,
    b64url_encode,
    json_int,
    parse_json_object,
)
from secure_fota.formats.names import check_name
from secure_fota.limits import (
    MAX_DESC_STRING,
    MAX_REPORT_COUNTER,
    MAX_REPORT_DETAIL,
    MAX_REPORT_SIZE,
    MAX_SEQ,
)
from secure_fota.reasons import Reason

__all__ = [
    "REPORT_TYP",
    "Event",
    "Report",
    "ReportSigner",
    "open_report",
    "peek_device_id",
    "peek_device_type",
    "public_key_from_text",
    "public_key_text",
]

REPORT_TYP: Final = "fota-report+jwt"
#: the payload members, all required (``reason`` and ``detail`` may be null / empty)
MEMBERS: Final = frozenset(
    {
        "device_id",
        "device_type",
        "event",
        "reason",
        "detail",
        "seq",
        "secure_version",
        "version",
        "release",
        "counter",
        "pub",
    }
)
_MAX_SECURE_VERSION: Final = 255
_PRINTABLE: Final = re.compile(r"[\x20-\x7e]*")


class Event(StrEnum):
    """What happened; only ``confirmed`` counts as a success."""

    CHECKING = "checking"
    DOWNLOADING = "downloading"
    INSTALLED = "installed"  # written and set to boot, not yet booted
    CONFIRMED = "confirmed"  # booted, self-test passed, marked valid
    ROLLED_BACK = "rolled_back"
    REJECTED = "rejected"  # with a reason code
    FAILED = "failed"  # with a detail


#: the events that end an attempt at a release badly
FAILURES: Final = frozenset({Event.ROLLED_BACK, Event.REJECTED, Event.FAILED})


@dataclass(frozen=True, slots=True)
class Report:
    device_id: str
    device_type: str
    event: Event
    reason: str | None
    detail: str
    #: the release running now
    seq: int
    secure_version: int
    version: str
    #: the release this event is about (0: none, e.g. ``checking`` with nothing new)
    release: int
    counter: int
    #: the device's public key, SPKI DER in base64url
    pub: str

    def to_json(self) -> bytes:
        data = asdict(self)
        data["event"] = self.event.value
        return json.dumps(data, sort_keys=True, separators=(",", ":")).encode()


def public_key_text(key: PrivateKey | PublicKey) -> str:
    """The SPKI DER of ``key`` (or of a private key's public half), base64url without padding."""
    public = (
        key.public_key() if isinstance(key, ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey) else key
    )
    der = public.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return b64url_encode(der)


def public_key_from_text(text: str) -> PublicKey:
    """A device's P-256 public key from :func:`public_key_text`; FormatError otherwise."""
    try:
        der = b64url_decode("report key", text)
        key = serialization.load_der_public_key(der)
        public = check_public_key(Role.DEVICE_REPORT, key, "report key")
    except (ValueError, KeyMaterialError, FormatError) as exc:
        raise FormatError("device report", f"pub is not a P-256 public key ({exc})") from None
    if public_key_text(public) != text:
        raise FormatError("device report", "pub is not in canonical form")
    return public


class ReportSigner:
    """Signs one device's reports with its key (ES256)."""

    def __init__(self, key: PrivateKey) -> None:
        check_public_key(Role.DEVICE_REPORT, key.public_key(), "device report key")
        self._signer = CompactSigner(key, REPORT_TYP)
        self.pub = public_key_text(key)

    def sign(self, report: Report) -> str:
        if report.pub != self.pub:
            raise KeyMaterialError("the report names another key than the one signing it")
        return self._signer.sign(report.to_json())


def _string(claims: dict[str, Any], name: str, limit: int, *, optional: bool = False) -> str:
    value = claims.get(name)
    if value is None and optional:
        return ""
    if not isinstance(value, str) or len(value) > limit or not _PRINTABLE.fullmatch(value):
        raise FormatError("device report", f"{name} must be printable ASCII of at most {limit}")
    return value


def _int(claims: dict[str, Any], name: str, low: int, high: int) -> int:
    value = json_int(claims.get(name))
    if value is None or not low <= value <= high:
        raise FormatError("device report", f"{name} must be an integer in {low}..{high}")
    return value


def parse_payload(payload: bytes) -> Report:
    """The checked payload of a report (before or after its signature is verified)."""
    claims = parse_json_object("device report", payload)
    missing = sorted(MEMBERS - set(claims))
    unknown = sorted(set(claims) - MEMBERS)
    if missing or unknown:
        raise FormatError("device report", f"members missing {missing} or unknown {unknown}")
    try:
        device_id = check_name("device_id", _string(claims, "device_id", 64))
        device_type = check_name("device_type", _string(claims, "device_type", 64))
    except InputError as exc:
        raise FormatError("device report", str(exc)) from None
    try:
        event = Event(str(claims.get("event")))
    except ValueError:
        events = ", ".join(e.value for e in Event)
        raise FormatError("device report", f"event must be one of {events}") from None
    reason = claims.get("reason")
    if reason is not None and (
        not isinstance(reason, str) or reason not in {r.value for r in Reason}
    ):
        raise FormatError("device report", "reason is not a known reason code")
    if event is Event.REJECTED and reason is None:
        raise FormatError("device report", "a rejected event needs a reason")
    return Report(
        device_id=device_id,
        device_type=device_type,
        event=event,
        reason=reason,
        detail=_string(claims, "detail", MAX_REPORT_DETAIL),
        seq=_int(claims, "seq", 0, MAX_SEQ),
        secure_version=_int(claims, "secure_version", 0, _MAX_SECURE_VERSION),
        version=_string(claims, "version", MAX_DESC_STRING - 1),
        release=_int(claims, "release", 0, MAX_SEQ),
        counter=_int(claims, "counter", 1, MAX_REPORT_COUNTER),
        pub=_string(claims, "pub", 200),
    )


def _peek(token: str) -> Report:
    if len(token) > MAX_REPORT_SIZE:
        raise FormatError("device report", f"larger than {MAX_REPORT_SIZE} bytes")
    parts, _ = read_header(token, "device report")
    return parse_payload(b64url_decode("JWS payload", parts[1]))


def peek_device_id(token: str) -> str:
    """The device id a report claims (not yet verified: to look up its registered key)."""
    return _peek(token).device_id


def peek_device_type(token: str) -> str:
    """The device type a report claims (not yet verified: to check the device's token)."""
    return _peek(token).device_type


def open_report(token: bytes | str, registered: str | None = None) -> tuple[Report, PublicKey]:
    """Verify a report's signature with the key it carries (which must be ``registered``
    when the device has a registered key); return the report and that key.

    Malformed reports raise :class:`FormatError`; a bad signature or another key than the
    registered one :class:`VerificationError`.
    """
    if len(token) > MAX_REPORT_SIZE:
        raise FormatError("device report", f"larger than {MAX_REPORT_SIZE} bytes")
    parts, _ = read_header(token, "device report")
    unverified = parse_payload(b64url_decode("JWS payload", parts[1]))
    if registered is not None and unverified.pub != registered:
        raise VerificationError(
            "device report", f"device {unverified.device_id!r} reported with another key"
        )
    public = public_key_from_text(unverified.pub)
    try:
        payload, _, alg = open_signed(token, {key_id(public): public}, REPORT_TYP, "device report")
    except FormatError as exc:
        raise FormatError("device report", exc.detail) from None
    if alg != "ES256":  # pragma: no cover - signing_alg of a P-256 key is ES256
        raise VerificationError("device report")
    return parse_payload(payload), public
