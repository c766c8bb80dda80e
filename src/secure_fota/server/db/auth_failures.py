"""Failed sign-ins counted in the database, so that every worker process and every host behind
the load balancer counts the same guesses (``server/auth.py``'s :class:`SharedFailureThrottle`).

A key (``user:NAME`` or ``client:ADDRESS``) has a fixed window that opens at its first failure;
the failure that reaches the key's limit within the window locks the key until
``locked_until`` and starts a new window. Times are Unix milliseconds of the workers' clocks.
Rows whose window and lock have both ended are deleted as new failures come in.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Final

from sqlalchemy import and_, delete, func, select
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from secure_fota.server.db.models import AuthFailure
from secure_fota.server.db.repository import transaction
from secure_fota.server.errors import Unavailable

__all__ = ["AuthFailureStore"]

#: attempts of one failure's transaction when concurrent failures of the same key collide (a
#: duplicate first row, an InnoDB deadlock between two gap locks)
_ATTEMPTS: Final = 4


class AuthFailureStore:
    def __init__(self, engine: AsyncEngine) -> None:
        self._sessions = async_sessionmaker(engine, expire_on_commit=False)

    async def state(self, keys: Sequence[str], now: int) -> tuple[int | None, bool]:
        """The end of the latest lock-out among ``keys`` still running at ``now`` (or None),
        and whether any of them has a row (failures counted, or a lock-out, ended or not)."""
        async with transaction(self._sessions) as session:
            until, rows = (
                await session.execute(
                    select(func.max(AuthFailure.locked_until), func.count()).where(
                        AuthFailure.key.in_(keys)
                    )
                )
            ).one()
        return (int(until) if until is not None and until > now else None), rows > 0

    async def record(
        self, limits: Mapping[str, int], now: int, *, window: int, lockout: int
    ) -> None:
        """Count one failure for each key of ``limits`` (key -> failures that lock it)."""
        keys = sorted(limits)  # one order for every worker: fewer lock waits
        for attempt in range(_ATTEMPTS):
            try:
                async with transaction(self._sessions) as session:
                    await self._record(session, keys, limits, now, window, lockout)
            except (DBAPIError, Unavailable):
                # a concurrent first failure of the same key, or a deadlock: both retried
                # against the rows as they are now; an outage fails the last attempt too
                if attempt == _ATTEMPTS - 1:
                    raise
            else:
                return

    @staticmethod
    async def _record(
        session: AsyncSession,
        keys: list[str],
        limits: Mapping[str, int],
        now: int,
        window: int,
        lockout: int,
    ) -> None:
        rows = {
            row.key: row
            for row in await session.scalars(
                select(AuthFailure).where(AuthFailure.key.in_(keys)).with_for_update()
            )
        }
        for key in keys:
            row = rows.get(key)
            if row is None:
                row = AuthFailure(key=key, window_start=now, failures=0, locked_until=0)
                session.add(row)
            elif now - row.window_start > window:
                row.window_start, row.failures = now, 0
            row.failures += 1
            if row.failures >= limits[key]:
                row.locked_until = now + lockout
                row.window_start, row.failures = now, 0
        await session.flush()
        await session.execute(
            delete(AuthFailure).where(
                and_(
                    AuthFailure.window_start < now - window,
                    AuthFailure.locked_until < now,
                    AuthFailure.key.not_in(keys),
                )
            )
        )

    async def clear(self, keys: Sequence[str], now: int) -> None:
        """Forget the failures of ``keys`` (a successful sign-in); a running lock-out stays."""
        async with transaction(self._sessions) as session:
            await session.execute(
                delete(AuthFailure).where(
                    and_(AuthFailure.key.in_(keys), AuthFailure.locked_until <= now)
                )
            )
