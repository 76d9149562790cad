"""Leader election: exactly one process runs the broadcast scheduler and sender.

PostgreSQL: a session-level advisory lock (`pg_try_advisory_lock`) held on a dedicated
connection for as long as the process leads; the lock goes with the connection, so a killed
leader frees it at once. SQLite: an exclusive `flock` on a file next to the database, which the
kernel also releases when the process dies (a bot process and `tinbao broadcast send` on the
same file cannot both send).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections.abc import Awaitable, Callable
from typing import Any

from sqlalchemy import NullPool, text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine

from storage.db import is_sqlite

log = logging.getLogger(__name__)

# "tinbao-b" as a 64-bit integer: advisory lock keys share one space per database.
LOCK_KEY = int.from_bytes(b"tinbao-b", "big") & 0x7FFF_FFFF_FFFF_FFFF


class LeaderLock:
    """A lock at most one process holds; `try_acquire` never waits."""

    def __init__(self, url: str, *, key: int = LOCK_KEY) -> None:
        self.url = url
        self.key = key
        self._engine: AsyncEngine | None = None
        self._connection: AsyncConnection | None = None
        self._fd: int | None = None
        self._held = False

    @property
    def held(self) -> bool:
        """Whether this process believes it leads (see `still_held`)."""
        return self._held

    async def try_acquire(self) -> bool:
        """Take the lock if it is free; True when this process now leads."""
        if self._held:
            return True
        if is_sqlite(self.url):
            self._held = self._flock()
        else:
            self._held = await self._advisory_lock()
        return self._held

    async def still_held(self) -> bool:
        """Check the lock is still ours (the PostgreSQL connection may have dropped)."""
        if not self._held:
            return False
        if self._connection is None:
            return True  # a file lock lasts as long as the process
        try:
            await self._connection.execute(text("SELECT 1"))
        except Exception:  # any failure means the session, and with it the lock, is gone
            log.warning("leader lock connection lost; stepping down", exc_info=True)
            await self.release()
            return False
        return True

    async def release(self) -> None:
        """Give the lock up (closing the connection or file frees it)."""
        self._held = False
        if self._connection is not None:
            with contextlib.suppress(Exception):
                await self._connection.close()
            self._connection = None
        if self._engine is not None:
            await self._engine.dispose()
            self._engine = None
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    async def _advisory_lock(self) -> bool:
        """Try pg_try_advisory_lock on a connection of our own, kept open between tries."""
        if self._engine is None:
            # Outside the pool: the pool may recycle or pre-ping connections, and the lock must
            # live exactly as long as this one connection.
            self._engine = create_async_engine(self.url, poolclass=NullPool)
        try:
            if self._connection is None:
                connection = await self._engine.connect()
                # Autocommit: an idle open transaction would hold back VACUUM for the whole
                # time this process leads; the session-level lock needs no transaction.
                self._connection = await connection.execution_options(isolation_level="AUTOCOMMIT")
            result = await self._connection.execute(
                text("SELECT pg_try_advisory_lock(:key)"), {"key": self.key}
            )
            acquired = bool(result.scalar())
        except Exception:
            log.warning("cannot reach the database to elect a leader", exc_info=True)
            await self.release()
            return False
        # Not acquired: the connection stays open for the next try. Opening one per try (every
        # 10 s per duty on each follower) cost a follower ~2% of its CPU under load in
        # bench/serve.py (asyncpg's handshake and type setup); an idle autocommit connection
        # holds nothing.
        return acquired

    def _flock(self) -> bool:
        """Try an exclusive flock on a file beside the database; in memory, always lead."""
        import fcntl

        path = _sqlite_path(self.url)
        if path is None:
            return True
        # One file per lock key: the outreach and maintenance duties are elected separately.
        suffix = ".leader" if self.key == LOCK_KEY else f".{self.key:x}.leader"
        fd = os.open(f"{path}{suffix}", os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return False
        self._fd = fd
        return True


async def hold_elections(
    lock: LeaderLock,
    *,
    duty: str,
    lead: Callable[[], Awaitable[None]],
    stopped: asyncio.Event,
    pause: Callable[[float], Awaitable[None]],
    retry: float,
    on_step_down: Callable[[], None] | None = None,
) -> None:
    """Try to lead every `retry` seconds; run `lead` until it returns, fails or stop is asked."""
    while not stopped.is_set():
        if await lock.try_acquire():
            try:
                await lead()
            except Exception:
                # A crashed duty must not keep the lock: another process may do better.
                log.exception("%s leader failed; stepping down", duty)
            finally:
                await lock.release()
                if on_step_down is not None:
                    on_step_down()
        await pause(retry)


def _sqlite_path(url: str) -> str | None:
    """The file of a SQLite URL, or None for an in-memory database."""
    database: Any = make_url(url).database
    if not database or database == ":memory:" or str(database).startswith("file::memory:"):
        return None
    return str(database)
