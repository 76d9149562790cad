"""Fixed-window flood counters keyed by a user HMAC, kept apart from tips."""

from __future__ import annotations

from datetime import datetime, timedelta
from functools import cache
from typing import Any

from sqlalchemy import bindparam, delete
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlmodel import col
from sqlmodel.ext.asyncio.session import AsyncSession

from storage.db import Database
from storage.models import FloodCounter

# The longest window any counter uses (tips per hour). A counter is only needed while its window
# is open: kept longer, the rows would be a per-citizen timeline whose windows line up with
# `Tip.created_at`, so they are purged as soon as their window has ended.
LONGEST_WINDOW = timedelta(hours=1)


def window_start(now: datetime, window: timedelta) -> datetime:
    """The start of the fixed window that contains `now`."""
    seconds = int(window.total_seconds())
    epoch = int(now.timestamp())
    return datetime.fromtimestamp(epoch - epoch % seconds, tz=now.tzinfo)


@cache
def _upsert(dialect: str) -> Any:
    """Count-one-event upsert for a dialect, built once (it runs on every citizen message)."""
    table = FloodCounter.__table__  # type: ignore[attr-defined]
    insert = pg_insert if dialect == "postgresql" else sqlite_insert
    statement = insert(table).values(
        key=bindparam("key"), bucket=bindparam("bucket"), window_start=bindparam("start"), count=1
    )
    return statement.on_conflict_do_update(
        index_elements=["key", "bucket", "window_start"],
        set_={"count": table.c.count + 1},
    ).returning(table.c.count)


async def hit(
    session: AsyncSession, *, key: str, bucket: str, now: datetime, window: timedelta
) -> int:
    """Count one event in the current window and return the window's count (no commit)."""
    dialect = session.bind.dialect.name if session.bind else "sqlite"
    params = {"key": key, "bucket": bucket, "start": window_start(now, window)}
    result = await session.exec(_upsert(dialect), params=params)
    return int(result.scalar_one())


async def count(
    session: AsyncSession, *, key: str, bucket: str, now: datetime, window: timedelta
) -> int:
    """The current window's count without counting anything."""
    start = window_start(now, window)
    row = await session.get(FloodCounter, (key, bucket, start), populate_existing=True)
    return row.count if row else 0


async def purge_before(session: AsyncSession, before: datetime) -> None:
    """Delete windows that started before `before` (no commit)."""
    await session.exec(delete(FloodCounter).where(col(FloodCounter.window_start) < before))


async def purge_ended(db: Database, now: datetime) -> None:
    """Delete every counter whose window has ended (run by the maintenance leader)."""
    async with db.session() as session:
        await purge_before(session, now - LONGEST_WINDOW)
        await session.commit()
