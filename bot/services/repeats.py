"""Webhook deliveries already taken: a platform's repeat of an event is handled once.

The row key is a keyed hash of the platform's message id (`Keyring.inbound_key`), so the table
holds nothing that joins to a person or a tip; rows are purged after REPEAT_WINDOW.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import delete
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlmodel import col
from sqlmodel.ext.asyncio.session import AsyncSession

from storage.db import Database
from storage.models import InboundSeen

# Platforms repeat within seconds to minutes; a day is far beyond any retry schedule.
REPEAT_WINDOW = timedelta(days=1)


async def record(session: AsyncSession, key: str, now: datetime) -> bool:
    """Record a delivery in the caller's transaction; False when it was recorded before."""
    dialect = session.bind.dialect.name if session.bind else "sqlite"
    insert = pg_insert if dialect == "postgresql" else sqlite_insert
    statement = (
        insert(InboundSeen)
        .values(key=key, seen_at=now)
        .on_conflict_do_nothing(index_elements=["key"])
    )
    result = await session.exec(statement)
    return bool(result.rowcount)


async def first_delivery(db: Database, key: str, now: datetime) -> bool:
    """Record a delivery; False when it was recorded before (a repeat to drop)."""
    async with db.session() as session:
        first = await record(session, key, now)
        await session.commit()
    return first


async def purge(db: Database, now: datetime) -> int:
    """Delete the records older than REPEAT_WINDOW; return how many."""
    async with db.session() as session:
        result = await session.exec(
            delete(InboundSeen).where(col(InboundSeen.seen_at) < now - REPEAT_WINDOW)
        )
        await session.commit()
    return int(result.rowcount or 0)
