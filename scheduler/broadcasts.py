"""Broadcast runs: firing due broadcasts, planning deliveries, and the leader's runtime.

The broadcast rows are the schedule. The elected leader keeps one APScheduler job per scheduled
broadcast (id `broadcast-<id>`, memory job store, rebuilt from the rows at start and re-synced
every SYNC_SECONDS and on wake()); a job only says "look at the rows now". Firing creates the
run for the row's `next_run_at` (unique per broadcast and time, so a second leader or a retry
finds it taken), plans one delivery per recipient with one INSERT ... SELECT, and advances
`next_run_at` to the next future time: a slot missed while nobody led goes out once, late.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

from apscheduler.schedulers.asyncio import AsyncIOScheduler
from apscheduler.triggers.date import DateTrigger
from sqlalchemy import insert, literal, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import IntegrityError
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from bot.channels.outbound import BroadcastOutbound
from bot.services.anonymity import Keyring
from bot.services.broadcasts import (
    DEFAULT_QUIET,
    BroadcastStatus,
    DeliveryStatus,
    RunStatus,
    after_quiet_hours,
    broadcast_audience,
    in_quiet_hours,
    planned_time,
)
from scheduler.delivery import (
    DEFAULT_LANES,
    DEFAULT_RATE,
    DEFAULT_SLOTS,
    BroadcastSender,
)
from scheduler.leader import LeaderLock, hold_elections
from storage.db import Database
from storage.models import Broadcast, BroadcastRun, Delivery, Subscriber
from storage.types import utcnow

log = logging.getLogger(__name__)

SYNC_SECONDS = 15.0
LEADER_RETRY_SECONDS = 10.0
JOB_PREFIX = "broadcast-"


def _insert_run(session: AsyncSession) -> Any:
    """INSERT INTO broadcastrun with ON CONFLICT support for the session's dialect."""
    bind = session.bind
    if bind is not None and bind.dialect.name == "postgresql":
        return postgresql.insert(BroadcastRun)
    return sqlite.insert(BroadcastRun)


async def fire_due(
    db: Database,
    *,
    now: datetime,
    tz: str,
    quiet: tuple[int, int] = DEFAULT_QUIET,
    broadcast_ids: list[int] | None = None,
) -> list[int]:
    """Start a run for each scheduled broadcast due at `now`; return the ids of new runs.

    A due non-urgent broadcast waits while `now` is in quiet hours (its job is set for 07:00).
    """
    statement = select(Broadcast).where(
        col(Broadcast.status) == BroadcastStatus.SCHEDULED,
        col(Broadcast.next_run_at) <= now,
    )
    if broadcast_ids is not None:
        statement = statement.where(col(Broadcast.id).in_(broadcast_ids))
    async with db.session() as session:
        due = list((await session.exec(statement.order_by(col(Broadcast.id)))).all())
    started: list[int] = []
    for broadcast in due:
        if not broadcast.urgent and in_quiet_hours(now, tz, quiet):
            continue
        run_id = await start_run(db, broadcast=broadcast, now=now, tz=tz, quiet=quiet)
        if run_id is not None:
            await plan_run(db, run_id=run_id, now=now)
            started.append(run_id)
    return started


async def start_run(
    db: Database,
    *,
    broadcast: Broadcast,
    now: datetime,
    tz: str,
    quiet: tuple[int, int] = DEFAULT_QUIET,
) -> int | None:
    """Create the run for the broadcast's due slot and advance its schedule, in one commit.

    Returns None when the slot was taken already (another leader, a retry) or the broadcast
    changed meanwhile (paused, cancelled).
    """
    slot = broadcast.next_run_at
    assert broadcast.id is not None and slot is not None
    # The next time after *now*: slots missed while nobody led are not made up for.
    following = planned_time(broadcast, after=now, tz=tz, quiet=quiet)
    async with db.session() as session:
        # Compare-and-set on the slot first: a second leader (or a retry, or a pause that came
        # in between) updates nothing and creates no run.
        advanced = await session.exec(
            update(Broadcast)
            .where(
                col(Broadcast.id) == broadcast.id,
                col(Broadcast.status) == BroadcastStatus.SCHEDULED,
                col(Broadcast.next_run_at) == slot,
            )
            .values(
                next_run_at=following,
                last_run_at=slot,
                status=BroadcastStatus.SCHEDULED if following else BroadcastStatus.FINISHED,
            )
        )
        run_id = None
        if advanced.rowcount:
            # The unique (broadcast, time) is the backstop should two leaders get this far.
            inserted = await session.exec(
                _insert_run(session)
                .values(
                    broadcast_id=broadcast.id,
                    scheduled_for=slot,
                    status=RunStatus.PLANNING,
                    planned=0,
                    created_at=now,
                )
                .on_conflict_do_nothing(index_elements=["broadcast_id", "scheduled_for"])
                .returning(col(BroadcastRun.id))
            )
            run_id = inserted.scalar_one_or_none()
        await session.commit()
    if run_id is None:
        log.info("broadcast %s slot %s was taken or changed meanwhile", broadcast.id, slot)
    else:
        late = now - slot
        log.info("broadcast %s run %s for %s (late by %s)", broadcast.id, run_id, slot, late)
    return None if run_id is None else int(run_id)


async def plan_run(db: Database, *, run_id: int, now: datetime) -> int:
    """Create the run's deliveries with one INSERT ... SELECT; return how many it has.

    One transaction: a crash leaves the run "planning" with no deliveries, and the next leader
    plans it (plan_unplanned). Two leaders planning at once collide on (run, subscriber): the
    second one's insert fails and it leaves the run to the first.
    """
    async with db.session() as session:
        run = await session.get(BroadcastRun, run_id)
        if run is None or run.status != RunStatus.PLANNING:
            return run.planned if run is not None else 0
        broadcast = await session.get(Broadcast, run.broadcast_id)
        assert broadcast is not None
        if broadcast.status == BroadcastStatus.CANCELLED:
            run.status, run.finished_at = RunStatus.DONE, now
            session.add(run)
            await session.commit()
            return 0
        recipients = (
            select(
                literal(run_id),
                col(Subscriber.id),
                literal(DeliveryStatus.PENDING),
                literal(0),
            )
            .where(*broadcast_audience(broadcast))
            .order_by(col(Subscriber.id))  # rows in subscriber order: sending follows it
        )
        try:
            inserted = await session.exec(
                insert(Delivery).from_select(
                    ["run_id", "subscriber_id", "status", "attempts"], recipients
                )
            )
        except IntegrityError:
            await session.rollback()
            log.info("broadcast run %s is being planned by another process", run_id)
            return 0
        planned = int(inserted.rowcount or 0)
        await session.exec(
            update(BroadcastRun)
            .where(col(BroadcastRun.id) == run_id, col(BroadcastRun.status) == RunStatus.PLANNING)
            .values(
                planned=planned,
                status=RunStatus.SENDING if planned else RunStatus.DONE,
                started_at=now,
                finished_at=None if planned else now,
            )
        )
        await session.commit()
    log.info("broadcast run %s planned: %d deliveries", run_id, planned)
    return planned


async def plan_unplanned(db: Database, *, now: datetime) -> list[int]:
    """Plan runs a crash left in "planning"; return their ids."""
    async with db.session() as session:
        stuck = (
            await session.exec(
                select(BroadcastRun.id).where(col(BroadcastRun.status) == RunStatus.PLANNING)
            )
        ).all()
    for run_id in stuck:
        assert run_id is not None
        await plan_run(db, run_id=run_id, now=now)
    return [run_id for run_id in stuck if run_id is not None]


class OutreachRuntime:
    """Leader election, the APScheduler jobs and the broadcast sender of one process."""

    def __init__(
        self,
        *,
        db: Database,
        keyring: Keyring,
        channels: Mapping[str, BroadcastOutbound],
        timezone: str,
        rate: float = DEFAULT_RATE,
        clock: Callable[[], datetime] = utcnow,
        quiet: tuple[int, int] = DEFAULT_QUIET,
        slots: int = DEFAULT_SLOTS,
        lanes: int = DEFAULT_LANES,
        lease: timedelta = timedelta(seconds=60),
        sync_interval: float = SYNC_SECONDS,
        leader_retry: float = LEADER_RETRY_SECONDS,
    ) -> None:
        self.db = db
        self.timezone = timezone
        self.quiet = quiet
        self.clock = clock
        self.sync_interval = sync_interval
        self.leader_retry = leader_retry
        self.sender = BroadcastSender(
            db=db,
            channels=channels,
            keyring=keyring,
            rate=rate,
            slots=slots,
            lanes=lanes,
            lease=lease,
            clock=clock,
            timezone=timezone,
            quiet=quiet,
        )
        self.lock = LeaderLock(db.url)
        self.scheduler: AsyncIOScheduler | None = None
        self._stop = asyncio.Event()
        self._wake = asyncio.Event()
        self._sync_lock = asyncio.Lock()
        self._task: asyncio.Task[None] | None = None

    @property
    def is_leader(self) -> bool:
        """Whether this process leads right now."""
        return self.lock.held

    async def start(self) -> None:
        """Start electing; when this process leads, schedule and send in the background."""
        self._stop.clear()
        self._task = asyncio.create_task(
            hold_elections(
                self.lock,
                duty="outreach",
                lead=self._lead,
                stopped=self._stop,
                pause=self._wait,
                retry=self.leader_retry,
                on_step_down=self._pause_scheduler,
            ),
            name="outreach-leader",
        )

    async def stop(self) -> None:
        """Stop scheduling and sending (a batch in flight is finished or left to its lease)."""
        self._stop.set()
        if self._task is not None:
            await self._task
            self._task = None
        if self.scheduler is not None and self.scheduler.running:
            self.scheduler.shutdown(wait=False)
        self.scheduler = None
        await self.lock.release()
        await self.sender.close()

    def wake(self) -> None:
        """A broadcast was created or changed: re-sync from the rows now."""
        self._wake.set()

    async def tick(self, now: datetime) -> list[int]:
        """Plan stuck runs, fire what is due at `now` and re-sync the jobs; return new run ids."""
        async with self._sync_lock:
            started = await plan_unplanned(self.db, now=now)
            started += await fire_due(self.db, now=now, tz=self.timezone, quiet=self.quiet)
            await self._sync_jobs(now)
        if started:
            self.sender.wake()
        return started

    async def fire_due(self, now: datetime) -> list[int]:
        """Fire what is due at `now` without touching the jobs; return new run ids."""
        async with self._sync_lock:
            started = await fire_due(self.db, now=now, tz=self.timezone, quiet=self.quiet)
        if started:
            self.sender.wake()
        return started

    def job_times(self) -> dict[str, datetime]:
        """The scheduler's jobs and when each fires (tests, diagnostics)."""
        if self.scheduler is None:
            return {}
        return {
            job.id: job.next_run_time.astimezone(UTC)
            for job in self.scheduler.get_jobs()
            if job.next_run_time is not None
        }

    def _scheduler(self) -> AsyncIOScheduler:
        """The APScheduler (memory job store only), started paused until this process leads."""
        if self.scheduler is None:
            self.scheduler = AsyncIOScheduler(
                timezone=UTC,
                job_defaults={"coalesce": True, "max_instances": 1, "misfire_grace_time": None},
            )
            # Paused: jobs are kept but only fire once `_lead` resumes it; tests drive tick().
            self.scheduler.start(paused=True)
        return self.scheduler

    async def _sync_jobs(self, now: datetime) -> None:
        """Make the jobs match the rows: one per scheduled broadcast, at its quiet-shifted time."""
        scheduler = self._scheduler()
        async with self.db.session() as session:
            rows = (
                await session.exec(
                    select(Broadcast.id, Broadcast.next_run_at, Broadcast.urgent).where(
                        col(Broadcast.status) == BroadcastStatus.SCHEDULED,
                        col(Broadcast.next_run_at).is_not(None),
                    )
                )
            ).all()
        wanted: dict[str, datetime] = {}
        for broadcast_id, next_run_at, urgent in rows:
            assert next_run_at is not None
            due = max(next_run_at, now)
            wanted[f"{JOB_PREFIX}{broadcast_id}"] = (
                due if urgent else after_quiet_hours(due, self.timezone, self.quiet)
            )
        for job in scheduler.get_jobs():
            if job.id.startswith(JOB_PREFIX) and job.id not in wanted:
                job.remove()
        for job_id, due in wanted.items():
            job = scheduler.get_job(job_id)
            if job is not None and job.next_run_time == due:
                continue
            scheduler.add_job(
                self._on_job,
                DateTrigger(run_date=due, timezone=UTC),
                id=job_id,
                replace_existing=True,
            )

    async def _on_job(self) -> None:
        """An APScheduler job fired: look at the rows (the job carries no state of its own)."""
        try:
            await self.tick(self.clock())
        except Exception:
            log.exception("broadcast job failed; the next sync retries")

    def _pause_scheduler(self) -> None:
        """Stepping down: keep the jobs but fire none until this process leads again."""
        if self.scheduler is not None:
            self.scheduler.pause()

    async def _lead(self) -> None:
        """Run the scheduler and the sender while this process holds the lock."""
        log.info("this process leads outreach: scheduling and sending broadcasts")
        # The lock proves the previous leader is gone: what it had in flight is ours now.
        await self.sender.reclaim(everything=True)
        await self.tick(self.clock())
        self._scheduler().resume()
        sender_stop = asyncio.Event()
        sender = asyncio.create_task(self.sender.run(sender_stop), name="broadcast-sender")
        try:
            while not self._stop.is_set():
                await self._wait(self.sync_interval)
                if self._stop.is_set():
                    break
                if not await self.lock.still_held():
                    log.warning("outreach leadership lost; another process may lead now")
                    break
                try:
                    await self.tick(self.clock())
                except Exception:  # the database may be away for a while
                    log.exception("broadcast sync failed; retrying")
                if sender.done():
                    sender.result()  # surface why the sender stopped
        finally:
            sender_stop.set()
            await sender

    async def _wait(self, seconds: float) -> None:
        """Sleep until a wake-up, a stop or `seconds`."""
        waiters = {
            asyncio.ensure_future(self._stop.wait()),
            asyncio.ensure_future(self._wake.wait()),
        }
        try:
            await asyncio.wait(waiters, timeout=seconds, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for waiter in waiters:
                waiter.cancel()
            # Cleared after waking, not before sleeping: a wake() during a sync is not lost.
            self._wake.clear()
