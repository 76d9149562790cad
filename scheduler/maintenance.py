"""Leader-elected maintenance: deadlines, flood counters, draft expiry, retention, session
summaries, with or without Telegram.

Both jobs are safe to run in several processes at once (the deadline escalation is a
conditional update, the purge marks what it did), but running them everywhere only repeats
work: one elected process runs them. The lock is separate from the outreach leader's, because
outreach needs a messenger to send on and maintenance does not (a Zalo-only or console-only
install still misses deadlines and purges old tips).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta

from bot.services import flood, outreach_sessions, repeats, retention
from bot.services.inbox import InboxService
from scheduler.leader import LeaderLock, hold_elections
from storage.db import Database
from storage.types import utcnow
from web import sessions as console_sessions

log = logging.getLogger(__name__)

# "tinbao-m" as a 64-bit integer (the outreach lock is "tinbao-b").
MAINTENANCE_LOCK_KEY = int.from_bytes(b"tinbao-m", "big") & 0x7FFF_FFFF_FFFF_FFFF
DEADLINE_SECONDS = 60.0
PURGE_SECONDS = 24 * 60 * 60.0
PURGE_FIRST_SECONDS = 5 * 60.0
LEADER_RETRY_SECONDS = 10.0


class MaintenanceRuntime:
    """Elect a leader among the processes; the leader checks deadlines and purges."""

    def __init__(
        self,
        *,
        db: Database,
        inbox: InboxService,
        retention_days: int,
        clock: Callable[[], datetime] = utcnow,
        deadline_interval: float = DEADLINE_SECONDS,
        purge_interval: float = PURGE_SECONDS,
        purge_first: float = PURGE_FIRST_SECONDS,
        leader_retry: float = LEADER_RETRY_SECONDS,
        expire_drafts: Callable[[], Awaitable[object]] | None = None,
    ) -> None:
        self.db = db
        self.inbox = inbox
        self.retention_days = retention_days
        self.clock = clock
        self.deadline_interval = deadline_interval
        self.purge_interval = purge_interval
        self.purge_first = purge_first
        self.leader_retry = leader_retry
        self.expire_drafts = expire_drafts  # IntakeService.expire_drafts: notices via the outbox
        self.lock = LeaderLock(db.url, key=MAINTENANCE_LOCK_KEY)
        self._stop = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    @property
    def is_leader(self) -> bool:
        """Whether this process runs maintenance right now."""
        return self.lock.held

    @property
    def alive(self) -> bool:
        """Whether the election loop is running (False once it crashed or was stopped)."""
        return self._task is not None and not self._task.done()

    async def start(self) -> None:
        """Start electing in the background."""
        self._stop.clear()
        self._task = asyncio.create_task(
            hold_elections(
                self.lock,
                duty="maintenance",
                lead=self._lead,
                stopped=self._stop,
                pause=self._sleep,
                retry=self.leader_retry,
            ),
            name="maintenance-leader",
        )

    async def stop(self) -> None:
        """Stop, letting a job in progress finish, and give the lock up."""
        self._stop.set()
        if self._task is not None:
            await self._task
            self._task = None
        await self.lock.release()

    async def purge_now(self) -> None:
        """Run the retention purge once."""
        async with self.db.session() as session:
            report = await retention.purge(
                session, now=self.clock(), days=self.retention_days, dry_run=False
            )
        if report.tips:
            log.info("retention purge: %d tips", report.tips)
        await repeats.purge(self.db, self.clock())
        async with self.db.session() as session:
            # Console sessions that ended a day ago are no use to anyone: the table stays small.
            await console_sessions.purge_ended(session, now=self.clock(), keep=timedelta(days=1))
            await session.commit()

    async def session_summaries_now(self) -> None:
        """Send the summaries of outreach sessions that have ended."""
        async with self.db.session() as session:
            queued = await outreach_sessions.queue_summaries(
                session, t=self.inbox.t, now=self.clock()
            )
        if queued:
            self.inbox.on_outbox()

    async def expire_drafts_now(self) -> None:
        """Delete silent drafts, their notices queued in the outbox (every deadline interval)."""
        if self.expire_drafts is not None:
            await self.expire_drafts()

    async def purge_flood_now(self) -> None:
        """Drop flood counters whose window has ended (every minute: they must not linger)."""
        await flood.purge_ended(self.db, self.clock())

    async def _lead(self) -> None:
        """Run each job at its interval while the lock is ours."""
        log.info("this process leads maintenance: deadlines, drafts, retention, summaries")
        # As the job queue did: the first check one interval after start, not at once.
        next_deadlines = time.monotonic() + self.deadline_interval
        next_purge = time.monotonic() + self.purge_first
        while not self._stop.is_set():
            now = time.monotonic()
            if now >= next_deadlines:
                await self._run("deadline check", self.inbox.check_deadlines)
                await self._run("flood counter purge", self.purge_flood_now)
                await self._run("session summaries", self.session_summaries_now)
                await self._run("draft expiry", self.expire_drafts_now)
                next_deadlines = now + self.deadline_interval
            if now >= next_purge:
                await self._run("retention purge", self.purge_now)
                next_purge = now + self.purge_interval
            await self._sleep(max(0.0, min(next_deadlines, next_purge) - time.monotonic()))
            if self._stop.is_set() or not await self.lock.still_held():
                return

    async def _run(self, what: str, job: Callable[[], Awaitable[object]]) -> None:
        """Run one job; a failure (the database away) is logged and retried next time."""
        try:
            await job()
        except Exception:
            log.exception("%s failed; retrying at the next interval", what)

    async def _sleep(self, seconds: float) -> None:
        """Sleep until `seconds` pass or stop is asked."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stop.wait(), timeout=seconds)
