"""A platform outage is not a broken inbox (issue 13): after MAX_ATTEMPTS failures an inbox is
marked broken only when the platform answers (getMe) and other chats get through; then its
tips move on and the supervisors get one alert for the inbox, not one per tip."""

from __future__ import annotations

import itertools

from sqlmodel import col, select

from bot.channels.outbound import OutboundMessage, SendOutcome, Sent, Transient
from bot.i18n import translator
from bot.services.anonymity import Keyring
from bot.services.outbox import enqueue
from scheduler.sender import MAX_ATTEMPTS, OutboxSender
from storage.db import Database
from storage.models import Inbox, InboxScope, OutboxMessage, Staff, StaffRole, Tip
from tests.conftest import FakeClock

SECRET = "sender-outage-test-secret-0123456789-abcdefghijklmnopqrstuvwxyz"
KHA_CUU, PHU_THO = 8635, 25
COMMUNE_CHAT, PROVINCE_CHAT, SUPERVISOR_CHAT = -1_002_000_000_001, -1_002_000_000_002, 9_100_001


class FlakyTelegram:
    """Telegram-shaped: the chats in `failing` fail (network); `up` is what getMe says."""

    name = "telegram"

    def __init__(self, failing: set[int], up: bool) -> None:
        self.failing = failing
        self.up = up
        self.sent: list[tuple[int, str]] = []
        self.probes = 0
        self._ids = itertools.count(500)

    async def send(self, message: OutboundMessage) -> SendOutcome:
        """Fail for a failing chat, else record and succeed."""
        if int(message.chat_id) in self.failing:
            return Transient("Bad Gateway")
        self.sent.append((int(message.chat_id), message.text))
        return Sent(str(next(self._ids)))

    async def probe(self) -> bool:
        """getMe."""
        self.probes += 1
        return self.up


async def _setup(db: Database, clock: FakeClock) -> tuple[int, list[str]]:
    """Two inboxes of Phú Thọ, a supervisor, three open tips in the commune inbox and one text
    row to that inbox at its last attempt; returns (commune inbox id, the tips' short ids)."""
    async with db.session() as session:
        commune = Inbox(
            chat_id=COMMUNE_CHAT,
            scope=InboxScope.COMMUNE,
            commune_code=KHA_CUU,
            province_code=PHU_THO,
            title="Công an xã Khả Cửu",
        )
        province = Inbox(
            chat_id=PROVINCE_CHAT,
            scope=InboxScope.PROVINCE,
            province_code=PHU_THO,
            title="Công an tỉnh Phú Thọ",
        )
        session.add_all(
            [
                commune,
                province,
                Staff(
                    platform_user_id=str(SUPERVISOR_CHAT),
                    display_name="Vũ Thanh Bình",
                    role=StaffRole.SUPERVISOR,
                    province_code=PHU_THO,
                ),
            ]
        )
        await session.flush()
        short_ids = [f"T-OUT00{n}" for n in range(3)]
        for number, short_id in enumerate(short_ids):
            session.add(
                Tip(
                    short_id=short_id,
                    receipt_hash=f"{number:064x}",
                    channel="telegram",
                    category="drugs",
                    commune_code=KHA_CUU,
                    inbox_id=commune.id,
                    route_level="commune",
                    text="tin báo thử",
                )
            )
        row = enqueue(
            session,
            kind="text",
            chat_id=COMMUNE_CHAT,
            inbox_id=commune.id,
            now=clock.now,
            payload={"text": "nhắc việc"},
        )
        row.attempts = MAX_ATTEMPTS - 1  # the next claim makes it the last attempt
        await session.commit()
        assert commune.id is not None
        return commune.id, short_ids


def _sender(db: Database, clock: FakeClock, telegram: FlakyTelegram) -> OutboxSender:
    return OutboxSender(
        db=db,
        channels={"telegram": telegram},
        keyring=Keyring(SECRET),
        t=translator("vi"),
        clock=clock,
    )


async def _inbox_status(db: Database, inbox_id: int) -> str:
    async with db.session() as session:
        inbox = await session.get(Inbox, inbox_id)
        assert inbox is not None
        return inbox.status


async def test_an_outage_leaves_the_inbox_alone(db: Database, clock: FakeClock) -> None:
    inbox_id, _ = await _setup(db, clock)
    telegram = FlakyTelegram({COMMUNE_CHAT, PROVINCE_CHAT, SUPERVISOR_CHAT}, up=False)
    await _sender(db, clock, telegram).drain()
    assert telegram.probes >= 1
    assert await _inbox_status(db, inbox_id) == "active", "getMe fails: an outage"
    async with db.session() as session:
        row = (await session.exec(select(OutboxMessage))).one()
    assert row.status == "pending" and row.next_attempt_at > clock.now
    assert "outage" in (row.last_error or "")
    # Once the platform is back, the same row goes out and nothing was moved.
    telegram.failing.clear()
    telegram.up = True
    clock.advance(minutes=11)
    await _sender(db, clock, telegram).drain()
    assert telegram.sent == [(COMMUNE_CHAT, "nhắc việc")]
    async with db.session() as session:
        levels = {tip.route_level for tip in (await session.exec(select(Tip))).all()}
    assert levels == {"commune"}


async def test_a_broken_inbox_moves_its_tips_with_one_alert(db: Database, clock: FakeClock) -> None:
    inbox_id, short_ids = await _setup(db, clock)
    telegram = FlakyTelegram({COMMUNE_CHAT}, up=True)
    await _sender(db, clock, telegram).drain()
    assert await _inbox_status(db, inbox_id) == "broken", "getMe answers: this chat is gone"
    alerts = [text for chat, text in telegram.sent if chat == SUPERVISOR_CHAT]
    assert len(alerts) == 1, alerts
    assert all(short_id in alerts[0] for short_id in short_ids)
    cards = [text for chat, text in telegram.sent if chat == PROVINCE_CHAT]
    assert len(cards) == 3, "each tip's card in the province inbox"
    async with db.session() as session:
        levels = (await session.exec(select(Tip.route_level).where(col(Tip.id) > 0))).all()
    assert set(levels) == {"province"}
