"""SQLite for the async engine: pragmas, BEGIN IMMEDIATE, and few thread hand-offs.

aiosqlite runs every call (cursor, execute, fetch, close, commit) on a worker thread and hands
the result back through the event loop. On the 2-vCPU machines tinbao is measured on, one such
hand-off costs about 0.2 ms of CPU, and a citizen's update made about 25 of them: more than
half of the intake service's cost (docs/benchmarks.md, "Intake").

Every tinbao transaction on SQLite starts with BEGIN IMMEDIATE, i.e. takes the database's write
lock up front. In WAL mode a connection that holds that lock never waits for another one: readers
do not block it and no other writer can hold the lock. So while a connection is inside its
transaction its statements cannot block on a lock, and they run directly on the event loop
(microseconds each). What can wait stays on the worker thread: BEGIN itself (another process may
hold the lock, up to the busy timeout), COMMIT (it may checkpoint the WAL and fsync), connecting,
closing, and anything outside a transaction.

The price: a long statement (planning a broadcast to many thousands of subscribers) now holds
the event loop as well as the lock. On SQLite that lock already holds every other update's
transaction, so only Bot API traffic waits longer; deployments that size belong on PostgreSQL.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from typing import Any

import aiosqlite
from sqlalchemy.engine import make_url

BUSY_TIMEOUT_MS = 10_000
# aiosqlite's default; rows fetched per hand-off when iterating a cursor.
_ITER_CHUNK_SIZE = 64


class LockHolderConnection(aiosqlite.Connection):
    """An aiosqlite connection that runs calls on the event loop while it holds the write lock.

    Relies on aiosqlite's `_execute(fn, *args)`, the one funnel of every call to the worker
    thread (pinned to aiosqlite 0.22 in pyproject.toml; tests/storage/test_sqlite.py checks
    which thread runs what).
    """

    async def _execute(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """Run fn here when it cannot wait for a lock, else on the worker thread."""
        if self._runs_inline(fn):
            return fn(*args, **kwargs)
        return await super()._execute(fn, *args, **kwargs)

    def _runs_inline(self, fn: Callable[..., Any]) -> bool:
        connection = self._connection
        if connection is None:
            return False
        owner = getattr(fn, "__self__", None)
        name = getattr(fn, "__name__", "")
        # Making or closing a cursor touches no file and takes no lock; neither does a rollback
        # (a no-op outside a transaction, as when the pool resets a returned connection).
        if (owner is connection and name in ("cursor", "rollback")) or (
            isinstance(owner, sqlite3.Cursor) and name == "close"
        ):
            return True
        if not connection.in_transaction:
            return False
        # Inside our write transaction: everything but COMMIT (checkpoint, fsync) and close.
        return not (owner is connection and name in ("commit", "close"))


def connect_holding_lock(database: str, **kwargs: Any) -> LockHolderConnection:
    """Like `aiosqlite.connect`, for a LockHolderConnection usable from the loop thread too."""
    # Calls alternate between the loop and the worker thread, never overlap (aiosqlite awaits
    # each), which sqlite3's serialized mode allows once the same-thread check is off.
    kwargs["check_same_thread"] = False

    def connector() -> sqlite3.Connection:
        return sqlite3.connect(database, **kwargs)

    connection = LockHolderConnection(connector, _ITER_CHUNK_SIZE)
    # Like SQLAlchemy's own aiosqlite connect: a forgotten connection must not keep the process.
    connection._thread.daemon = True
    return connection


def async_creator(url: str, **overrides: Any) -> Callable[[], LockHolderConnection]:
    """The engine's `async_creator`: the URL's own connect arguments, plus overrides."""
    parsed = make_url(url)
    args, kwargs = parsed.get_dialect()().create_connect_args(parsed)
    kwargs.update(overrides)

    def create() -> LockHolderConnection:
        return connect_holding_lock(*args, **kwargs)

    return create


def set_pragmas(dbapi_connection: Any, _record: Any) -> None:
    """Set WAL, FULL sync and a busy timeout so concurrent writers wait instead of failing."""
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    # FULL: every commit is on disk before it returns, so a tip the citizen was told is saved
    # survives a power cut (NORMAL in WAL mode may lose the last commits). Its cost is one
    # fsync per commit: docs/benchmarks.md, "SQLite durability".
    cursor.execute("PRAGMA synchronous=FULL")
    cursor.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()
    # Let SQLAlchemy, not the driver, open transactions, so `begin_immediate` can take the write
    # lock up front: a deferred transaction that reads and then writes fails at once with
    # "database is locked" when another writer got in between, busy timeout or not.
    dbapi_connection.isolation_level = None


def begin_immediate(connection: Any) -> None:
    """Start every SQLite transaction with BEGIN IMMEDIATE (see `set_pragmas`)."""
    connection.exec_driver_sql("BEGIN IMMEDIATE")
