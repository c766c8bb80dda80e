"""The staff side of the versioned API over HTTPS, for ``fota release|devices|rollout|audit``:
one small httpx client, its three options (``--server``, ``--ca``, ``--token-env``), and the
server's error answers turned into our errors (one line each, no traceback)."""

from __future__ import annotations

import os
import ssl
from collections.abc import Callable
from pathlib import Path
from typing import Any, Final, TypeVar

import click
import httpx

from secure_fota.cli.options import ca_option, token_env_option
from secure_fota.errors import (
    ConflictError,
    FotaError,
    InputError,
    NotFoundError,
    TransportError,
)
from secure_fota.wire import API_V1

__all__ = ["Remote", "RemoteRefused", "remote_options"]

_F = TypeVar("_F", bound=Callable[..., Any])
DEFAULT_TOKEN_ENV: Final = "FOTA_TOKEN"  # noqa: S105 -- a variable's name, not a token


class RemoteRefused(FotaError):
    """The server refused the request (401, 403, 429 ...): its message, one line."""


def remote_options(function: _F) -> _F:
    """``--server``, ``--ca`` and ``--token-env`` (the token of an uploader or admin)."""
    function = token_env_option(
        "Environment variable holding an uploader's or admin's bearer token.",
        default=DEFAULT_TOKEN_ENV,
    )(function)
    function = ca_option()(function)
    return click.option(
        "--server",
        envvar="FOTA_SERVER",
        required=True,
        metavar="URL",
        help="Update server base URL (or FOTA_SERVER), e.g. https://fota.example.com:8443.",
    )(function)


class Remote:
    def __init__(self, server: str, *, ca_file: Path | None, token_env: str) -> None:
        token = os.environ.get(token_env)
        if not token:
            raise InputError("--token-env", f"environment variable {token_env} is not set")
        verify: Any = ssl.create_default_context(cafile=str(ca_file) if ca_file else None)
        self._client = httpx.Client(
            base_url=server.rstrip("/") + API_V1,
            verify=verify,
            timeout=30,
            headers={"authorization": f"Bearer {token}"},
        )

    def __enter__(self) -> Remote:
        return self

    def __exit__(self, *_: object) -> None:
        self._client.close()

    def call(self, method: str, path: str, **options: Any) -> Any:
        """The JSON answer of one request (None for 204); the server's refusals as errors."""
        try:
            response = self._client.request(method, path, **options)
        except httpx.HTTPError as exc:
            raise TransportError(f"{self._client.base_url}: {exc}") from None
        if response.status_code == 204:
            return None
        try:
            body = response.json()
        except ValueError:
            body = None
        if response.is_success:
            return body
        message = body.get("error") if isinstance(body, dict) else None
        text = f"server answered {response.status_code}: {message or response.reason_phrase}"
        if response.status_code == 404:
            raise NotFoundError(text)
        if response.status_code == 409:
            raise ConflictError(text)
        if response.status_code in (400, 422):
            field = body.get("field") if isinstance(body, dict) else None
            raise InputError(field or "request", text)
        if response.status_code >= 500:
            raise TransportError(text, status_code=response.status_code)
        raise RemoteRefused(text)
