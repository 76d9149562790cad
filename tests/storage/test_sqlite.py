"""SQLite connections: which thread runs what, and that concurrent writers still serialize."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from pathlib import Path
from typing import Any

from sqlalchemy import event, text

from storage.db import Database
from storage.sqlite import connect_holding_lock


def _register_thread_id(dbapi_connection: Any, _record: Any) -> None:
    """A SQL function telling which thread runs the statement."""
    dbapi_connection.create_function("thread_id", 0, threading.get_ident)


async def test_only_statements_holding_the_write_lock_run_on_the_loop(tmp_path: Path) -> None:
    connection = await connect_holding_lock(str(tmp_path / "t.db"))
    try:
        await connection.create_function("thread_id", 0, threading.get_ident)
        connection.isolation_level = None  # transactions only where we open them
        loop_thread = threading.get_ident()

        async def thread_of_select() -> int:
            async with connection.execute("SELECT thread_id()") as cursor:
                row = await cursor.fetchone()
            assert row is not None
            return int(row[0])

        outside = await thread_of_select()
        await connection.execute("BEGIN IMMEDIATE")
        inside = await thread_of_select()
        await connection.commit()
        after = await thread_of_select()
    finally:
        await connection.close()
    assert inside == loop_thread
    assert outside != loop_thread and after != loop_thread


async def test_session_statements_run_on_the_loop(tmp_path: Path) -> None:
    db = Database(f"sqlite+aiosqlite:///{tmp_path / 't.db'}")
    event.listen(db.engine.sync_engine, "connect", _register_thread_id)
    try:
        async with db.session() as session:
            result = await session.exec(text("SELECT thread_id()"))  # type: ignore[call-overload]
            assert result.scalar_one() == threading.get_ident()
            await session.commit()
    finally:
        await db.dispose()


async def test_loop_keeps_running_while_another_process_holds_the_lock(tmp_path: Path) -> None:
    path = tmp_path / "t.db"
    db = Database(f"sqlite+aiosqlite:///{path}")
    try:
        async with db.engine.begin() as connection:
            await connection.execute(text("CREATE TABLE n (v INTEGER)"))
        other = sqlite3.connect(path, isolation_level=None)  # "another process"
        other.execute("BEGIN IMMEDIATE")

        async def write() -> None:
            async with db.engine.begin() as connection:
                await connection.execute(text("INSERT INTO n VALUES (1)"))

        writer = asyncio.create_task(write())
        ticks = 0
        for _ in range(20):  # the writer waits for the lock in its thread, not on the loop
            await asyncio.sleep(0.01)
            ticks += 1
        assert not writer.done() and ticks == 20
        other.execute("COMMIT")
        other.close()
        await asyncio.wait_for(writer, 10)
        async with db.engine.connect() as connection:
            assert (await connection.execute(text("SELECT count(*) FROM n"))).scalar_one() == 1
    finally:
        await db.dispose()


async def test_interleaved_read_modify_write_from_two_engines_loses_nothing(
    tmp_path: Path,
) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 't.db'}"
    first, second = Database(url), Database(url)
    try:
        async with first.engine.begin() as connection:
            await connection.execute(text("CREATE TABLE counter (v INTEGER)"))
            await connection.execute(text("INSERT INTO counter VALUES (0)"))

        async def increment(db: Database, times: int) -> None:
            for _ in range(times):
                async with db.session() as session:
                    result = await session.exec(text("SELECT v FROM counter"))  # type: ignore[call-overload]
                    value = result.scalar_one()
                    await asyncio.sleep(0)  # let every other task run while we hold the lock
                    await session.exec(  # type: ignore[call-overload]
                        text("UPDATE counter SET v = :v"), params={"v": value + 1}
                    )
                    await session.commit()

        await asyncio.gather(*(increment(db, 10) for db in (first, second) for _ in range(8)))
        async with first.engine.connect() as connection:
            total = (await connection.execute(text("SELECT v FROM counter"))).scalar_one()
        assert total == 2 * 8 * 10
    finally:
        await first.dispose()
        await second.dispose()
