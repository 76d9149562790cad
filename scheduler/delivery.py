"""The broadcast sender: sends planned deliveries at the configured rate, resumable after a crash.

At-least-once by construction, like the outbox sender: a lane claims at most `batch` pending rows
(status "sending", committed), sends them, then marks them in one UPDATE. `slots` rows at most
are "sending" at any moment (lanes x batch), so a crash repeats at most `slots` messages; rows
left "sending" are taken again after `lease` (at once when a new leader starts, since the lock
guarantees the old one is gone). Several lanes let one lane's database round trip overlap the
others' sends, so the token bucket, not the database, sets the pace.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import defaultdict
from collections.abc import Awaitable, Callable, Collection, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import and_, exists, literal_column, or_, update
from sqlalchemy import select as sa_select
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from bot.channels import outbound as out
from bot.channels.outbound import BroadcastOutbound
from bot.services.anonymity import Keyring, RouteError, RoutePurpose
from bot.services.broadcasts import (
    DEFAULT_QUIET,
    BroadcastError,
    BroadcastStatus,
    DeliveryStatus,
    RunStatus,
    in_quiet_hours,
    render,
)
from storage.db import Database
from storage.models import Broadcast, BroadcastRun, Delivery, Subscriber
from storage.types import utcnow
from tinbao.metrics import count_send

log = logging.getLogger(__name__)

DEFAULT_RATE = 25.0
DEFAULT_SLOTS = 16
DEFAULT_LANES = 4
MAX_ATTEMPTS = 5
# After a 429 the pace drops to this share of the configured rate for SLOWDOWN_SECONDS.
SLOWDOWN = 0.8
SLOWDOWN_SECONDS = 60.0
MIN_RATE = 1.0
RUNS_TTL_SECONDS = 1.0
# The channel whose pace `rate` and `bucket` set when given (the others use their own rate).
DEFAULT_CHANNEL = "telegram"


class TokenBucket:
    """Paces sends to `rate` a second; a 429 pauses every slot and lowers the rate a while.

    Idle time earns no credit beyond one send, so nothing bursts after a pause. Lateness does
    while sends are waiting: a busy event loop that wakes a sender 30 ms late lets the next
    sends catch up (up to `lag` seconds' worth), so the average over a run is the rate exactly.
    """

    def __init__(
        self,
        rate: float,
        *,
        lag: float = 0.5,
        monotonic: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[Any]] = asyncio.sleep,
    ) -> None:
        if rate <= 0:
            raise ValueError("the rate must be positive")
        self.base_rate = rate
        self.rate = rate
        self.lag = lag
        self._monotonic = monotonic
        self._sleep = sleep
        self._tokens = 1.0
        self._updated = monotonic()
        self._demand = False  # someone was waiting since the last grant
        self._waiting = 0
        self._paused_until = 0.0
        self._slow_until = 0.0
        self._lock = asyncio.Lock()
        self.granted = 0
        self.throttled = 0

    async def acquire(self) -> None:
        """Wait for one send's turn (FIFO among slots: asyncio.Lock is fair)."""
        self._waiting += 1
        try:
            async with self._lock:
                await self._take()
        finally:
            self._waiting -= 1

    async def _take(self) -> None:
        """Wait until a token is there and take it (the lock is held)."""
        while True:
            now = self._monotonic()
            if self._slow_until and now >= self._slow_until:
                self.rate, self._slow_until = self.base_rate, 0.0
            if now < self._paused_until:
                await self._sleep(self._paused_until - now)
                continue
            cap = 1.0 + self.rate * self.lag if self._demand else 1.0
            self._tokens = min(cap, self._tokens + (now - self._updated) * self.rate)
            self._updated = now
            # A hair under one token counts: float rounding must not stall the pace.
            if self._tokens >= 1.0 - 1e-9:
                self._tokens = max(0.0, self._tokens - 1.0)
                self.granted += 1
                self._demand = self._waiting > 1  # the next one is queued already
                return
            self._demand = True
            await self._sleep((1.0 - self._tokens) / self.rate)

    def penalize(self, retry_after: float) -> None:
        """The platform said 429: nobody sends for `retry_after`, then slower for a minute."""
        now = self._monotonic()
        self.throttled += 1
        self._paused_until = max(self._paused_until, now + retry_after)
        self._tokens = 0.0
        self._updated = max(self._updated, self._paused_until)
        self.rate = max(MIN_RATE, min(self.rate, self.base_rate) * SLOWDOWN)
        self._slow_until = self._paused_until + SLOWDOWN_SECONDS


@dataclass(frozen=True, slots=True)
class _Run:
    """A run that may send now."""

    id: int
    broadcast_id: int


@dataclass(slots=True)
class _Claimed:
    """A claimed delivery and what sending it needs."""

    id: int
    run_id: int
    broadcast_id: int
    subscriber_id: int
    attempts: int
    route: bytes
    locale: str
    active: bool
    blocked: bool


# Delivery outcomes as the send metrics name them (a 429 asks the sender to slow down).
_METRIC_OUTCOME = {"requeue": "rate_limited", "blocked": "unreachable", "failed": "dead"}


@dataclass(frozen=True, slots=True)
class _Outcome:
    """What became of one send: sent, blocked, failed, refused (the platform's per-person rule),
    retry, requeue (429) or abort (content)."""

    kind: str
    error: str | None = None
    channel: str = DEFAULT_CHANNEL


@dataclass(slots=True)
class SenderStats:
    """Counts since the sender was made, for logs, the CLI and benchmarks."""

    sent: int = 0
    blocked: int = 0
    failed: int = 0
    refused: int = 0
    retried: int = 0
    throttled: int = 0
    aborted_runs: int = 0
    by_kind: dict[str, int] = field(default_factory=dict)


class BroadcastSender:
    """Sends pending deliveries of runs in status "sending", each channel at its own pace.

    A subscriber's route names its channel; each channel has its own token bucket (Telegram at
    `rate`, the others at the rate they declare), so a mixed audience goes at every platform's
    pace at once and a 429 slows only the platform that said it.
    """

    def __init__(
        self,
        *,
        db: Database,
        channels: Mapping[str, BroadcastOutbound],
        keyring: Keyring,
        rate: float = DEFAULT_RATE,
        slots: int = DEFAULT_SLOTS,
        lanes: int = DEFAULT_LANES,
        lease: timedelta = timedelta(seconds=60),
        clock: Callable[[], datetime] = utcnow,
        timezone: str = "Asia/Ho_Chi_Minh",
        quiet: tuple[int, int] = DEFAULT_QUIET,
        max_attempts: int = MAX_ATTEMPTS,
        retry_delay: timedelta = timedelta(seconds=30),
        poll_interval: float = 1.0,
        broadcast_ids: Collection[int] | None = None,
        bucket: TokenBucket | None = None,
    ) -> None:
        if slots < 1 or lanes < 1:
            raise ValueError("slots and lanes must be at least 1")
        self.db = db
        self.channels = dict(channels)
        self.keyring = keyring
        self.lanes = min(lanes, slots)
        self.batch = max(1, slots // self.lanes)
        self.slots = self.lanes * self.batch  # at most this many rows are "sending" at once
        self.lease = lease
        self.clock = clock
        self.timezone = timezone
        self.quiet = quiet
        self.max_attempts = max_attempts
        self.retry_delay = retry_delay
        self.poll_interval = poll_interval
        self.broadcast_ids = frozenset(broadcast_ids) if broadcast_ids is not None else None
        self.buckets = {
            name: bucket
            if bucket is not None and name == DEFAULT_CHANNEL
            else TokenBucket(rate if name == DEFAULT_CHANNEL else channel.broadcast_rate)
            for name, channel in self.channels.items()
        }
        self.stats = SenderStats()
        self._wakes: list[asyncio.Event] = []
        self._content: dict[tuple[int, str], tuple[str, bytes | None]] = {}
        self._last_reclaim: datetime | None = None
        # Active runs, re-read at most every RUNS_TTL_SECONDS: a pause takes effect within it.
        self._runs_cache: tuple[float, list[tuple[int, int, bool]]] | None = None
        self._channels_ready = False

    @property
    def bucket(self) -> TokenBucket:
        """The Telegram channel's bucket (or the only channel's)."""
        return self.buckets.get(DEFAULT_CHANNEL) or next(iter(self.buckets.values()))

    def wake(self) -> None:
        """Ask idle lanes to look for work now (a run was just planned)."""
        self._runs_cache = None
        for event in self._wakes:
            event.set()

    async def run(self, stop: asyncio.Event) -> None:
        """Send until `stop` is set; trouble with the database or network is waited out."""
        await self._ensure_channels()
        lanes = [asyncio.create_task(self._lane(stop)) for _ in range(self.lanes)]
        try:
            await asyncio.gather(*lanes)
        finally:
            for task in lanes:
                task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.gather(*lanes, return_exceptions=True)

    async def _lane(self, stop: asyncio.Event) -> None:
        """One lane: claim, send, mark; wait for a wake-up when there is nothing to do."""
        wake = asyncio.Event()
        self._wakes.append(wake)
        try:
            while not stop.is_set():
                try:
                    handled = await self.run_once()
                except Exception:  # the database may be away for a while: wait and retry
                    log.exception("broadcast sender cycle failed; retrying")
                    handled = 0
                if handled:
                    continue
                stopping = asyncio.ensure_future(stop.wait())
                woken = asyncio.ensure_future(wake.wait())
                try:
                    await asyncio.wait(
                        {stopping, woken},
                        timeout=self.poll_interval,
                        return_when=asyncio.FIRST_COMPLETED,
                    )
                finally:
                    stopping.cancel()
                    woken.cancel()
                    # Cleared after waking, not before: a wake-up during a cycle is not lost.
                    wake.clear()
        finally:
            self._wakes.remove(wake)

    async def drain(self) -> int:
        """Send everything that may go now, with every lane (tests and CLI); return the count."""
        await self._ensure_channels()
        self._runs_cache = None

        async def lane() -> int:
            total = 0
            while handled := await self.run_once():
                total += handled
            return total

        return sum(await asyncio.gather(*(lane() for _ in range(self.lanes))))

    async def run_once(self) -> int:
        """Claim one batch, send it and record it; return how many deliveries were handled."""
        now = self.clock()
        if self._last_reclaim is None or now - self._last_reclaim >= self.lease / 4:
            self._last_reclaim = now
            await self.reclaim(now=now)
        runs = await self._active_runs(now)
        if not runs:
            return 0
        claimed = await self._claim(runs, now)
        if not claimed:
            await self._finish_runs(runs)
            return 0
        outcomes = await self._send_batch(claimed)
        await self._record(claimed, outcomes)
        return len(claimed)

    async def reclaim(self, *, now: datetime | None = None, everything: bool = False) -> int:
        """Put rows left "sending" by a dead sender back; `everything` when a new leader starts."""
        now = now or self.clock()
        condition = col(Delivery.status) == DeliveryStatus.SENDING
        if not everything:
            condition = and_(condition, col(Delivery.claimed_at) < now - self.lease)
        async with self.db.session() as session:
            open_runs = select(BroadcastRun.id).where(col(BroadcastRun.status) != RunStatus.DONE)
            result = await session.exec(
                update(Delivery)
                .where(col(Delivery.run_id).in_(open_runs), condition)
                # claimed_at NULL: eligible at once (a crash is not the subscriber's fault).
                .values(status=DeliveryStatus.PENDING, claimed_at=None)
            )
            await session.commit()
        count = int(result.rowcount or 0)
        if count:
            log.warning("took back %d broadcast deliveries left in flight", count)
        return count

    async def _ensure_channels(self) -> None:
        """Prepare every channel once (PTB's Bot needs initialising before the first call)."""
        if not self._channels_ready:
            for channel in self.channels.values():
                await channel.start_broadcasts()
            self._channels_ready = True

    async def close(self) -> None:
        """Release the channels' connections."""
        for channel in self.channels.values():
            await channel.close_broadcasts()
        self._channels_ready = False

    async def _active_runs(self, now: datetime) -> list[_Run]:
        """Runs that may send now: sending, broadcast not paused, not quiet (unless urgent)."""
        cached = self._runs_cache
        if cached is None or time.monotonic() - cached[0] >= RUNS_TTL_SECONDS:
            statement = (
                select(BroadcastRun.id, BroadcastRun.broadcast_id, Broadcast.urgent)
                .join(Broadcast, col(Broadcast.id) == col(BroadcastRun.broadcast_id))
                .where(
                    col(BroadcastRun.status) == RunStatus.SENDING,
                    col(Broadcast.status).in_(
                        (BroadcastStatus.SCHEDULED, BroadcastStatus.FINISHED)
                    ),
                )
                .order_by(col(BroadcastRun.id))
            )
            if self.broadcast_ids is not None:
                statement = statement.where(col(Broadcast.id).in_(self.broadcast_ids))
            async with self.db.session() as session:
                rows = [(int(r or 0), int(b), bool(u)) for r, b, u in await session.exec(statement)]
            cached = self._runs_cache = (time.monotonic(), rows)
        quiet = in_quiet_hours(now, self.timezone, self.quiet)
        # A long run started before 21:00 stops for the night and goes on at 07:00.
        return [_Run(r, b) for r, b, urgent in cached[1] if urgent or not quiet]

    def _eligible(self, now: datetime) -> Any:
        """Pending rows never tried, taken back, or whose retry back-off is over."""
        waits = [
            and_(
                col(Delivery.attempts) == attempt,
                col(Delivery.claimed_at) <= now - self.retry_delay * 2 ** (attempt - 1),
            )
            for attempt in range(1, self.max_attempts)
        ]
        waits.append(
            and_(
                col(Delivery.attempts) >= self.max_attempts,
                col(Delivery.claimed_at) <= now - self.retry_delay,
            )
        )
        return or_(col(Delivery.claimed_at).is_(None), *waits)

    async def _claim(self, runs: list[_Run], now: datetime) -> list[_Claimed]:
        """Take up to one batch of eligible rows, oldest run first, for this lane."""
        broadcast_of = {run.id: run.broadcast_id for run in runs}
        picked: list[tuple[int, int, int, int]] = []
        async with self.db.session() as session:
            connection = await session.connection()
            for run in runs:
                # One run at a time, in id order, with 'pending' written inline: the planner
                # can then walk the partial index ix_delivery_pending (a bound parameter would
                # not match the index's WHERE) and stop after one batch.
                statement = (
                    sa_select(
                        col(Delivery.id),
                        col(Delivery.run_id),
                        col(Delivery.subscriber_id),
                        col(Delivery.attempts),
                    )
                    .where(
                        col(Delivery.run_id) == run.id,
                        col(Delivery.status) == literal_column("'pending'"),
                        self._eligible(now),
                    )
                    .order_by(col(Delivery.id))
                    .limit(self.batch - len(picked))
                )
                if _dialect(session) == "postgresql":
                    # Lanes (and a second sender in a split brain) each get their own rows.
                    statement = statement.with_for_update(skip_locked=True)
                rows = (await connection.execute(statement)).all()
                picked += [(int(d or 0), int(r), int(s), int(a)) for d, r, s, a in rows]
                if len(picked) >= self.batch:
                    break
            if not picked:
                await session.commit()
                return []
            await session.exec(
                update(Delivery)
                .where(col(Delivery.id).in_([row[0] for row in picked]))
                .values(
                    status=DeliveryStatus.SENDING,
                    claimed_at=now,
                    attempts=col(Delivery.attempts) + 1,
                )
            )
            # Subscribers by primary key, apart: joined, the planner may drive the claim from
            # the subscriber table instead of the partial index.
            found = await connection.execute(
                sa_select(
                    col(Subscriber.id),
                    col(Subscriber.route),
                    col(Subscriber.locale),
                    col(Subscriber.active),
                    col(Subscriber.blocked_at),
                ).where(col(Subscriber.id).in_({row[2] for row in picked}))
            )
            subscribers = {int(row[0] or 0): row for row in found.all()}
            await session.commit()
        claimed = []
        for delivery_id, run_id, subscriber_id, attempts in picked:
            subscriber = subscribers.get(subscriber_id)
            claimed.append(
                _Claimed(
                    id=delivery_id,
                    run_id=run_id,
                    broadcast_id=broadcast_of[run_id],
                    subscriber_id=subscriber_id,
                    attempts=attempts + 1,
                    route=bytes(subscriber[1]) if subscriber else b"",
                    locale=str(subscriber[2]) if subscriber else "vi",
                    active=bool(subscriber[3]) if subscriber else False,
                    blocked=subscriber is not None and subscriber[4] is not None,
                )
            )
        return claimed

    async def _send_batch(self, claimed: list[_Claimed]) -> list[_Outcome]:
        """Send a batch concurrently (each send waits for its channel's token)."""
        outcomes = list(await asyncio.gather(*(self._send_one(row) for row in claimed)))
        for outcome in outcomes:
            kind = _METRIC_OUTCOME.get(outcome.kind, outcome.kind)
            count_send(outcome.channel, "broadcast", kind)
        return outcomes

    async def _send_one(self, row: _Claimed) -> _Outcome:
        """Send one delivery and say how it went; never raises for a per-message problem."""
        if not row.active:
            # Blocked in another run, or unsubscribed since this run was planned.
            return _Outcome("blocked" if row.blocked else "failed", "subscriber inactive")
        if row.attempts > self.max_attempts:
            return _Outcome("failed", "too many attempts")
        try:
            name, chat_id = self.keyring.decrypt_route(row.route, RoutePurpose.SUBSCRIBER)
        except RouteError as error:
            return _Outcome("failed", f"route: {error}")
        channel = self.channels.get(name)
        if channel is None:
            return _Outcome("failed", f"channel {name} is not configured", name)
        try:
            text, photo = await self._content_for(row.broadcast_id, row.locale)
        except (BroadcastError, RuntimeError) as error:
            return _Outcome("abort", f"cannot render: {error}", name)
        bucket = self.buckets[name]
        await bucket.acquire()
        try:
            sent = await channel.send_broadcast(chat_id, text, photo, row.broadcast_id)
        except OSError as error:  # a channel let a bare network error through
            sent = out.Transient(str(error) or type(error).__name__)
        return self._outcome(name, bucket, sent)

    @staticmethod
    def _outcome(name: str, bucket: TokenBucket, sent: out.SendOutcome) -> _Outcome:
        """A channel's answer as a delivery outcome."""
        match sent:
            case out.Sent():
                return _Outcome("sent", None, name)
            case out.RetryAfter(seconds, reason):
                bucket.penalize(seconds)
                log.warning(
                    "%s asked to wait: pausing %.0fs, rate now %.1f/s", name, seconds, bucket.rate
                )
                return _Outcome("requeue", reason, name)
            case out.Quota(_, reason) | out.WindowClosed(reason):
                # The platform's rule for this person (Zalo OA: one broadcast a day): counted
                # as refused, not retried within this run.
                return _Outcome("refused", reason, name)
            case out.Unreachable(reason):
                return _Outcome("blocked", reason, name)
            case out.Broken(reason, content):
                return _Outcome("abort" if content else "failed", reason, name)
            case out.Transient(reason):
                return _Outcome("retry", reason, name)
        return _Outcome("failed", "unknown outcome", name)

    async def _content_for(self, broadcast_id: int, locale: str) -> tuple[str, bytes | None]:
        """A broadcast's text and photo for a locale, rendered once per process."""
        key = (broadcast_id, locale)
        found = self._content.get(key)
        if found is None:
            async with self.db.session() as session:
                broadcast = await session.get(Broadcast, broadcast_id)
            if broadcast is None:
                raise BroadcastError("not_found", str(broadcast_id))
            found = self._content[key] = render(broadcast, locale)
        return found

    async def _record(self, claimed: list[_Claimed], outcomes: list[_Outcome]) -> None:
        """Write a batch's outcomes: one UPDATE for everything sent, a few for the rest."""
        now = self.clock()
        by_kind: dict[str, list[tuple[_Claimed, _Outcome]]] = defaultdict(list)
        for row, outcome in zip(claimed, outcomes, strict=True):
            kind = outcome.kind
            if kind == "retry" and row.attempts >= self.max_attempts:
                kind = "failed"
            by_kind[kind].append((row, outcome))
            self.stats.by_kind[kind] = self.stats.by_kind.get(kind, 0) + 1
        async with self.db.session() as session:
            if sent := by_kind.get("sent"):
                await self._set(session, sent, status=DeliveryStatus.SENT, sent_at=now, error=None)
                self.stats.sent += len(sent)
            if blocked := by_kind.get("blocked"):
                await self._set_each_error(session, blocked, DeliveryStatus.BLOCKED)
                await session.exec(
                    update(Subscriber)
                    .where(
                        col(Subscriber.id).in_({row.subscriber_id for row, _ in blocked}),
                        col(Subscriber.active) == True,  # noqa: E712 (SQL, not Python)
                    )
                    .values(active=False, blocked_at=now)
                )
                self.stats.blocked += len(blocked)
            if failed := by_kind.get("failed"):
                await self._set_each_error(session, failed, DeliveryStatus.FAILED)
                self.stats.failed += len(failed)
            if refused := by_kind.get("refused"):
                await self._set_each_error(session, refused, DeliveryStatus.REFUSED)
                self.stats.refused += len(refused)
            if retry := by_kind.get("retry"):
                # claimed_at stays: the back-off counts from this attempt.
                await self._set_each_error(session, retry, DeliveryStatus.PENDING)
                self.stats.retried += len(retry)
            if requeue := by_kind.get("requeue"):
                # A 429 is our pace, not the subscriber's fault: the attempt does not count.
                await self._set(
                    session,
                    requeue,
                    status=DeliveryStatus.PENDING,
                    claimed_at=None,
                    attempts=col(Delivery.attempts) - 1,
                )
                self.stats.throttled += len(requeue)
            if abort := by_kind.get("abort"):
                await self._abort_runs(session, abort, now)
            await session.commit()

    @staticmethod
    async def _set(
        session: AsyncSession, rows: list[tuple[_Claimed, _Outcome]], **values: Any
    ) -> None:
        """One UPDATE for a group of rows."""
        await session.exec(
            update(Delivery)
            .where(col(Delivery.id).in_([row.id for row, _ in rows]))
            .values(**values)
        )

    async def _set_each_error(
        self, session: AsyncSession, rows: list[tuple[_Claimed, _Outcome]], status: str
    ) -> None:
        """One UPDATE per distinct error message (usually one)."""
        by_error: dict[str | None, list[tuple[_Claimed, _Outcome]]] = defaultdict(list)
        for row, outcome in rows:
            by_error[outcome.error].append((row, outcome))
        for error, group in by_error.items():
            await self._set(session, group, status=status, error=(error or "")[:255] or None)

    async def _abort_runs(
        self, session: AsyncSession, rows: list[tuple[_Claimed, _Outcome]], now: datetime
    ) -> None:
        """Stop runs whose message a platform refuses: every unsent delivery fails with it."""
        errors = {row.run_id: outcome.error or "refused" for row, outcome in rows}
        for run_id, error in errors.items():
            log.error("broadcast run %s stopped: its message is refused: %s", run_id, error)
            await session.exec(
                update(Delivery)
                .where(
                    col(Delivery.run_id) == run_id,
                    col(Delivery.status).in_((DeliveryStatus.PENDING, DeliveryStatus.SENDING)),
                )
                .values(status=DeliveryStatus.FAILED, error=error[:255])
            )
            await session.exec(
                update(BroadcastRun)
                .where(col(BroadcastRun.id) == run_id)
                .values(status=RunStatus.DONE, finished_at=now)
            )
        self.stats.aborted_runs += len(errors)
        self._runs_cache = None

    async def _finish_runs(self, runs: list[_Run]) -> None:
        """Mark done the runs with nothing left pending or in flight."""
        now = self.clock()
        unfinished = exists(
            select(Delivery.id).where(
                col(Delivery.run_id) == col(BroadcastRun.id),
                col(Delivery.status).in_((DeliveryStatus.PENDING, DeliveryStatus.SENDING)),
            )
        )
        async with self.db.session() as session:
            result = await session.exec(
                update(BroadcastRun)
                .where(
                    col(BroadcastRun.id).in_([run.id for run in runs]),
                    col(BroadcastRun.status) == RunStatus.SENDING,
                    ~unfinished,
                )
                .values(status=RunStatus.DONE, finished_at=now)
            )
            await session.commit()
        if result.rowcount:
            log.info("broadcast runs finished: %d", result.rowcount)
            self._runs_cache = None
            for run in runs:
                self._forget(run.broadcast_id)

    def _forget(self, broadcast_id: int) -> None:
        """Drop a broadcast's rendered content (its run may be over)."""
        for key in [key for key in self._content if key[0] == broadcast_id]:
            del self._content[key]


def _dialect(session: AsyncSession) -> str:
    """The session's database dialect name."""
    bind = session.bind
    return bind.dialect.name if bind is not None else ""
