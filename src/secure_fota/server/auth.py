"""Who may do what: uploaders and admins (HTTP Basic with Argon2id passwords, or bearer
tokens), devices (open, or per-device-type / per-device bearer tokens), and throttling of
repeated failures.

Tokens are 256-bit random secrets; only their SHA-256 is stored (a fast hash is enough for
secrets of that entropy, and keeps device polls cheap). Passwords are Argon2id. Failed
attempts are counted per client address (the TCP peer, or the address a configured proxy
forwarded) and per account (the stored user name; names compare exactly on every database);
past the limit the answer is 429 with ``Retry-After`` until the lock-out ends. Password
failures (HTTP Basic, dashboard sign-ins) are counted in the database, so every worker and
every host counts the same guesses (:class:`SharedFailureThrottle`); bad bearer tokens, which
cannot be guessed, are counted per worker in memory (:class:`FailureThrottle`), so that a
flood of them costs no database write once its address is locked.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import secrets
import time
from collections import OrderedDict, deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from enum import StrEnum
from typing import Final

import anyio
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

from secure_fota.errors import InputError
from secure_fota.formats.names import check_name
from secure_fota.server.db.auth_failures import AuthFailureStore
from secure_fota.server.db.records import UserInfo
from secure_fota.server.db.repository import Repository
from secure_fota.server.errors import AuthenticationRequired, Forbidden, Throttled
from secure_fota.server.generation import GenerationWatcher

__all__ = [
    "TOKEN_PREFIX",
    "USER_ROLES",
    "Authenticator",
    "DeviceAuthMode",
    "FailureThrottle",
    "Principal",
    "Role",
    "SharedFailureThrottle",
    "hash_password",
    "new_token",
    "token_digest",
]

TOKEN_PREFIX: Final = "fota_"  # noqa: S105 -- a prefix, not a secret
_MAX_CREDENTIAL: Final = 1024
_MAX_TRACKED: Final = 50_000
#: a client address is locked out after this many times ``auth_max_failures``
CLIENT_FACTOR: Final = 4
_HASHER: Final = PasswordHasher()  # Argon2id, RFC 9106 "low memory" profile
#: verified against when the user does not exist, so that timing does not reveal names
_DUMMY_HASH: Final = _HASHER.hash(secrets.token_hex(16))


class Role(StrEnum):
    UPLOADER = "uploader"
    ADMIN = "admin"
    DEVICE = "device"
    #: looks (lists releases, the dashboard) but changes nothing
    VIEWER = "viewer"


#: the roles a person can have (``fota server user add --role``)
USER_ROLES: Final = (Role.VIEWER, Role.UPLOADER, Role.ADMIN)


class DeviceAuthMode(StrEnum):
    OPEN = "open"
    DEVICE_TYPE_TOKEN = "device-type-token"  # noqa: S105 -- a mode name
    DEVICE_TOKEN = "device-token"  # noqa: S105


@dataclass(frozen=True, slots=True)
class Principal:
    name: str
    role: Role
    via: str  # "basic" or "token"
    device_type: str | None = None
    per_device: bool = False


def hash_password(password: str) -> str:
    if not password:
        raise InputError("password", "must not be empty")
    if len(password) > _MAX_CREDENTIAL:
        raise InputError("password", f"is longer than {_MAX_CREDENTIAL} characters")
    return _HASHER.hash(password)


def new_token() -> str:
    """A fresh bearer token (shown once; store only :func:`token_digest`)."""
    return TOKEN_PREFIX + secrets.token_urlsafe(32)


def token_digest(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8", "surrogateescape")).hexdigest()


def _limit(key: str, max_failures: int) -> int:
    # one address may carry many users (NAT, CI): it gets more room than one user name
    return max_failures * CLIENT_FACTOR if key.startswith("client:") else max_failures


class SharedFailureThrottle:
    """Password failures counted in the database (:class:`AuthFailureStore`): a user name is
    locked after ``max_failures`` failures within ``window`` seconds of its first, a client
    address after ``CLIENT_FACTOR`` times as many, whichever worker or host saw them."""

    def __init__(
        self,
        store: AuthFailureStore,
        *,
        max_failures: int,
        window: float,
        lockout: int,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._store = store
        self._max = max_failures
        self._window = int(window * 1000)
        self._lockout = lockout * 1000
        self._clock = clock

    def _now(self) -> int:
        return int(self._clock() * 1000)

    async def check(self, keys: Iterable[str]) -> bool:
        """Raise :class:`Throttled` while a key is locked; else whether any key has failures
        counted (only then does a success have anything to clear)."""
        now = self._now()
        until, counted = await self._store.state(list(keys), now)
        if until is not None:
            raise Throttled(max(1, -(-(until - now) // 1000)))
        return counted

    async def failure(self, keys: Iterable[str]) -> None:
        limits = {key: _limit(key, self._max) for key in keys}
        await self._store.record(limits, self._now(), window=self._window, lockout=self._lockout)

    async def success(self, keys: Iterable[str]) -> None:
        await self._store.clear(list(keys), self._now())


class FailureThrottle:
    """Sliding-window failure counters with lock-out, bounded in memory (one worker's).

    A user name is locked after ``max_failures`` failures within ``window`` seconds, a client
    address after ``CLIENT_FACTOR`` times as many."""

    def __init__(
        self,
        *,
        max_failures: int,
        window: float,
        lockout: int,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._max = max_failures
        self._window = window
        self._lockout = lockout
        self._clock = clock
        self._failures: OrderedDict[str, deque[float]] = OrderedDict()
        self._locked: dict[str, float] = {}

    def _limit(self, key: str) -> int:
        return _limit(key, self._max)

    def check(self, keys: Iterable[str]) -> None:
        now = self._clock()
        for key in keys:
            until = self._locked.get(key)
            if until is None:
                continue
            if now < until:
                raise Throttled(max(1, int(until - now + 0.999)))
            del self._locked[key]

    def failure(self, keys: Iterable[str]) -> None:
        now = self._clock()
        for key in keys:
            times = self._failures.pop(key, None) or deque()
            times.append(now)
            while times and now - times[0] > self._window:
                times.popleft()
            if len(times) >= self._limit(key):
                self._locked[key] = now + self._lockout
                times.clear()
            self._failures[key] = times
            while len(self._failures) > _MAX_TRACKED:
                self._failures.popitem(last=False)
        if len(self._locked) > _MAX_TRACKED:
            self._locked = {k: v for k, v in self._locked.items() if v > now}

    def success(self, keys: Iterable[str]) -> None:
        for key in keys:
            self._failures.pop(key, None)


@dataclass(frozen=True, slots=True)
class _CachedToken:
    principal: Principal | None  # None: unknown or revoked


class Authenticator:
    def __init__(
        self,
        repository: Repository,
        watcher: GenerationWatcher,
        throttle: FailureThrottle,
        passwords: SharedFailureThrottle,
        *,
        device_mode: DeviceAuthMode,
    ) -> None:
        self._repository = repository
        self._watcher = watcher
        self._throttle = throttle  # bearer tokens, per worker
        self._passwords = passwords  # passwords, in the database
        self.device_mode = device_mode
        self._tokens: dict[str, _CachedToken] = {}
        watcher.subscribe(self._clear)

    def _clear(self) -> None:
        self._tokens = {}

    async def _token(self, token: str) -> Principal | None:
        digest = token_digest(token)
        await self._watcher.ensure_fresh()
        tokens = self._tokens
        cached = tokens.get(digest)
        if cached is not None:
            return cached.principal
        row = await self._repository.token_by_digest(digest)
        principal = None
        # the lookup is by digest; compare again in constant time all the same
        if row is not None and not row.revoked and hmac.compare_digest(row.token_sha256, digest):
            principal = Principal(
                name=row.name,
                role=Role(row.role),
                via="token",
                device_type=row.device_type,
                per_device=row.per_device,
            )
        if len(tokens) >= _MAX_TRACKED:
            tokens.clear()
        tokens[digest] = _CachedToken(principal)
        return principal

    async def _password(self, user: UserInfo | None, password: str) -> Principal | None:
        stored = user.password_hash if user is not None and not user.disabled else _DUMMY_HASH
        ok = await anyio.to_thread.run_sync(_verify, stored, password)
        if not ok or user is None or user.disabled:
            return None
        return Principal(name=user.name, role=Role(user.role), via="basic")

    async def sign_in(self, name: str, password: str, client: str) -> Principal:
        """A person signing in to the dashboard with a user name and password, throttled like
        HTTP Basic (raises 401/429); any role but ``device``."""
        if len(password) > _MAX_CREDENTIAL:
            raise AuthenticationRequired("wrong user name or password")
        try:
            check_name("user", name)
        except InputError:
            raise AuthenticationRequired("wrong user name or password") from None
        principal = await self._user_password(
            f"client:{client}", name, password, refuse_devices=True
        )
        if principal is None:
            raise AuthenticationRequired("wrong user name or password")
        return principal

    async def _user_password(
        self, client_key: str, name: str, password: str, *, refuse_devices: bool = False
    ) -> Principal | None:
        """Check a user's password through the shared throttle (429 while locked): a failure
        is counted, a success clears what was counted (a write only when there is any)."""
        user = await self._repository.user(name)
        if user is not None and user.name != name:
            user = None  # a database that still folds case: names compare exactly here too
        # the account's counter (its stored name); a name no account has is counted as
        # given, so that a lock-out does not tell which names exist
        keys = [client_key, f"user:{name if user is None else user.name}"]
        counted = await self._passwords.check(keys)
        principal = await self._password(user, password)
        if principal is None or (refuse_devices and principal.role is Role.DEVICE):
            await self._passwords.failure(keys)
            return None
        if counted:
            await self._passwords.success(keys)
        return principal

    async def staff(
        self, authorization: str | None, client: str, *, admin: bool, read_only: bool = False
    ) -> Principal:
        """An uploader (or admin; or, when ``read_only``, a viewer) from an ``Authorization``
        header; raises 401/403/429."""
        scheme, _, credentials = (authorization or "").partition(" ")
        scheme = scheme.lower()
        credentials = credentials.strip()
        if scheme not in ("basic", "bearer") or not credentials:
            raise AuthenticationRequired("this endpoint needs HTTP Basic or bearer credentials")
        if len(credentials) > _MAX_CREDENTIAL:
            raise AuthenticationRequired("credentials too long")
        client_key = f"client:{client}"
        if scheme == "bearer":
            self._throttle.check([client_key])
            principal = await self._token(credentials)
            if principal is None:
                self._throttle.failure([client_key])
                raise AuthenticationRequired("wrong user name, password or token")
            self._throttle.success([client_key])
        else:
            principal = await self._user_password(client_key, *_decode_basic(credentials))
            if principal is None:
                raise AuthenticationRequired("wrong user name, password or token")
        if principal.role is Role.DEVICE:
            raise Forbidden("device tokens cannot upload or administer")
        if principal.role is Role.VIEWER and not read_only:
            raise Forbidden(f"{principal.name!r} is a viewer; this needs an uploader or admin")
        if admin and principal.role is not Role.ADMIN:
            raise Forbidden(f"{principal.name!r} is an {principal.role.value}; this needs admin")
        return principal

    async def device(
        self, authorization: str | None, client: str, device_type: str
    ) -> Principal | None:
        """A device allowed to fetch ``device_type`` releases (``None`` in open mode)."""
        if self.device_mode is DeviceAuthMode.OPEN:
            return None
        scheme, _, token = (authorization or "").partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or not token or len(token) > _MAX_CREDENTIAL:
            raise AuthenticationRequired("device endpoints need a bearer token", basic=False)
        client_key = f"client:{client}"
        self._throttle.check([client_key])
        principal = await self._token(token)
        if principal is None:
            self._throttle.failure([client_key])
            raise AuthenticationRequired("unknown or revoked token", basic=False)
        if principal.role is Role.ADMIN:
            return principal
        if principal.role is not Role.DEVICE or principal.device_type != device_type:
            raise Forbidden(f"this token is not valid for device type {device_type!r}")
        if self.device_mode is DeviceAuthMode.DEVICE_TOKEN and not principal.per_device:
            raise Forbidden("this server needs a per-device token, not a device-type token")
        return principal


def _verify(stored: str, password: str) -> bool:
    try:
        return _HASHER.verify(stored, password)
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False


def _decode_basic(credentials: str) -> tuple[str, str]:
    try:
        decoded = base64.b64decode(credentials, validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError, ValueError):
        raise AuthenticationRequired("malformed HTTP Basic credentials") from None
    name, colon, password = decoded.partition(":")
    if not colon:
        raise AuthenticationRequired("malformed HTTP Basic credentials")
    try:
        check_name("user", name)
    except InputError:
        raise AuthenticationRequired("wrong user name, password or token") from None
    return name, password
