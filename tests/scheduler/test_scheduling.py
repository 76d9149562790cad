"""Firing and planning: audiences, run uniqueness, misfires, quiet hours, a controlled clock."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import datetime
from typing import Any

import pytest
from sqlalchemy import func
from sqlmodel import col, select

from bot.services import broadcasts as svc
from bot.services.anonymity import Keyring
from scheduler.broadcasts import OutreachRuntime, fire_due, plan_run, plan_unplanned, start_run
from storage.db import Database
from storage.models import Broadcast, BroadcastRun, Delivery
from tests.conftest import FakeClock
from tests.scheduler.conftest import (
    BA_DINH,
    KHA_CUU,
    SECRET,
    TAN_HOA,
    TZ,
    NewSubscriber,
    add_subscribers,
    local,
    spec,
    telegram_channel,
)


async def create(db: Database, now: datetime, **changes: object) -> Broadcast:
    """Create a broadcast from `spec(**changes)`."""
    async with db.session() as session:
        return await svc.create_broadcast(
            session, spec=spec(**changes), staff_id=None, now=now, tz=TZ
        )


async def runs_of(db: Database, broadcast_id: int | None) -> list[BroadcastRun]:
    """A broadcast's runs, oldest first."""
    async with db.session() as session:
        statement = (
            select(BroadcastRun)
            .where(BroadcastRun.broadcast_id == broadcast_id)
            .order_by(col(BroadcastRun.scheduled_for))
        )
        return list((await session.exec(statement)).all())


async def row(db: Database, broadcast_id: int | None) -> Broadcast:
    """A broadcast as stored now."""
    async with db.session() as session:
        found = await session.get(Broadcast, broadcast_id)
        assert found is not None
        return found


@pytest.fixture
async def runtime(db: Database, clock: FakeClock) -> AsyncIterator[OutreachRuntime]:
    """A runtime driven by tick(now) only: never started, so nothing fires on real time."""
    under_test = OutreachRuntime(
        db=db,
        keyring=Keyring(SECRET),
        channels=telegram_channel("http://127.0.0.1:9"),  # never called: these tests do not send
        timezone=TZ,
        clock=clock,
    )
    yield under_test
    await under_test.stop()


async def test_planning_counts_per_audience(
    db: Database, keyring: Keyring, topic_ids: tuple[str, str]
) -> None:
    drugs, traffic = topic_ids
    people = [NewSubscriber(KHA_CUU)] * 5 + [NewSubscriber(KHA_CUU, topics=(drugs,))] * 3
    people += [NewSubscriber(TAN_HOA, topics=(traffic,))] * 4
    people += [NewSubscriber(BA_DINH)] * 2 + [NewSubscriber(BA_DINH, active=False)] * 7
    await add_subscribers(db, keyring, people)
    now = local(2026, 11, 22, 10)
    cases: list[tuple[dict[str, Any], int]] = [
        ({}, 14),
        ({"audience": "province", "audience_code": 25}, 12),
        ({"audience": "commune", "audience_code": KHA_CUU}, 8),
        ({"audience": "commune", "audience_code": BA_DINH}, 2),
        ({"audience": "topic", "audience_topic": drugs}, 10),
        ({"audience": "topic", "audience_topic": traffic}, 11),
        ({"audience": "province", "audience_code": 25, "topic_id": traffic, "text": None}, 9),
    ]
    for changes, expected in cases:
        broadcast = await create(db, now, **changes)
        async with db.session() as session:
            size = await svc.audience_size(session, spec(**changes))
        (run_id,) = await fire_due(db, now=now, tz=TZ, broadcast_ids=[broadcast.id or 0])
        (run,) = await runs_of(db, broadcast.id)
        assert (run.id, run.status, run.planned, size) == (run_id, "sending", expected, expected)
        assert (run.scheduled_for, run.started_at) == (now, now)
        assert (await row(db, broadcast.id)).status == "finished"
    async with db.session() as session:
        total = (await session.exec(select(func.count()).select_from(Delivery))).one()
    assert total == sum(expected for _, expected in cases)


async def test_an_empty_audience_makes_a_finished_run(db: Database) -> None:
    now = local(2026, 11, 22, 10)
    broadcast = await create(db, now)
    await fire_due(db, now=now, tz=TZ)
    (run,) = await runs_of(db, broadcast.id)
    assert (run.status, run.planned, run.finished_at) == ("done", 0, now)


async def test_a_run_is_unique_per_broadcast_and_time(db: Database, keyring: Keyring) -> None:
    await add_subscribers(db, keyring, [NewSubscriber()] * 3)
    now = local(2026, 11, 22, 10)
    broadcast = await create(db, now)
    stale = await row(db, broadcast.id)
    # Two leaders (split brain) fire the same slot at once; then a retry with a stale row.
    results = await asyncio.gather(
        fire_due(db, now=now, tz=TZ), fire_due(db, now=now, tz=TZ), return_exceptions=True
    )
    assert not [r for r in results if isinstance(r, BaseException)], results
    assert await start_run(db, broadcast=stale, now=now, tz=TZ) is None
    (run,) = await runs_of(db, broadcast.id)
    assert run.planned == 3
    async with db.session() as session:
        count = (await session.exec(select(func.count()).select_from(Delivery))).one()
    assert count == 3


async def test_a_run_left_planning_is_planned_once_by_the_next_leader(
    db: Database, keyring: Keyring
) -> None:
    await add_subscribers(db, keyring, [NewSubscriber()] * 4)
    now = local(2026, 11, 22, 10)
    broadcast = await create(db, now)
    run_id = await start_run(db, broadcast=await row(db, broadcast.id), now=now, tz=TZ)
    assert run_id is not None  # the crash: created, never planned
    assert await plan_unplanned(db, now=now) == [run_id]
    assert await plan_run(db, run_id=run_id, now=now) == 4  # again: nothing more
    async with db.session() as session:
        count = (await session.exec(select(func.count()).select_from(Delivery))).one()
    assert count == 4


async def test_recurring_broadcast_fires_on_time(
    db: Database, runtime: OutreachRuntime, clock: FakeClock
) -> None:
    clock.now = local(2026, 11, 22, 10)
    broadcast = await create(db, clock.now, trigger="cron", cron=svc.cron_daily(8, 0))
    job = f"broadcast-{broadcast.id}"
    assert await runtime.tick(clock.now) == []
    assert runtime.job_times() == {job: local(2026, 11, 23, 8)}
    clock.now = local(2026, 11, 23, 7, 59)
    assert await runtime.tick(clock.now) == []
    for day in (23, 24, 25):
        clock.now = local(2026, 11, day, 8, 0)
        assert len(await runtime.tick(clock.now)) == 1
        assert await runtime.tick(clock.now) == []  # the same slot fires once
        assert runtime.job_times() == {job: local(2026, 11, day + 1, 8)}
    runs = await runs_of(db, broadcast.id)
    assert [r.scheduled_for for r in runs] == [local(2026, 11, d, 8) for d in (23, 24, 25)]
    stored = await row(db, broadcast.id)
    assert (stored.last_run_at, stored.next_run_at) == (
        local(2026, 11, 25, 8),
        local(2026, 11, 26, 8),
    )


async def test_a_slot_missed_during_downtime_goes_out_late_once(
    db: Database, runtime: OutreachRuntime, clock: FakeClock
) -> None:
    clock.now = local(2026, 11, 22, 10)
    broadcast = await create(db, clock.now, trigger="cron", cron=svc.cron_daily(8, 0))
    # Down from the 22nd to the 26th at 10:00: four slots missed.
    clock.now = local(2026, 11, 26, 10)
    assert len(await runtime.tick(clock.now)) == 1
    (run,) = await runs_of(db, broadcast.id)
    assert (run.scheduled_for, run.started_at) == (local(2026, 11, 23, 8), clock.now)
    assert (await row(db, broadcast.id)).next_run_at == local(2026, 11, 27, 8)
    assert await runtime.tick(clock.now) == []


async def test_a_missed_slot_found_at_night_waits_for_morning(
    db: Database, runtime: OutreachRuntime, clock: FakeClock
) -> None:
    clock.now = local(2026, 11, 22, 10)
    broadcast = await create(db, clock.now, trigger="cron", cron=svc.cron_daily(18, 0))
    clock.now = local(2026, 11, 22, 23)  # restarted after 18:00, in quiet hours
    assert await runtime.tick(clock.now) == []
    assert runtime.job_times() == {f"broadcast-{broadcast.id}": local(2026, 11, 23, 7)}
    clock.now = local(2026, 11, 23, 7)
    assert len(await runtime.tick(clock.now)) == 1
    (run,) = await runs_of(db, broadcast.id)
    assert run.scheduled_for == local(2026, 11, 22, 18)


async def test_a_nightly_slot_runs_at_seven_once(
    db: Database, runtime: OutreachRuntime, clock: FakeClock
) -> None:
    clock.now = local(2026, 11, 22, 10)
    hourly = await create(db, clock.now, trigger="cron", cron="0 * * * *")
    clock.now = local(2026, 11, 22, 21)
    assert await runtime.tick(clock.now) == []  # 21:00 is quiet
    clock.now = local(2026, 11, 23, 7)
    assert len(await runtime.tick(clock.now)) == 1  # the whole night's slots: one run at 07:00
    assert runtime.job_times() == {f"broadcast-{hourly.id}": local(2026, 11, 23, 8)}


async def test_an_urgent_broadcast_fires_in_quiet_hours(
    db: Database, runtime: OutreachRuntime, clock: FakeClock
) -> None:
    clock.now = local(2026, 11, 22, 23)
    broadcast = await create(db, clock.now, urgent=True)
    assert len(await runtime.tick(clock.now)) == 1
    assert (await row(db, broadcast.id)).status == "finished"


async def test_paused_and_cancelled_broadcasts_do_not_fire(
    db: Database, runtime: OutreachRuntime, clock: FakeClock
) -> None:
    clock.now = local(2026, 11, 22, 10)
    paused = await create(db, clock.now, trigger="cron", cron=svc.cron_daily(11, 0))
    cancelled = await create(db, clock.now, trigger="cron", cron=svc.cron_daily(11, 0))
    async with db.session() as session:
        await svc.set_state(session, broadcast_id=paused.id or 0, action="pause", now=clock.now)
        await svc.set_state(session, broadcast_id=cancelled.id or 0, action="cancel", now=clock.now)
    clock.now = local(2026, 11, 22, 11)
    assert await runtime.tick(clock.now) == []
    assert runtime.job_times() == {}


async def test_a_broadcast_made_by_another_process_is_scheduled_at_the_next_sync(
    db: Database, runtime: OutreachRuntime, clock: FakeClock
) -> None:
    clock.now = local(2026, 11, 22, 10)
    await runtime.tick(clock.now)
    other = Database(db.url)  # another process's engine
    try:
        async with other.session() as session:
            made = await svc.create_broadcast(
                session,
                spec=spec(trigger="once", run_at=local(2026, 11, 22, 15)),
                staff_id=None,
                now=clock.now,
                tz=TZ,
            )
    finally:
        await other.dispose()
    runtime.wake()
    await runtime.tick(clock.now)
    assert runtime.job_times() == {f"broadcast-{made.id}": local(2026, 11, 22, 15)}
