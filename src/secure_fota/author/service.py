"""``fota author serve``: the seed's local REST service, without its holes.

``POST /upload`` with ``id``, ``deviceType``, ``fwName`` and ``firmwarePath`` (form fields or
query parameters) builds a release from a firmware file and uploads it to the update server.

Answers: 200 (uploaded; JSON with the claims), 400 (a parameter is missing, a malformed form,
or a file part: the service reads firmware from its directory, never from the request), 401
(no or wrong bearer token), 403 (``firmwarePath`` outside the firmware directory), 404
(firmware file not found), 409 (the server holds a different release under that id), 422
(invalid parameter, invalid firmware image, or the configured key files cannot be loaded),
502 (the update server failed or refused the upload). It never answers 200 unless the server
accepted the upload.
Errors have the update server's body (:func:`secure_fota.wire.error_body`) and each error's
``http_status``.
"""

from __future__ import annotations

import hmac
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.formparsers import MultiPartException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from secure_fota.author.release import ReleaseRequest, build_release
from secure_fota.author.staging import keep, staging_folder
from secure_fota.author.upload import UploadTarget, upload_release
from secure_fota.crypto.keyring import AuthorKeys
from secure_fota.errors import (
    BadRequest,
    FotaError,
    InputError,
    KeyMaterialError,
    MissingParameter,
    NotFoundError,
)
from secure_fota.formats.names import check_name, check_seq
from secure_fota.keys.directory import load_author_keys
from secure_fota.wire import (
    DEVICE_TYPE,
    FIRMWARE_PATH,
    FW_NAME,
    HEALTH,
    ID,
    SERVICE_UPLOAD,
    describe_error,
    error_body,
)

__all__ = ["ServiceConfig", "create_service"]

_MAX_FORM_BYTES = 16 * 1024


@dataclass(frozen=True, slots=True)
class ServiceConfig:
    keys_dir: Path
    firmware_dir: Path
    out_dir: Path
    target: UploadTarget
    token: str
    secure_boot: str = "v1"
    expires_in: int | None = None
    keystore: Path | None = None
    keystore_password: str | None = None
    allow_new_device_type: bool = True


class _KeysUnavailable(FotaError):
    """The configured key files cannot be loaded (the seed's 422)."""

    http_status = 422


class _OutsideFirmwareDir(InputError):
    """``firmwarePath`` leads out of the firmware directory (403: never read, never signed)."""

    http_status = 403

    def __init__(self) -> None:
        super().__init__(FIRMWARE_PATH, "must be inside the firmware directory")


def _error(status: int, message: str, field: str | None = None) -> JSONResponse:
    return JSONResponse(error_body(message, field), status_code=status)


class _Service:
    def __init__(self, config: ServiceConfig) -> None:
        self.config = config
        self._firmware_root = config.firmware_dir.resolve(strict=True)
        self._lock = threading.Lock()

    def _keys(self) -> AuthorKeys:
        config = self.config
        try:
            return load_author_keys(
                config.keys_dir,
                secure_boot_version=config.secure_boot,
                keystore=config.keystore,
                keystore_password=config.keystore_password or "",
            )
        except (KeyMaterialError, NotFoundError) as exc:
            raise _KeysUnavailable(f"configured key files cannot be loaded: {exc}") from None

    def firmware_path(self, text: str) -> Path:
        if not text or "\0" in text or len(text) > 4096:
            raise InputError(FIRMWARE_PATH, "must be a file path")
        candidate = Path(text)
        if not candidate.is_absolute():
            candidate = self._firmware_root / candidate
        resolved = candidate.resolve()
        if not resolved.is_relative_to(self._firmware_root):
            raise _OutsideFirmwareDir
        if not resolved.is_file():
            raise NotFoundError(f"firmware file {text!r} not found")
        return resolved

    def publish(self, seq: int, device_type: str, fw_name: str, firmware: Path) -> dict[str, Any]:
        """Build the release in a private staging folder, upload it from there, and only when
        the server took it move the files into ``out_dir``: a refused upload (a 409 for a
        different release under the same number, say) leaves the local files that match
        the server's release as they were."""
        with self._lock:
            config = self.config
            with staging_folder(config.out_dir) as staging:
                files = build_release(
                    ReleaseRequest(
                        firmware=firmware,
                        seq=seq,
                        device_type=device_type,
                        fw_name=fw_name,
                        out_dir=staging,
                        secure_boot=config.secure_boot,
                        expires_in=config.expires_in,
                    ),
                    self._keys(),
                    now=int(time.time()),
                )
                answer = upload_release(
                    config.target,
                    out_dir=staging,
                    fw_name=fw_name,
                    seq=seq,
                    device_type=device_type,
                    allow_new_device_type=config.allow_new_device_type,
                )
                files = keep(files, config.out_dir)
            claims = files.claims.to_dict()
            return {"result": answer, "claims": claims}


async def _parameters(request: Request) -> dict[str, str]:
    values = dict(request.query_params)
    content_type = request.headers.get("content-type", "")
    if content_type.startswith(("multipart/form-data", "application/x-www-form-urlencoded")):
        length = request.headers.get("content-length") or "0"
        if not (length.isascii() and length.isdigit()):
            raise BadRequest("content-length", "is not a number")
        if int(length) > _MAX_FORM_BYTES:
            raise InputError("body", f"larger than {_MAX_FORM_BYTES} bytes")
        try:
            async with request.form(max_files=0, max_fields=16, max_part_size=4096) as form:
                values.update({k: v for k, v in form.items() if isinstance(v, str)})
        except (HTTPException, MultiPartException) as exc:
            raise _form_error(str(getattr(exc, "detail", None) or exc)) from None
    return values


def _form_error(detail: str) -> BadRequest:
    """Starlette's reason a form was refused, as a 400 for the client."""
    if "files" in detail.lower():
        return BadRequest(
            "body",
            f"has a file part; send {FIRMWARE_PATH} (a file in the service's --firmware-dir), "
            "not the file",
        )
    return BadRequest("body", f"is not a valid form ({detail.rstrip('.')})")


def _release_parameters(values: dict[str, str]) -> tuple[int, str, str, str]:
    """``id``, ``deviceType``, ``fwName`` and ``firmwarePath``, each given (else 400) and the
    first three valid (else 422)."""
    for name in (ID, DEVICE_TYPE, FW_NAME, FIRMWARE_PATH):
        if not values.get(name):
            raise MissingParameter(name)
    return (
        check_seq(ID, values[ID]),
        check_name(DEVICE_TYPE, values[DEVICE_TYPE]),
        check_name(FW_NAME, values[FW_NAME]),
        values[FIRMWARE_PATH],
    )


def create_service(config: ServiceConfig) -> Starlette:
    """The local service as an ASGI app (run it with uvicorn on 127.0.0.1)."""
    service = _Service(config)
    expected = config.token.encode()

    async def upload(request: Request) -> Response:
        header = request.headers.get("authorization", "")
        supplied = header[7:].encode() if header.lower().startswith("bearer ") else b""
        if not hmac.compare_digest(supplied, expected):
            response = _error(401, "a valid bearer token is required")
            response.headers["WWW-Authenticate"] = "Bearer"
            return response
        try:
            seq, device_type, fw_name, path = _release_parameters(await _parameters(request))
            firmware = service.firmware_path(path)
            result = await run_in_threadpool(service.publish, seq, device_type, fw_name, firmware)
        except FotaError as exc:
            return _error(exc.http_status, *describe_error(exc))
        except Exception as exc:  # noqa: BLE001 -- the seed's "5xx, see the log", but with a reason
            return _error(500, f"internal error ({type(exc).__name__})")
        return JSONResponse(result)

    async def health(_: Request) -> Response:
        return JSONResponse({"status": "ok"})

    return Starlette(
        routes=[Route(SERVICE_UPLOAD, upload, methods=["POST"]), Route(HEALTH, health)]
    )
