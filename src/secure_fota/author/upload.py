"""Upload a release to the update server in one authenticated multipart POST (seed contract).

``POST {server}/uploadFile`` with parts ``manifestFile`` and ``firmwareFile`` and fields ``id``,
``deviceType`` and ``fwName``; the server answers ``OK``. Credentials never travel over plain
HTTP unless the caller passes ``allow_insecure_http`` for a loopback development server.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Final
from urllib.parse import urlsplit

import httpx

from secure_fota.author.release import release_paths
from secure_fota.errors import (
    ConflictError,
    InputError,
    NotFoundError,
    TransportError,
)
from secure_fota.formats.names import check_name, check_seq
from secure_fota.limits import MAX_IMAGE_SIZE, MAX_MANIFEST_SIZE
from secure_fota.loopback import is_loopback
from secure_fota.tls_client import client_context, connect_failure
from secure_fota.wire import (
    FIRMWARE_FILE,
    HOLD,
    MANIFEST_FILE,
    device_type_url,
    upload_fields,
    upload_url,
)

__all__ = ["Credentials", "UploadTarget", "upload_release"]

_TIMEOUT: Final = httpx.Timeout(30.0, connect=10.0)


@dataclass(frozen=True, slots=True)
class Credentials:
    """HTTP Basic (user and password) or a bearer token."""

    user: str | None = None
    password: str | None = None
    token: str | None = None

    def headers(self) -> dict[str, str]:
        if self.token:
            return {"Authorization": f"Bearer {self.token}"}
        return {}

    def auth(self) -> httpx.BasicAuth | None:
        if self.user is not None and not self.token:
            return httpx.BasicAuth(self.user, self.password or "")
        return None


@dataclass(frozen=True, slots=True)
class UploadTarget:
    """Where to upload and how to trust it."""

    server: str
    credentials: Credentials
    ca_file: Path | None = None
    allow_insecure_http: bool = False


def _check_url(target: UploadTarget) -> str:
    parts = urlsplit(target.server)
    if parts.scheme not in ("https", "http") or not parts.hostname:
        raise InputError("--server", f"{target.server!r} is not an http(s) URL")
    if parts.scheme == "http":
        if not target.allow_insecure_http:
            raise InputError(
                "--server",
                "refusing to send credentials over plain HTTP; use https:// "
                "(or --insecure-http for a loopback development server)",
            )
        if not is_loopback(parts.hostname):
            raise InputError("--server", "--insecure-http is only allowed for a loopback server")
    return target.server.rstrip("/")


class _ProgressReader:
    """A file wrapper that reports every chunk httpx reads for the multipart body."""

    def __init__(self, handle: BinaryIO, advance: Callable[[int], None]) -> None:
        self._handle = handle
        self._advance = advance

    def read(self, size: int = -1) -> bytes:
        data = self._handle.read(size)
        self._advance(len(data))
        return data

    def fileno(self) -> int:  # lets httpx learn the length and send Content-Length
        return self._handle.fileno()


def _error_text(response: httpx.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        return response.text[:200].strip() or response.reason_phrase
    if isinstance(body, dict):
        message = body.get("error") or body.get("detail") or body
        field = body.get("field")
        return f"{field}: {message}" if field else str(message)
    return str(body)[:200]


def _require_known_type(
    client: httpx.Client, target: UploadTarget, base: str, device_type: str
) -> None:
    response = client.get(device_type_url(base, device_type), headers=target.credentials.headers())
    if response.status_code == 200:
        return
    if response.status_code == 404:
        raise InputError(
            "--device-type",
            f"the server has no device type {device_type!r} yet; check the spelling, or give "
            "--new-device-type for the first release of a new type",
        )
    detail = _error_text(response)
    if response.status_code in (401, 403):
        raise TransportError(
            f"upload refused ({response.status_code}): {detail}", status_code=response.status_code
        )
    raise TransportError(
        f"asking the server about device type {device_type!r} failed with HTTP "
        f"{response.status_code}: {detail}",
        status_code=response.status_code,
    )


def upload_release(
    target: UploadTarget,
    *,
    out_dir: Path,
    fw_name: str,
    seq: int,
    device_type: str,
    progress: Callable[[int], None] | None = None,
    allow_new_device_type: bool = True,
    hold: bool = False,
) -> str:
    """Upload ``OUTDIR/NAME-N.manifest`` and ``.bin``; return the server's answer. A held
    release (``hold``) reaches devices only through a rollout.

    Unless ``allow_new_device_type``, the server is asked first whether it knows
    ``device_type`` (``GET /api/v1/device-types/{type}``), and a type it has never seen is
    refused: a misspelt type would otherwise start a new "newest" nobody polls, or, worse,
    land in a real type's neighbour.

    Raises :class:`TransportError` for network, TLS and server failures,
    :class:`ConflictError` when the server holds a different release under the same id.
    """
    check_name("--name", fw_name)
    check_name("--device-type", device_type)
    check_seq("--seq", seq)
    base = _check_url(target)
    manifest_path, binary_path = release_paths(out_dir, fw_name, seq)
    for path, limit in ((manifest_path, MAX_MANIFEST_SIZE), (binary_path, MAX_IMAGE_SIZE + 512)):
        if not path.is_file():
            raise NotFoundError(f"{path}: release file not found (run `fota author release`)")
        if path.stat().st_size > limit:
            raise InputError(str(path), f"larger than {limit} bytes, not a release file")
    verify = client_context(target.ca_file)
    advance = progress or (lambda _n: None)
    try:
        with (
            manifest_path.open("rb") as manifest,
            binary_path.open("rb") as binary,
            httpx.Client(verify=verify, timeout=_TIMEOUT, auth=target.credentials.auth()) as client,
        ):
            if not allow_new_device_type:
                _require_known_type(client, target, base, device_type)
            response = client.post(
                upload_url(base),
                params={HOLD: "1"} if hold else None,
                headers=target.credentials.headers(),
                data=upload_fields(seq, device_type, fw_name),
                files={
                    MANIFEST_FILE: (manifest_path.name, _ProgressReader(manifest, advance)),  # type: ignore[dict-item]
                    FIRMWARE_FILE: (binary_path.name, _ProgressReader(binary, advance)),  # type: ignore[dict-item]
                },
            )
    except httpx.ConnectError as exc:
        raise TransportError(
            f"upload failed: {connect_failure(exc, base, server_option='--server')}"
        ) from None
    except httpx.HTTPError as exc:
        raise TransportError(f"upload to {base} failed: {exc}") from None
    if response.status_code == 200:
        return response.text.strip()
    detail = _error_text(response)
    if response.status_code == 409:
        raise ConflictError(
            f"the server already holds a different release {device_type} #{seq}: {detail}"
        )
    if response.status_code in (401, 403):
        raise TransportError(
            f"upload refused ({response.status_code}): {detail}", status_code=response.status_code
        )
    raise TransportError(
        f"upload failed with HTTP {response.status_code}: {detail}",
        status_code=response.status_code,
    )
