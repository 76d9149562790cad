"""The broadcast sender through the Bot API emulator: delivery, blocks, 429, retries, leases."""

from __future__ import annotations

import asyncio
import io
from collections.abc import AsyncIterator, Callable
from datetime import timedelta
from typing import Any

import pytest
from PIL import Image
from sqlalchemy import update
from sqlmodel import col, select

from bot.channels.telegram.broadcast import TelegramBroadcast, make_bot
from bot.services import broadcasts as svc
from bot.services.anonymity import Keyring, RoutePurpose
from sandbox.client import EmulatorClient, User
from scheduler.broadcasts import OutreachRuntime, fire_due
from scheduler.delivery import BroadcastSender, TokenBucket
from scheduler.leader import LeaderLock
from storage.db import Database
from storage.models import Broadcast, BroadcastRun, Delivery, Subscriber
from tests.conftest import FakeClock
from tests.scheduler.conftest import (
    TOKEN,
    TZ,
    NewSubscriber,
    add_subscribers,
    local,
    open_chats,
    spec,
    telegram_channel,
)


class FakeMonotonic:
    """A monotonic clock and a sleep that only moves it: pacing without waiting."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        """The fake monotonic time."""
        return self.now

    async def sleep(self, seconds: float) -> None:
        """Record the wait and move time on."""
        self.sleeps.append(seconds)
        self.now += seconds


@pytest.fixture
def monotonic() -> FakeMonotonic:
    """The pacing clock of the sender under test."""
    return FakeMonotonic()


SenderFactory = Callable[..., BroadcastSender]


@pytest.fixture
async def make_sender(
    db: Database, keyring: Keyring, clock: FakeClock, emulator_url: str, monotonic: FakeMonotonic
) -> AsyncIterator[SenderFactory]:
    """Senders on the test database and the emulator, paced on the fake monotonic clock."""
    bots = []

    def make(**options: Any) -> BroadcastSender:
        slots = int(options.pop("slots", 8))
        bot = make_bot(TOKEN, f"{emulator_url}/bot", f"{emulator_url}/file/bot", connections=slots)
        bots.append(bot)
        rate = float(options.pop("rate", 1000.0))
        bucket = TokenBucket(rate, monotonic=monotonic, sleep=monotonic.sleep)
        channels = {"telegram": TelegramBroadcast(bot, rate)}
        return BroadcastSender(
            db=db,
            channels=channels,
            keyring=keyring,
            slots=slots,
            clock=clock,
            bucket=bucket,
            **options,
        )

    yield make
    for bot in bots:
        await bot.shutdown()


async def broadcast_now(db: Database, clock: FakeClock, **changes: object) -> Broadcast:
    """Create a broadcast due now and fire it (plan its run)."""
    async with db.session() as session:
        broadcast = await svc.create_broadcast(
            session, spec=spec(**changes), staff_id=None, now=clock.now, tz=TZ
        )
    await fire_due(db, now=clock.now, tz=TZ, broadcast_ids=[broadcast.id or 0])
    return broadcast


async def reach(db: Database, broadcast: Broadcast) -> svc.BroadcastReach:
    """A broadcast's reach now."""
    async with db.session() as session:
        return await svc.reach(session, broadcast.id or 0)


async def deliveries(db: Database) -> list[Delivery]:
    """Every delivery row, by id."""
    async with db.session() as session:
        return list((await session.exec(select(Delivery).order_by(col(Delivery.id)))).all())


async def run_status(db: Database, broadcast: Broadcast) -> str:
    """The status of the broadcast's only run."""
    async with db.session() as session:
        (run,) = (
            await session.exec(
                select(BroadcastRun).where(BroadcastRun.broadcast_id == broadcast.id)
            )
        ).all()
    return run.status


async def subscribers(
    db: Database, keyring: Keyring, users: EmulatorClient, people: list[NewSubscriber]
) -> list[tuple[int, int]]:
    """Subscribers whose chats exist in the emulator."""
    made = await add_subscribers(db, keyring, people)
    await open_chats(users, [user for _, user in made])
    return made


def jpeg() -> bytes:
    """A small real JPEG."""
    buffer = io.BytesIO()
    Image.new("RGB", (16, 16), "blue").save(buffer, "JPEG")
    return buffer.getvalue()


async def test_every_subscriber_gets_the_message_once_in_their_language(
    db: Database,
    keyring: Keyring,
    users: EmulatorClient,
    clock: FakeClock,
    make_sender: SenderFactory,
    topic_ids: tuple[str, str],
) -> None:
    from bot.content.library import topics

    people = [NewSubscriber(locale="vi")] * 12 + [NewSubscriber(locale="en")] * 8
    made = await subscribers(db, keyring, users, people)
    broadcast = await broadcast_now(db, clock, text=None, topic_id=topic_ids[0])
    sender = make_sender()
    assert await sender.drain() == 20
    topic = topics()[topic_ids[0]]
    for (_, user), person in zip(made, people, strict=True):
        (message,) = await users.bot_messages(user)
        assert message["text"].startswith(topic.title(person.locale))
    assert (await users.counters())["sent_total"] == 20
    found = await reach(db, broadcast)
    assert (found.planned, found.sent, found.pending, found.failed) == (20, 20, 0, 0)
    assert await run_status(db, broadcast) == "done"
    assert all(d.status == "sent" and d.sent_at == clock.now for d in await deliveries(db))


async def test_a_photo_is_uploaded_once_then_sent_by_file_id(
    db: Database,
    keyring: Keyring,
    users: EmulatorClient,
    clock: FakeClock,
    make_sender: SenderFactory,
) -> None:
    made = await subscribers(db, keyring, users, [NewSubscriber()] * 6)
    await broadcast_now(db, clock, text="<b>Họp dân</b> 19:00", photo=jpeg())
    assert await make_sender().drain() == 6
    file_ids = set()
    for _, user in made:
        (message,) = await users.bot_messages(user)
        assert message["caption"] == "Họp dân 19:00"
        assert message["media"]["kind"] == "photo"
        file_ids.add(message["media"]["file_id"])
    assert len(file_ids) == 1  # a re-upload would get a new file id


async def test_a_blocked_subscriber_becomes_inactive_and_is_skipped(
    db: Database,
    keyring: Keyring,
    users: EmulatorClient,
    clock: FakeClock,
    make_sender: SenderFactory,
) -> None:
    made = await subscribers(db, keyring, users, [NewSubscriber()] * 3)
    blocker_id, blocker_user = made[1]
    await users.block(User(blocker_user, "Blocker"))
    first = await broadcast_now(db, clock)
    sender = make_sender()
    await sender.drain()
    found = await reach(db, first)
    assert (found.sent, found.blocked) == (2, 1)
    async with db.session() as session:
        blocker = await session.get(Subscriber, blocker_id)
        assert blocker is not None
        assert (blocker.active, blocker.blocked_at) == (False, clock.now)
    second = await broadcast_now(db, clock, text="Lần hai")
    assert (await reach(db, second)).planned == 2
    await sender.drain()
    assert (await users.counters())["errors_by_code"] == {"403": 1}


async def test_a_subscriber_gone_after_planning_is_not_sent_to(
    db: Database,
    keyring: Keyring,
    users: EmulatorClient,
    clock: FakeClock,
    make_sender: SenderFactory,
) -> None:
    made = await subscribers(db, keyring, users, [NewSubscriber()] * 3)
    broadcast = await broadcast_now(db, clock)
    async with db.session() as session:
        await session.exec(
            update(Subscriber).where(col(Subscriber.id) == made[0][0]).values(active=False)
        )
        await session.commit()
    await make_sender().drain()
    found = await reach(db, broadcast)
    assert (found.sent, found.failed) == (2, 1)
    assert await users.bot_messages(made[0][1]) == []


async def test_429_pauses_slows_down_and_loses_nothing(
    db: Database,
    keyring: Keyring,
    users: EmulatorClient,
    clock: FakeClock,
    make_sender: SenderFactory,
    monotonic: FakeMonotonic,
) -> None:
    made = await subscribers(db, keyring, users, [NewSubscriber()] * 10)
    broadcast = await broadcast_now(db, clock)
    await users.add_fault("sendMessage", "error", status=429, retry_after=3, count=2)
    sender = make_sender(rate=100.0, slots=4, lanes=1)
    assert await sender.drain() >= 10
    found = await reach(db, broadcast)
    assert (found.sent, found.failed, found.pending) == (10, 0, 0)
    for _, user in made:
        assert len(await users.bot_messages(user)) == 1
    assert sender.bucket.throttled == 2
    assert sender.stats.throttled == 2
    assert 3.0 in monotonic.sleeps  # every slot waited out retry_after
    assert sender.bucket.rate == pytest.approx(100.0 * 0.8 * 0.8)
    # A minute later the configured rate is back.
    monotonic.now += 61 + 3
    await sender.bucket.acquire()
    assert sender.bucket.rate == 100.0
    async with db.session() as session:
        attempts = (await session.exec(select(Delivery.attempts))).all()
    assert set(attempts) == {1}  # a 429 is not the subscriber's attempt


async def test_the_pace_is_the_configured_rate(monotonic: FakeMonotonic) -> None:
    bucket = TokenBucket(25.0, monotonic=monotonic, sleep=monotonic.sleep)
    start = monotonic.now
    for _ in range(251):
        await bucket.acquire()
    # The first send goes at once, then one every 1/25 s: 250 more take 10 s.
    assert monotonic.now - start == pytest.approx(10.0)
    assert bucket.granted == 251


async def test_other_errors_are_retried_later_then_fail(
    db: Database,
    keyring: Keyring,
    users: EmulatorClient,
    clock: FakeClock,
    make_sender: SenderFactory,
) -> None:
    made = await subscribers(db, keyring, users, [NewSubscriber()] * 2)
    broadcast = await broadcast_now(db, clock)
    flaky, broken = made
    await users.add_fault("sendMessage", "error", status=502, count=1, chat_id=flaky[1])
    await users.add_fault("sendMessage", "error", status=500, chat_id=broken[1])
    sender = make_sender(max_attempts=3, retry_delay=timedelta(seconds=30))
    await sender.drain()
    assert (await reach(db, broadcast)).pending == 2
    clock.advance(seconds=29)
    await sender.drain()
    assert (await reach(db, broadcast)).sent == 0  # the back-off is not over
    clock.advance(seconds=1)
    await sender.drain()
    assert (await reach(db, broadcast)).sent == 1
    clock.advance(seconds=60)  # the second back-off doubles
    await sender.drain()
    found = await reach(db, broadcast)
    assert (found.sent, found.failed, found.pending) == (1, 1, 0)
    assert await run_status(db, broadcast) == "done"
    rows = {d.subscriber_id: d for d in await deliveries(db)}
    assert (rows[broken[0]].attempts, rows[broken[0]].error) == (3, "Internal Server Error")


async def test_content_telegram_refuses_stops_the_run(
    db: Database,
    keyring: Keyring,
    users: EmulatorClient,
    clock: FakeClock,
    make_sender: SenderFactory,
) -> None:
    await subscribers(db, keyring, users, [NewSubscriber()] * 40)
    broadcast = await broadcast_now(db, clock)
    async with db.session() as session:
        # Broken after validation (edited by hand): Telegram would refuse it for everyone.
        await session.exec(
            update(Broadcast).where(col(Broadcast.id) == broadcast.id).values(text="<b>x")
        )
        await session.commit()
    sender = make_sender(slots=4)
    await sender.drain()
    found = await reach(db, broadcast)
    assert (found.sent, found.failed, found.pending) == (0, 40, 0)
    assert (await users.counters())["calls_by_method"].get("sendMessage", 0) <= 4
    assert await run_status(db, broadcast) == "done"


async def test_pause_halts_a_run_and_resume_continues_it(
    db: Database,
    keyring: Keyring,
    users: EmulatorClient,
    clock: FakeClock,
    make_sender: SenderFactory,
) -> None:
    await subscribers(db, keyring, users, [NewSubscriber()] * 5)
    broadcast = await broadcast_now(db, clock)
    sender = make_sender()

    async def act(action: str) -> None:
        async with db.session() as session:
            await svc.set_state(
                session, broadcast_id=broadcast.id or 0, action=action, now=clock.now
            )

    await act("pause")
    assert await sender.drain() == 0
    await act("resume")
    assert await sender.drain() == 5
    assert (await reach(db, broadcast)).sent == 5


async def test_cancel_drops_what_is_unsent(
    db: Database,
    keyring: Keyring,
    users: EmulatorClient,
    clock: FakeClock,
    make_sender: SenderFactory,
) -> None:
    await subscribers(db, keyring, users, [NewSubscriber()] * 5)
    broadcast = await broadcast_now(db, clock)
    async with db.session() as session:
        await svc.set_state(session, broadcast_id=broadcast.id or 0, action="cancel", now=clock.now)
    assert await make_sender().drain() == 0
    found = await reach(db, broadcast)
    assert (found.cancelled, found.sent, found.pending) == (5, 0, 0)
    assert await run_status(db, broadcast) == "done"


async def test_a_long_run_stops_for_the_night(
    db: Database,
    keyring: Keyring,
    users: EmulatorClient,
    clock: FakeClock,
    make_sender: SenderFactory,
) -> None:
    await subscribers(db, keyring, users, [NewSubscriber()] * 3)
    clock.now = local(2026, 11, 22, 20, 59)
    broadcast = await broadcast_now(db, clock)
    clock.now = local(2026, 11, 22, 21, 0)
    sender = make_sender()
    assert await sender.drain() == 0
    clock.now = local(2026, 11, 23, 7, 0)
    assert await sender.drain() == 3
    assert (await reach(db, broadcast)).sent == 3


async def test_rows_left_in_flight_are_taken_back(
    db: Database,
    keyring: Keyring,
    users: EmulatorClient,
    clock: FakeClock,
    make_sender: SenderFactory,
) -> None:
    made = await subscribers(db, keyring, users, [NewSubscriber()] * 4)
    broadcast = await broadcast_now(db, clock)
    crashed_at = clock.now
    async with db.session() as session:  # a sender claimed everything, then died
        await session.exec(
            update(Delivery).values(status="sending", claimed_at=crashed_at, attempts=1)
        )
        await session.commit()
    sender = make_sender(lease=timedelta(seconds=60))
    clock.advance(seconds=30)
    assert await sender.drain() == 0  # still leased
    clock.advance(seconds=31)
    assert await sender.drain() == 4
    for _, user in made:
        assert len(await users.bot_messages(user)) == 1
    assert (await reach(db, broadcast)).sent == 4


async def test_a_new_leader_takes_everything_in_flight_back_at_once(
    db: Database,
    keyring: Keyring,
    users: EmulatorClient,
    clock: FakeClock,
    make_sender: SenderFactory,
) -> None:
    await subscribers(db, keyring, users, [NewSubscriber()] * 2)
    broadcast = await broadcast_now(db, clock)
    async with db.session() as session:
        await session.exec(
            update(Delivery).values(status="sending", claimed_at=clock.now, attempts=1)
        )
        await session.commit()
    sender = make_sender()
    assert await sender.reclaim(everything=True) == 2
    assert await sender.drain() == 2
    assert (await reach(db, broadcast)).sent == 2


async def test_a_route_for_a_channel_not_configured_here_fails(
    db: Database, keyring: Keyring, clock: FakeClock, make_sender: SenderFactory
) -> None:
    ((sub_id, _user),) = await add_subscribers(db, keyring, [NewSubscriber()])
    async with db.session() as session:
        await session.exec(
            update(Subscriber)
            .where(col(Subscriber.id) == sub_id)
            .values(
                channel="zalo",
                route=keyring.encrypt_route("zalo", "z-1", purpose=RoutePurpose.SUBSCRIBER),
            )
        )
        await session.commit()
    broadcast = await broadcast_now(db, clock)
    await make_sender().drain()
    found = await reach(db, broadcast)
    assert found.failed == 1
    (delivery,) = await deliveries(db)
    assert delivery.error == "channel zalo is not configured"


async def test_leader_lock_admits_one_process(database_url: str) -> None:
    first, second = LeaderLock(database_url), LeaderLock(database_url)
    try:
        assert await first.try_acquire()
        assert not await second.try_acquire()
        assert await first.still_held()
        await first.release()
        assert await second.try_acquire()
        assert not await first.try_acquire()
    finally:
        await first.release()
        await second.release()


async def test_runtime_leads_schedules_and_sends(
    db: Database, keyring: Keyring, users: EmulatorClient, emulator_url: str
) -> None:
    made = await subscribers(db, keyring, users, [NewSubscriber()] * 3)
    runtime = OutreachRuntime(
        db=db,
        keyring=keyring,
        channels=telegram_channel(emulator_url),
        timezone=TZ,
        rate=200.0,
        leader_retry=0.05,
    )
    other = OutreachRuntime(
        db=db,
        keyring=keyring,
        channels=telegram_channel(emulator_url),
        timezone=TZ,
        leader_retry=0.05,
    )
    await runtime.start()
    await other.start()
    try:
        await until(lambda: runtime.is_leader or other.is_leader)
        leader, follower = (runtime, other) if runtime.is_leader else (other, runtime)
        from storage.types import utcnow

        async with db.session() as session:
            # Urgent: this test runs on the real clock, which may be in quiet hours.
            await svc.create_broadcast(
                session, spec=spec(urgent=True), staff_id=None, now=utcnow(), tz=TZ
            )
        follower.wake()  # a process that does not lead changes nothing
        leader.wake()
        for _, user in made:
            (message,) = await users.wait_bot_messages(user, 1, timeout=10)
            assert message["text"] == "Thông báo của Công an xã"
        assert not follower.is_leader
        await leader.stop()
        await until(lambda: follower.is_leader)  # it takes over
    finally:
        await runtime.stop()
        await other.stop()


async def until(check: Callable[[], bool], timeout: float = 10.0) -> None:
    """Poll a condition until it holds (fails after `timeout` seconds)."""
    async with asyncio.timeout(timeout):
        while not check():
            await asyncio.sleep(0.02)


async def test_a_late_event_loop_does_not_slow_the_pace(monotonic: FakeMonotonic) -> None:
    async def late_sleep(seconds: float) -> None:
        await monotonic.sleep(seconds * 1.3 + 0.005)  # a busy loop wakes everyone late

    bucket = TokenBucket(25.0, monotonic=monotonic, sleep=late_sleep)

    async def sender() -> None:
        for _ in range(50):
            await bucket.acquire()

    start = monotonic.now
    await asyncio.gather(*(sender() for _ in range(5)))  # always someone waiting
    assert bucket.granted == 250
    assert monotonic.now - start == pytest.approx(10.0, abs=0.1)


async def test_idle_time_earns_no_burst(monotonic: FakeMonotonic) -> None:
    bucket = TokenBucket(25.0, monotonic=monotonic, sleep=monotonic.sleep)
    await bucket.acquire()
    monotonic.now += 100.0  # nothing to send for a while
    start = monotonic.now
    for _ in range(3):
        await bucket.acquire()
    assert monotonic.now - start == pytest.approx(2 / 25)
