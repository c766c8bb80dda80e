"""Blobs as objects in an S3-compatible bucket, ``<prefix><sha256>``.

An upload is spooled to a local file first (hashing it on the way): the object name is its
digest, which is only known at the end. The object is then written with one PUT, which S3
makes visible atomically and durably. boto3 is blocking, so every call runs in a thread.
"""

from __future__ import annotations

import functools
from collections.abc import AsyncIterable, AsyncIterator, Callable
from pathlib import Path
from typing import Any, Final, TypeVar

import anyio

from secure_fota.atomic_file import private_directory
from secure_fota.errors import StorageError
from secure_fota.server.errors import Unavailable
from secure_fota.server.storage.base import (
    SHA256_HEX,
    BlobInfo,
    BlobMissing,
    check_digest,
    read_in_chunks,
)
from secure_fota.server.storage.spool import clean_spool_dir, spool

__all__ = ["S3BlobStore"]

_T = TypeVar("_T")
_MISSING: Final = {"404", "NoSuchKey", "NotFound"}


class S3BlobStore:
    """A :class:`~secure_fota.server.storage.base.BlobStore` on S3 (or MinIO, moto, ...)."""

    kind = "s3"

    def __init__(
        self,
        *,
        bucket: str,
        spool_dir: Path,
        prefix: str = "blobs/",
        endpoint_url: str | None = None,
        region: str = "us-east-1",
        access_key_id: str | None = None,
        secret_access_key: str | None = None,
        staging_max_age: float = 86400,
    ) -> None:
        self.bucket = bucket
        self.prefix = prefix
        self._spool_dir = spool_dir
        self._endpoint_url = endpoint_url
        self._region = region
        self._access_key_id = access_key_id
        self._secret_access_key = secret_access_key
        self._staging_max_age = staging_max_age
        self._client: Any = None

    def key_of(self, sha256: str) -> str:
        return f"{self.prefix}{check_digest(sha256)}"

    async def _call(self, function: Callable[..., _T], /, **kwargs: Any) -> _T:
        try:
            return await anyio.to_thread.run_sync(functools.partial(function, **kwargs))
        except Exception as exc:  # noqa: BLE001 -- translated, never swallowed
            raise _translate(exc) from None

    async def start(self) -> None:
        import boto3
        from botocore.config import Config

        try:
            private_directory(self._spool_dir)
        except OSError as exc:
            raise StorageError(f"cannot create {self._spool_dir} ({exc.strerror})") from None
        clean_spool_dir(self._spool_dir, max_age=self._staging_max_age)
        session = boto3.session.Session()
        self._client = session.client(
            "s3",
            endpoint_url=self._endpoint_url,
            region_name=self._region,
            aws_access_key_id=self._access_key_id,
            aws_secret_access_key=self._secret_access_key,
            config=Config(
                retries={"max_attempts": 3, "mode": "standard"},
                connect_timeout=5,
                read_timeout=30,
                max_pool_connections=32,
                s3={"addressing_style": "path"},
            ),
        )

    async def close(self) -> None:
        if self._client is not None:
            await anyio.to_thread.run_sync(self._client.close)
            self._client = None

    async def put(self, chunks: AsyncIterable[bytes], *, max_size: int) -> BlobInfo:
        spooled = await spool(chunks, self._spool_dir, max_size=max_size)
        try:
            await anyio.to_thread.run_sync(self._upload_file, spooled.path, spooled.sha256)
        except Exception as exc:  # noqa: BLE001 -- translated, never swallowed
            raise _translate(exc) from None
        finally:
            spooled.path.unlink(missing_ok=True)
        return BlobInfo(spooled.sha256, spooled.size)

    def _upload_file(self, path: Path, sha256: str) -> None:
        with path.open("rb") as handle:
            self._client.put_object(
                Bucket=self.bucket,
                Key=self.key_of(sha256),
                Body=handle,
                ContentType="application/octet-stream",
            )

    async def read(self, sha256: str, *, max_size: int) -> bytes:
        response = await self._call(
            self._client.get_object, Bucket=self.bucket, Key=self.key_of(sha256)
        )
        body = response["Body"]
        try:
            data: bytes = await anyio.to_thread.run_sync(body.read, max_size + 1)
        finally:
            body.close()
        if len(data) > max_size:
            raise StorageError(f"blob {sha256[:16]}... is larger than {max_size} bytes")
        return data

    async def open(self, sha256: str, start: int, length: int) -> AsyncIterator[bytes]:
        if length <= 0:
            return _empty()
        response = await self._call(
            self._client.get_object,
            Bucket=self.bucket,
            Key=self.key_of(sha256),
            Range=f"bytes={start}-{start + length - 1}",
        )
        body = response["Body"]
        return read_in_chunks(_translated(body.read), body.close, sha256, length)

    async def exists(self, sha256: str) -> bool:
        try:
            await self._call(self._client.head_object, Bucket=self.bucket, Key=self.key_of(sha256))
        except BlobMissing:
            return False
        return True

    async def delete(self, sha256: str) -> None:
        await self._call(self._client.delete_object, Bucket=self.bucket, Key=self.key_of(sha256))

    async def list_blobs(self) -> AsyncIterator[tuple[str, float]]:
        def scan() -> list[tuple[str, float]]:
            found: list[tuple[str, float]] = []
            paginator = self._client.get_paginator("list_objects_v2")
            for page in paginator.paginate(Bucket=self.bucket, Prefix=self.prefix):
                for item in page.get("Contents", []):
                    name = str(item["Key"])[len(self.prefix) :]
                    if SHA256_HEX.fullmatch(name):
                        found.append((name, item["LastModified"].timestamp()))
            return found

        try:
            entries = await anyio.to_thread.run_sync(scan)
        except Exception as exc:  # noqa: BLE001 -- translated, never swallowed
            raise _translate(exc) from None
        for entry in entries:
            yield entry

    async def presigned_url(self, sha256: str, *, expires: int) -> str | None:
        url = await self._call(
            self._client.generate_presigned_url,
            ClientMethod="get_object",
            Params={"Bucket": self.bucket, "Key": self.key_of(sha256)},
            ExpiresIn=expires,
        )
        return str(url)

    async def check(self) -> None:
        where = f" at {self._endpoint_url}" if self._endpoint_url else ""
        try:
            await self._call(self._client.head_bucket, Bucket=self.bucket)
        except BlobMissing:  # head_bucket's 404: there is no such bucket
            raise Unavailable(
                f"S3 bucket {self.bucket!r} does not exist{where}; create it or fix s3_bucket"
            ) from None
        except StorageError as exc:
            raise Unavailable(f"S3 bucket {self.bucket!r}{where} is not usable: {exc}") from None


async def _empty() -> AsyncIterator[bytes]:
    nothing: tuple[bytes, ...] = ()
    for chunk in nothing:
        yield chunk


def _translated(read: Callable[[int], bytes]) -> Callable[[int], bytes]:
    """``read``, its exceptions translated (an S3 body fails mid-stream like any request)."""

    def translated(size: int) -> bytes:
        try:
            return read(size)
        except Exception as exc:  # noqa: BLE001 -- translated, never swallowed
            raise _translate(exc) from None

    return translated


def _translate(exc: Exception) -> StorageError:
    """boto3's exceptions into ours, without leaking credentials or URLs into messages."""
    from botocore.exceptions import BotoCoreError, ClientError

    if isinstance(exc, StorageError):
        return exc
    if isinstance(exc, ClientError):
        error = exc.response.get("Error", {})
        code = str(error.get("Code", "?"))
        if code in _MISSING:
            key = str(exc.response.get("Error", {}).get("Key", ""))
            return BlobMissing(key[-64:] if key else "?" * 64)
        return StorageError(f"S3 answered {code}")
    if isinstance(exc, BotoCoreError):
        return Unavailable(f"S3 is not reachable ({type(exc).__name__})")
    if isinstance(exc, OSError):
        return Unavailable(f"S3 is not reachable ({exc.strerror or type(exc).__name__})")
    return StorageError(f"S3 request failed ({type(exc).__name__})")
