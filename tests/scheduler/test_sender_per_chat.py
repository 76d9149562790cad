"""The outbox sender's per-chat workers: a slow chat holds back only itself (issue 13).

A real database (SQLite file, or PostgreSQL when configured) and an Outbound that records every
send; a chosen message waits on an asyncio.Event, so "slow" is a state, not a duration.
"""

from __future__ import annotations

import asyncio
import itertools
from collections import Counter
from collections.abc import Awaitable, Callable

import pytest
from sqlmodel import col, select

from bot.channels.outbound import OutboundMessage, RetryAfter, SendOutcome, Sent
from bot.i18n import translator
from bot.services.anonymity import Keyring, RoutePurpose
from bot.services.outbox import enqueue
from scheduler.sender import OutboxSender
from storage.db import Database
from storage.models import OutboxMessage
from tests.conftest import FakeClock

SECRET = "sender-per-chat-test-secret-0123456789-abcdefghijklmnopqrstuvwxyz"
SLOW_GROUP = -1_001_000_000_001
OTHER_GROUP = -1_001_000_000_002
SAFETY = 20.0  # only so a broken sender fails the test instead of hanging it


class RecordingOutbound:
    """Telegram-shaped: records each send's start and end; gated texts wait for their Event."""

    name = "telegram"

    def __init__(self) -> None:
        self.events: list[tuple[str, str, str]] = []  # (start | end, chat id, text)
        self.gates: dict[str, asyncio.Event] = {}
        self.answers: dict[str, SendOutcome] = {}
        self.in_flight: Counter[str] = Counter()
        self.most_in_flight_per_chat = 0
        self.most_in_flight = 0
        self._ids = itertools.count(1000)

    def gate(self, text: str) -> asyncio.Event:
        """Make the send of `text` wait until the returned Event is set."""
        event = self.gates[text] = asyncio.Event()
        return event

    async def send(self, message: OutboundMessage) -> SendOutcome:
        """Record, wait at the gate if there is one, record again."""
        self.in_flight[message.chat_id] += 1
        self.most_in_flight_per_chat = max(self.most_in_flight_per_chat, *self.in_flight.values())
        self.most_in_flight = max(self.most_in_flight, sum(self.in_flight.values()))
        self.events.append(("start", message.chat_id, message.text))
        gate = self.gates.get(message.text)
        if gate is not None:
            await gate.wait()
        else:
            await asyncio.sleep(0)  # let other chats' workers interleave
        self.events.append(("end", message.chat_id, message.text))
        self.in_flight[message.chat_id] -= 1
        return self.answers.get(message.text) or Sent(str(next(self._ids)))

    def started(self, text: str) -> bool:
        """Whether the send of `text` has begun."""
        return any(kind == "start" and seen == text for kind, _, seen in self.events)

    def ended(self, text: str) -> bool:
        """Whether the send of `text` has returned."""
        return any(kind == "end" and seen == text for kind, _, seen in self.events)

    def texts_of(self, chat_id: int | str) -> list[str]:
        """The texts a chat received, in the order their sends began."""
        return [
            text for kind, chat, text in self.events if kind == "start" and chat == str(chat_id)
        ]


@pytest.fixture
def keyring_route() -> bytes:
    """A tipster's encrypted route to Telegram chat 555."""
    return Keyring(SECRET).encrypt_route("telegram", "555", purpose=RoutePurpose.TIP)


async def until(what: str, probe: Callable[[], bool | Awaitable[bool]]) -> None:
    """Yield to the event loop until probe() holds."""
    try:
        async with asyncio.timeout(SAFETY):
            while True:
                result = probe()
                if not isinstance(result, bool):
                    result = await result
                if result:
                    return
                await asyncio.sleep(0.005)
    except TimeoutError:
        raise AssertionError(f"never happened: {what}") from None


async def queue(
    db: Database, clock: FakeClock, rows: list[tuple[int | bytes, str]]
) -> dict[str, int]:
    """Outbox rows in this order, to chat ids or tipster routes; returns text -> row id."""
    async with db.session() as session:
        made = []
        for target, text in rows:
            if isinstance(target, bytes):
                made.append(
                    enqueue(
                        session, kind="tipster", now=clock.now, payload={"text": text}, route=target
                    )
                )
            else:
                made.append(
                    enqueue(
                        session, kind="alert", now=clock.now, payload={"text": text}, chat_id=target
                    )
                )
        await session.commit()
    return {row.payload["text"]: int(row.id or 0) for row in made}


async def rows_by_status(db: Database) -> Counter[str]:
    """How many outbox rows are in each status."""
    async with db.session() as session:
        rows = (await session.exec(select(OutboxMessage))).all()
    return Counter(row.status for row in rows)


def make_sender(
    db: Database, clock: FakeClock, outbound: RecordingOutbound, **options: object
) -> OutboxSender:
    """An outbox sender whose only channel is the recorder."""
    return OutboxSender(
        db=db,
        channels={"telegram": outbound},
        keyring=Keyring(SECRET),
        t=translator("vi"),
        clock=clock,
        poll_interval=0.05,
        **options,  # type: ignore[arg-type]
    )


async def test_a_slow_chat_does_not_hold_back_another_chats_rows(
    db: Database, clock: FakeClock
) -> None:
    outbound = RecordingOutbound()
    slow = outbound.gate("slow 1")
    await queue(
        db,
        clock,
        [(SLOW_GROUP, "slow 1"), (OTHER_GROUP, "other 1"), (SLOW_GROUP, "slow 2")],
    )
    sender = make_sender(db, clock, outbound)
    stop = asyncio.Event()
    running = asyncio.create_task(sender.run(stop))
    await until("the slow chat's first send begins", lambda: outbound.started("slow 1"))
    await until("the other chat's first row is sent", lambda: outbound.ended("other 1"))
    # Queued while the slow send is still in flight: picked up without waiting for it.
    await queue(db, clock, [(OTHER_GROUP, "other 2"), (OTHER_GROUP, "other 3")])
    sender.wake()
    await until("the other chat's later rows are sent", lambda: outbound.ended("other 3"))
    assert not outbound.ended("slow 1"), "the slow send was still in flight meanwhile"
    assert not outbound.started("slow 2"), "a chat's next row waits for the one before"
    slow.set()
    await until("the slow chat's rows are sent", lambda: outbound.ended("slow 2"))
    stop.set()
    await running
    assert outbound.texts_of(SLOW_GROUP) == ["slow 1", "slow 2"]
    assert outbound.texts_of(OTHER_GROUP) == ["other 1", "other 2", "other 3"]
    assert await rows_by_status(db) == {"sent": 5}


async def test_one_chats_rows_go_in_id_order_one_at_a_time(
    db: Database, clock: FakeClock, keyring_route: bytes
) -> None:
    outbound = RecordingOutbound()
    plan: list[tuple[int | bytes, str]] = []
    for n in range(12):
        plan += [(SLOW_GROUP, f"a{n}"), (OTHER_GROUP, f"b{n}")]
    plan += [(keyring_route, "tipster 1"), (keyring_route, "tipster 2")]
    await queue(db, clock, plan)
    sender = make_sender(db, clock, outbound, concurrency=4, batch_size=5)
    assert await sender.drain() == 26
    assert outbound.texts_of(SLOW_GROUP) == [f"a{n}" for n in range(12)]
    assert outbound.texts_of(OTHER_GROUP) == [f"b{n}" for n in range(12)]
    assert outbound.texts_of("555") == ["tipster 1", "tipster 2"]
    assert outbound.most_in_flight_per_chat == 1
    assert await rows_by_status(db) == {"sent": 26}


async def test_drain_returns_with_everything_sent_within_the_concurrency_limit(
    db: Database, clock: FakeClock
) -> None:
    outbound = RecordingOutbound()
    plan: list[tuple[int | bytes, str]] = [
        (-1_002_000_000_000 - chat, f"chat {chat} row {n}") for n in range(3) for chat in range(7)
    ]
    await queue(db, clock, plan)
    sender = make_sender(db, clock, outbound, concurrency=3, batch_size=4)
    assert await sender.drain() == 21
    assert len(outbound.events) == 42  # every send began and ended before drain returned
    assert outbound.most_in_flight <= 3
    assert await rows_by_status(db) == {"sent": 21}
    assert await sender.drain() == 0


async def test_stop_finishes_the_row_in_hand_and_puts_the_rest_back(
    db: Database, clock: FakeClock
) -> None:
    outbound = RecordingOutbound()
    in_hand = outbound.gate("first")
    ids = await queue(
        db, clock, [(SLOW_GROUP, "first"), (SLOW_GROUP, "second"), (SLOW_GROUP, "third")]
    )
    sender = make_sender(db, clock, outbound)
    stop = asyncio.Event()
    running = asyncio.create_task(sender.run(stop))
    await until("the first send begins", lambda: outbound.started("first"))
    assert (await rows_by_status(db))["sending"] == 3  # all three claimed by this worker
    stop.set()
    in_hand.set()
    await running
    assert outbound.texts_of(SLOW_GROUP) == ["first"]
    async with db.session() as session:
        rows = {
            row.id: row
            for row in (await session.exec(select(OutboxMessage).order_by(col(OutboxMessage.id))))
        }
    assert rows[ids["first"]].status == "sent"
    # Put back as they were: another sender (or this one, restarted) sends them next.
    assert [(rows[ids[t]].status, rows[ids[t]].attempts) for t in ("second", "third")] == [
        ("pending", 0),
        ("pending", 0),
    ]
    assert not [task for task in asyncio.all_tasks() if task.get_name().startswith("outbox-")]
    assert await make_sender(db, clock, outbound).drain() == 2
    assert outbound.texts_of(SLOW_GROUP) == ["first", "second", "third"]


async def test_a_429_makes_the_chats_other_rows_wait_but_not_other_chats(
    db: Database, clock: FakeClock
) -> None:
    outbound = RecordingOutbound()
    outbound.answers["limited 1"] = RetryAfter(30, "429 retry after 30s")
    await queue(
        db,
        clock,
        [
            (SLOW_GROUP, "limited 1"),
            (SLOW_GROUP, "limited 2"),
            (OTHER_GROUP, "other 1"),
            (SLOW_GROUP, "limited 3"),  # not claimed yet when the 429 comes (batches of 2)
        ],
    )
    sender = make_sender(db, clock, outbound, batch_size=2)
    assert await sender.drain() == 3
    assert outbound.texts_of(SLOW_GROUP) == ["limited 1"]
    assert outbound.texts_of(OTHER_GROUP) == ["other 1"]
    assert await rows_by_status(db) == {"pending": 3, "sent": 1}
    clock.advance(seconds=29)
    assert await sender.drain() == 0  # the chat's rows, claimed or not, wait out the 429
    clock.advance(seconds=2)
    del outbound.answers["limited 1"]
    assert await sender.drain() == 3
    assert outbound.texts_of(SLOW_GROUP) == ["limited 1", "limited 1", "limited 2", "limited 3"]
    async with db.session() as session:
        attempts = {
            row.payload["text"]: row.attempts for row in await session.exec(select(OutboxMessage))
        }
    assert attempts["limited 1"] == 1  # the 429 was not an attempt


async def test_two_senders_share_the_rows_and_send_none_twice(
    db: Database, database_url: str, clock: FakeClock, keyring_route: bytes
) -> None:
    outbound = RecordingOutbound()
    plan: list[tuple[int | bytes, str]] = [
        (-1_003_000_000_000 - chat, f"chat {chat} row {n}") for n in range(4) for chat in range(10)
    ]
    plan += [(keyring_route, f"tipster {n}") for n in range(5)]
    await queue(db, clock, plan)
    other_db = Database(database_url)  # another process's pool
    try:
        first = make_sender(db, clock, outbound, batch_size=6, concurrency=4)
        second = make_sender(other_db, clock, outbound, batch_size=6, concurrency=4)
        handled = await asyncio.gather(first.drain(), second.drain())
    finally:
        await other_db.dispose()
    assert sum(handled) == 45
    sent = Counter(text for kind, _, text in outbound.events if kind == "start")
    assert set(sent.values()) == {1} and len(sent) == 45
    assert await rows_by_status(db) == {"sent": 45}
