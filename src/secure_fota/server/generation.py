"""The cross-worker clock that tells a worker whether its caches may still be trusted.

Every change that devices or credentials must see (upload, yank, unyank, delete, user and
token changes) bumps ``server_state.generation`` in its own transaction. A worker reads that
counter at most once per ``cache_ttl`` seconds (0.5 s by default) and tells its listeners (the
release caches, the token cache) when it moved, so a change is visible on every worker within
``cache_ttl`` plus one query.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from typing import Final

from secure_fota.server.db.repository import Repository
from secure_fota.server.errors import Unavailable

__all__ = ["FAILURE_BACKOFF", "GenerationWatcher"]

_log = logging.getLogger("secure_fota.server")

#: seconds during which a failed generation check is not retried
FAILURE_BACKOFF: Final = 0.5


class GenerationWatcher:
    """Knows whether this worker's caches may still be trusted."""

    def __init__(
        self,
        repository: Repository,
        ttl: float,
        *,
        clock: Callable[[], float] = time.monotonic,
        refresh_ahead: float = 0.0,
    ) -> None:
        self._repository = repository
        self._ttl = ttl
        self._clock = clock
        #: re-read the counter in the background this many seconds before the last check
        #: expires, so that requests never wait for it while the database answers in time
        self._ahead = min(max(refresh_ahead, 0.0), ttl)
        self._task: asyncio.Task[None] | None = None
        self._valid_until = 0.0
        self._generation: int | None = None
        self._lock = asyncio.Lock()
        self._listeners: list[Callable[[], None]] = []
        #: after a failed check, answer at once (503) for a moment instead of queueing every
        #: request behind another connection attempt to an unreachable database
        self._failed_until = 0.0

    @property
    def ttl(self) -> float:
        return self._ttl

    def subscribe(self, listener: Callable[[], None]) -> None:
        self._listeners.append(listener)

    def fresh(self) -> bool:
        return self._clock() < self._valid_until

    async def ensure_fresh(self) -> None:
        """Return at once while the last check is younger than ``ttl``; else re-read the
        counter (one query, shared by every request waiting at that moment)."""
        now = self._clock()
        if now < self._valid_until:
            if (
                self._ahead
                and now >= self._valid_until - self._ahead
                and self._task is None
                and not self._lock.locked()
            ):
                self._task = asyncio.get_running_loop().create_task(self._refresh_ahead())
            return
        if now < self._failed_until:
            raise Unavailable("database unavailable (recent check failed)")
        async with self._lock:
            if self._clock() < self._valid_until:
                return
            if self._clock() < self._failed_until:
                raise Unavailable("database unavailable (recent check failed)")
            await self._check()

    async def _check(self) -> None:
        """Read the counter (the caller holds the lock)."""
        started = self._clock()
        try:
            generation = await self._repository.generation()
        except Unavailable:
            self._failed_until = self._clock() + FAILURE_BACKOFF
            raise
        if generation != self._generation:
            self._generation = generation
            for listener in self._listeners:
                listener()
        # measured from before the query: a check that began before a commit expires
        # no later than ttl after that commit
        self._valid_until = started + self._ttl

    async def _refresh_ahead(self) -> None:
        """The check, started while the last one is still valid (answers meanwhile come from
        the caches, which that check still covers: the guarantee does not change)."""
        try:
            async with self._lock:
                if self._clock() < self._valid_until - self._ahead:
                    return  # checked meanwhile
                await self._check()
        except Unavailable:
            pass  # recorded in _failed_until; requests see it once the last check expires
        except Exception:  # noqa: BLE001 -- a background task must not die unretrieved
            _log.exception("background generation check failed")
        finally:
            self._task = None

    async def close(self) -> None:
        """Stop a background check in flight (at shutdown)."""
        task = self._task
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    def invalidate(self) -> None:
        """Force a check on the next request (after this worker changed something)."""
        self._valid_until = 0.0
