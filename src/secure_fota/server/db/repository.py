"""Every database read and write the server makes; one short transaction per method.

It takes and returns the plain records of :mod:`secure_fota.server.db.records` (one
conversion, :func:`_record`); ORM rows stay in here. Database failures become
:class:`~secure_fota.server.errors.Unavailable` (503), constraint violations
:class:`~secure_fota.errors.ConflictError`; nothing else escapes.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime
from collections.abc import AsyncIterator, Iterator
from typing import TypeVar

from sqlalchemy import and_, case, delete, func, select, update
from sqlalchemy.exc import DBAPIError, IntegrityError, InterfaceError, OperationalError
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from secure_fota.errors import ConflictError, NotFoundError, StorageError
from secure_fota.server.db.models import (
    GENERATION_ROW,
    AuditEvent,
    Base,
    Release,
    ServerState,
    Token,
    UiSession,
    User,
)
from secure_fota.server.db.records import (
    DeviceTypeSummary,
    NewRelease,
    Page,
    ReleaseInfo,
    TokenInfo,
    UiSessionInfo,
    UserInfo,
)
from secure_fota.server.errors import Unavailable

__all__ = ["Repository", "db_errors", "transaction"]

_Record = TypeVar("_Record", ReleaseInfo, UserInfo, TokenInfo)


def _record(kind: type[_Record], row: Base) -> _Record:
    """The plain record of an ORM row (its columns of the same names)."""
    return kind(**{field.name: getattr(row, field.name) for field in dataclasses.fields(kind)})


def _same_content(new: NewRelease, existing: ReleaseInfo) -> bool:
    return all(
        getattr(new, field.name) == getattr(existing, field.name)
        for field in dataclasses.fields(NewRelease)
    )


@contextlib.contextmanager
def db_errors() -> Iterator[None]:
    """Translate driver and connection failures into :class:`Unavailable`."""
    try:
        yield
    except (OperationalError, InterfaceError, OSError, TimeoutError) as exc:
        raise Unavailable(f"database unavailable ({type(exc).__name__})") from None
    except DBAPIError as exc:
        if exc.connection_invalidated:
            raise Unavailable("database connection lost") from None
        raise  # a bug (or a constraint the caller handles), not an outage


@contextlib.asynccontextmanager
async def transaction(sessions: async_sessionmaker[AsyncSession]) -> AsyncIterator[AsyncSession]:
    """One transaction of ``sessions``, committed at the end (rolled back on an exception),
    with driver and connection failures translated (:func:`db_errors`)."""
    with db_errors():
        async with sessions.begin() as session:
            yield session


def _now() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC).replace(microsecond=0)


#: the actor of changes made with direct database access (``fota server user|token ...``)
LOCAL_ACTOR = "local-cli"


class Repository:
    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine
        self._sessions = async_sessionmaker(engine, expire_on_commit=False)

    def _tx(self) -> contextlib.AbstractAsyncContextManager[AsyncSession]:
        return transaction(self._sessions)

    @staticmethod
    def _audit(
        session: AsyncSession, actor: str, action: str, target: str, detail: str = ""
    ) -> None:
        """Write one audit event in the transaction of the change it describes."""
        session.add(
            AuditEvent(
                at=_now(), actor=actor[:64], action=action, target=target[:160], detail=detail[:255]
            )
        )

    @staticmethod
    async def _bump(session: AsyncSession) -> None:
        await session.execute(
            update(ServerState)
            .where(ServerState.id == GENERATION_ROW)
            .values(generation=ServerState.generation + 1)
        )

    # health and caches ------------------------------------------------------------------

    async def ping(self) -> None:
        async with self._tx() as session:
            await session.execute(select(1))

    async def generation(self) -> int:
        async with self._tx() as session:
            value = await session.scalar(
                select(ServerState.generation).where(ServerState.id == GENERATION_ROW)
            )
        if value is None:
            raise StorageError("database is not initialised (run `fota server db upgrade`)")
        return int(value)

    # releases -----------------------------------------------------------------------------

    async def newest(self, device_type: str) -> ReleaseInfo | None:
        async with self._tx() as session:
            result = await session.scalars(
                select(Release)
                .where(
                    Release.device_type == device_type,
                    Release.yanked.is_(False),
                    Release.held.is_(False),
                )
                .order_by(Release.seq.desc())
                .limit(1)
            )
            row = result.first()
        return None if row is None else _record(ReleaseInfo, row)

    async def release(self, device_type: str, seq: int) -> ReleaseInfo | None:
        async with self._tx() as session:
            result = await session.scalars(
                select(Release).where(Release.device_type == device_type, Release.seq == seq)
            )
            row = result.first()
        return None if row is None else _record(ReleaseInfo, row)

    async def releases(self, device_type: str) -> list[ReleaseInfo]:
        async with self._tx() as session:
            result = await session.scalars(
                select(Release).where(Release.device_type == device_type).order_by(Release.seq)
            )
            return [_record(ReleaseInfo, row) for row in result.all()]

    async def device_types(self) -> list[DeviceTypeSummary]:
        # MAX(CASE ...) rather than FILTER (WHERE ...), which MariaDB lacks
        newest = func.max(
            case((and_(Release.yanked.is_(False), Release.held.is_(False)), Release.seq))
        )
        async with self._tx() as session:
            rows = await session.execute(
                select(Release.device_type, newest, func.count())
                .group_by(Release.device_type)
                .order_by(Release.device_type)
            )
            return [DeviceTypeSummary(t, n, c) for t, n, c in rows.all()]

    async def device_type(self, device_type: str) -> DeviceTypeSummary | None:
        """One device type's summary; ``None`` when no release of it was ever stored."""
        newest = func.max(
            case((and_(Release.yanked.is_(False), Release.held.is_(False)), Release.seq))
        )
        async with self._tx() as session:
            rows = await session.execute(
                select(newest, func.count()).where(Release.device_type == device_type)
            )
            found, count = rows.one()
        return DeviceTypeSummary(device_type, found, count) if count else None

    async def newest_per_type(self) -> list[tuple[DeviceTypeSummary, ReleaseInfo | None]]:
        """Every device type, with the newest release every device is offered (neither yanked
        nor held for a rollout), in one query."""
        offered = and_(Release.yanked.is_(False), Release.held.is_(False))
        newest = func.max(case((offered, Release.seq))).label("newest")
        summary = (
            select(Release.device_type, newest, func.count().label("releases"))
            .group_by(Release.device_type)
            .subquery()
        )
        async with self._tx() as session:
            rows = await session.execute(
                select(summary.c.device_type, summary.c.newest, summary.c.releases, Release)
                .outerjoin(
                    Release,
                    and_(
                        Release.device_type == summary.c.device_type,
                        Release.seq == summary.c.newest,
                    ),
                )
                .order_by(summary.c.device_type)
            )
            return [
                (
                    DeviceTypeSummary(t, n, c),
                    None if row is None else _record(ReleaseInfo, row),
                )
                for t, n, c, row in rows.all()
            ]

    async def release_page(
        self,
        *,
        device_type: str | None,
        yanked: bool | None,
        offset: int,
        limit: int,
    ) -> Page[ReleaseInfo]:
        """Releases, newest upload first, filtered and paginated in the database."""
        conditions = []
        if device_type is not None:
            conditions.append(Release.device_type == device_type)
        if yanked is not None:
            conditions.append(Release.yanked.is_(yanked))
        async with self._tx() as session:
            total = await session.scalar(
                select(func.count()).select_from(Release).where(*conditions)
            )
            rows = await session.scalars(
                select(Release)
                .where(*conditions)
                .order_by(Release.uploaded_at.desc(), Release.pk.desc())
                .offset(offset)
                .limit(limit)
            )
            return Page([_record(ReleaseInfo, row) for row in rows.all()], int(total or 0))

    async def add_release(
        self, new: NewRelease, *, uploader: str, held: bool = False
    ) -> tuple[ReleaseInfo, bool]:
        """Insert ``new``; return ``(release, created)``. An identical existing release is an
        idempotent retry (``created`` False); a different one raises ConflictError."""
        try:
            async with self._tx() as session:
                existing = (
                    await session.scalars(
                        select(Release).where(
                            Release.device_type == new.device_type, Release.seq == new.seq
                        )
                    )
                ).first()
                if existing is not None:
                    return self._same_or_conflict(new, _record(ReleaseInfo, existing)), False
                row = Release(
                    **dataclasses.asdict(new),
                    uploaded_at=_now(),
                    uploader=uploader,
                    yanked=False,
                    held=held,
                )
                session.add(row)
                await session.flush()
                self._audit(
                    session,
                    uploader,
                    "upload",
                    f"{new.device_type}/{new.seq}",
                    "held for a rollout" if held else "",
                )
                await self._bump(session)
        except IntegrityError:
            # a concurrent upload of the same (type, id) committed first
            stored = await self.release(new.device_type, new.seq)
            if stored is None:
                raise Unavailable("release insert failed; retry") from None
            return self._same_or_conflict(new, stored), False
        return _record(ReleaseInfo, row), True

    @staticmethod
    def _same_or_conflict(new: NewRelease, existing: ReleaseInfo) -> ReleaseInfo:
        if _same_content(new, existing):
            return existing
        raise ConflictError(
            f"release {new.seq} of device type {new.device_type!r} already exists with "
            "different content; releases are immutable (upload a new id)"
        )

    async def set_yanked(
        self, device_type: str, seq: int, yanked: bool, *, actor: str = LOCAL_ACTOR
    ) -> ReleaseInfo:
        async with self._tx() as session:
            row = (
                await session.scalars(
                    select(Release)
                    .where(Release.device_type == device_type, Release.seq == seq)
                    .with_for_update()
                )
            ).first()
            if row is None:
                raise NotFoundError(f"device type {device_type!r} has no release {seq}")
            if row.yanked != yanked:
                row.yanked = yanked
                self._audit(session, actor, "yank" if yanked else "unyank", f"{device_type}/{seq}")
                await self._bump(session)
            return _record(ReleaseInfo, row)

    async def delete_release(
        self, device_type: str, seq: int, *, actor: str = LOCAL_ACTOR
    ) -> ReleaseInfo:
        async with self._tx() as session:
            row = (
                await session.scalars(
                    select(Release).where(Release.device_type == device_type, Release.seq == seq)
                )
            ).first()
            if row is None:
                raise NotFoundError(f"device type {device_type!r} has no release {seq}")
            await session.execute(delete(Release).where(Release.pk == row.pk))
            self._audit(session, actor, "delete", f"{device_type}/{seq}")
            await self._bump(session)
            return _record(ReleaseInfo, row)

    async def referenced_blobs(self) -> set[str]:
        async with self._tx() as session:
            manifests = await session.scalars(select(Release.manifest_sha256))
            found = set(manifests.all())
            binaries = await session.scalars(select(Release.binary_sha256))
            found.update(binaries.all())
            return found

    # users and tokens ---------------------------------------------------------------------

    async def user(self, name: str) -> UserInfo | None:
        async with self._tx() as session:
            row = await session.get(User, name)
        return None if row is None else _record(UserInfo, row)

    async def users(self) -> list[UserInfo]:
        async with self._tx() as session:
            rows = (await session.scalars(select(User).order_by(User.name))).all()
            return [_record(UserInfo, row) for row in rows]

    async def add_user(
        self,
        name: str,
        password_hash: str,
        role: str,
        *,
        replace: bool,
        actor: str = LOCAL_ACTOR,
    ) -> None:
        try:
            async with self._tx() as session:
                existing = await session.get(User, name)
                if existing is not None:
                    if not replace:
                        raise ConflictError(f"user {name!r} already exists (use --replace)")
                    # a new password or role ends the user's dashboard sessions
                    await session.execute(delete(UiSession).where(UiSession.user_name == name))
                    existing.password_hash = password_hash
                    existing.role = role
                    existing.disabled = False
                else:
                    session.add(
                        User(
                            name=name,
                            password_hash=password_hash,
                            role=role,
                            created_at=_now(),
                            disabled=False,
                        )
                    )
                self._audit(session, actor, "user-add", name, f"role {role}")
                await self._bump(session)
        except IntegrityError:
            raise ConflictError(f"user {name!r} already exists") from None

    async def remove_user(self, name: str, *, actor: str = LOCAL_ACTOR) -> None:
        async with self._tx() as session:
            result = await session.execute(delete(User).where(User.name == name))
            if not result.rowcount:  # type: ignore[attr-defined]
                raise NotFoundError(f"no user {name!r}")
            await session.execute(delete(UiSession).where(UiSession.user_name == name))
            self._audit(session, actor, "user-remove", name)
            await self._bump(session)

    async def token_by_digest(self, digest: str) -> TokenInfo | None:
        async with self._tx() as session:
            row = (await session.scalars(select(Token).where(Token.token_sha256 == digest))).first()
        return None if row is None else _record(TokenInfo, row)

    async def tokens(self) -> list[TokenInfo]:
        async with self._tx() as session:
            rows = (await session.scalars(select(Token).order_by(Token.name))).all()
            return [_record(TokenInfo, row) for row in rows]

    async def add_token(
        self,
        name: str,
        digest: str,
        role: str,
        *,
        device_type: str | None,
        per_device: bool,
        actor: str = LOCAL_ACTOR,
    ) -> None:
        try:
            async with self._tx() as session:
                if await session.get(Token, name) is not None:
                    raise ConflictError(f"a token named {name!r} already exists")
                session.add(
                    Token(
                        name=name,
                        token_sha256=digest,
                        role=role,
                        device_type=device_type,
                        per_device=per_device,
                        created_at=_now(),
                        revoked=False,
                    )
                )
                self._audit(session, actor, "token-create", name, f"role {role}")
                await self._bump(session)
        except IntegrityError:
            raise ConflictError(f"a token named {name!r} already exists") from None

    async def revoke_token(self, name: str, *, actor: str = LOCAL_ACTOR) -> None:
        async with self._tx() as session:
            row = await session.get(Token, name)
            if row is None:
                raise NotFoundError(f"no token {name!r}")
            row.revoked = True
            self._audit(session, actor, "token-revoke", name)
            await self._bump(session)

    # dashboard sessions ---------------------------------------------------------------------

    async def add_ui_session(
        self,
        digest: str,
        user_name: str,
        csrf_token: str,
        *,
        lifetime: datetime.timedelta,
        client: str,
    ) -> None:
        """Store a new session (and drop every expired one); audited with the client address."""
        now = _now()
        async with self._tx() as session:
            await session.execute(delete(UiSession).where(UiSession.expires_at < now))
            self._audit(session, user_name, "ui-sign-in", user_name, f"from {client}")
            session.add(
                UiSession(
                    id_sha256=digest,
                    user_name=user_name,
                    csrf_token=csrf_token,
                    created_at=now,
                    expires_at=now + lifetime,
                )
            )

    async def ui_session(self, digest: str) -> UiSessionInfo | None:
        """The unexpired session with this id digest whose user exists and is enabled."""
        async with self._tx() as session:
            row = (
                await session.execute(
                    select(UiSession, User.role)
                    .join(User, User.name == UiSession.user_name)
                    .where(
                        UiSession.id_sha256 == digest,
                        UiSession.expires_at > _now(),
                        User.disabled.is_(False),
                    )
                )
            ).first()
        if row is None:
            return None
        found, role = row
        return UiSessionInfo(found.user_name, role, found.csrf_token, found.expires_at)

    async def delete_ui_session(self, digest: str, *, user_name: str) -> None:
        """End a session (signing out; audited)."""
        async with self._tx() as session:
            await session.execute(delete(UiSession).where(UiSession.id_sha256 == digest))
            self._audit(session, user_name, "ui-sign-out", user_name)
