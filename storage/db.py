"""Async engine and sessions for SQLite (embedded default) and PostgreSQL."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker, create_async_engine
from sqlmodel.ext.asyncio.session import AsyncSession

from storage import sqlite


def is_sqlite(url: str) -> bool:
    """Tell whether a database URL points at SQLite."""
    return url.startswith("sqlite")


def create_engine(url: str, **kwargs: Any) -> AsyncEngine:
    """Create the async engine, tuned for concurrent updates on either backend."""
    if is_sqlite(url):
        # One connection per process. Every transaction takes SQLite's write lock up front
        # (BEGIN IMMEDIATE), so a second connection could never work in parallel, only wait in
        # SQLite's busy handler, which polls with sleeps of up to 100 ms: queued on the pool
        # instead, the process's transactions wait in order and start the moment the lock frees.
        # Other processes (a `tinbao sender`, the CLI) still meet the busy timeout.
        kwargs.setdefault("pool_size", 1)
        kwargs.setdefault("max_overflow", 0)
        kwargs.setdefault("async_creator", sqlite.async_creator(url, timeout=30))
        engine = create_async_engine(url, **kwargs)
        event.listen(engine.sync_engine, "connect", sqlite.set_pragmas)
        event.listen(engine.sync_engine, "begin", sqlite.begin_immediate)
        return engine
    # A small fixed pool: a bot's transactions last milliseconds, so five connections carry
    # hundreds a second, and a burst queues on the pool in order. Overflow connections would
    # be opened and closed again on every burst (connect, authenticate, set up codecs, prepare
    # each statement anew): with 20 + 20 the bot spent 40% more CPU per update than with 4 + 0
    # (docs/benchmarks.md, "Intake").
    kwargs.setdefault("pool_size", 5)
    kwargs.setdefault("max_overflow", 0)
    # No pre-ping: on asyncpg it is three round trips (BEGIN, ping, ROLLBACK) per checkout, a
    # third of a citizen update's. A connection found dead fails its one unit of work instead
    # (SQLAlchemy then invalidates the whole pool; the citizen is asked to send again, the
    # outbox sender retries), which happens after a database restart, not per update.
    return create_async_engine(url, **kwargs)


class Database:
    """The engine plus a session factory; one per process."""

    def __init__(self, url: str, **engine_kwargs: Any) -> None:
        self.url = url
        self.engine = create_engine(url, **engine_kwargs)
        self._sessions = async_sessionmaker(
            self.engine, class_=AsyncSession, expire_on_commit=False
        )

    @asynccontextmanager
    async def session(self) -> AsyncIterator[AsyncSession]:
        """Open a session; the caller commits its unit of work."""
        async with self._sessions() as session:
            yield session

    async def dispose(self) -> None:
        """Close every pooled connection."""
        await self.engine.dispose()
