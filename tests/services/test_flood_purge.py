"""Flood counters are purged once their window has ended (review: they were kept forever)."""

from __future__ import annotations

import asyncio
from datetime import timedelta

from sqlmodel import select

from bot.services import flood
from bot.services.inbox import InboxService
from scheduler.maintenance import MaintenanceRuntime
from storage.db import Database
from storage.models import FloodCounter
from tests.conftest import FakeClock


async def counters(db: Database) -> set[tuple[str, str]]:
    """(key, bucket) of every counter row."""
    async with db.session() as session:
        return {(row.key, row.bucket) for row in (await session.exec(select(FloodCounter))).all()}


async def test_the_maintenance_leader_purges_ended_windows_and_keeps_open_ones(
    db: Database, clock: FakeClock
) -> None:
    now, hour, minute = clock.now, timedelta(hours=1), timedelta(minutes=1)
    async with db.session() as session:
        # A citizen's tip two hours ago and a message an hour ago: both windows have ended.
        await flood.hit(session, key="old", bucket="tip", now=now - 2 * hour, window=hour)
        await flood.hit(session, key="old", bucket="msg", now=now - hour - minute, window=minute)
        # This hour's tip window is still open: it must stay.
        await flood.hit(session, key="new", bucket="tip", now=now, window=hour)
        await session.commit()
    runtime = MaintenanceRuntime(
        db=db,
        inbox=InboxService(db=db, clock=lambda: clock.now),
        retention_days=90,
        clock=lambda: clock.now,
        deadline_interval=0.05,
        leader_retry=0.05,
    )
    await runtime.start()
    try:
        for _ in range(200):
            if await counters(db) == {("new", "tip")}:
                break
            await asyncio.sleep(0.05)
    finally:
        await runtime.stop()
    assert await counters(db) == {("new", "tip")}
