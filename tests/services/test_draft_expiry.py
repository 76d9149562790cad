"""The draft sweep: notices are outbox rows committed with the deletes; texts follow settings."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr
from sqlmodel import select

from bot.app import build_services, make_maintenance, make_sender
from bot.channels.outbound import OutboundMessage, SendOutcome, Sent, Transient
from bot.i18n import translator
from bot.services.anonymity import Keyring, RoutePurpose
from bot.services.broadcast_flow import BroadcastFlow, refusal_text
from bot.services.drafts import ExpiredDraft
from bot.services.flow import Turn
from bot.services.intake import IntakeLimits, IntakeService
from bot.services.steps import Outcome
from scheduler.sender import OutboxSender
from storage.db import Database
from storage.models import ConversationDraft, OutboxMessage, TipAttachment
from tests.conftest import FakeClock
from tinbao.settings import Settings

KEYRING = Keyring("draft-expiry-secret-0123456789-abcdefghijkl")
TTL = timedelta(hours=24)


def service(db: Database, clock: FakeClock, keyring: Keyring = KEYRING) -> IntakeService:
    """An intake service on the test database, counting its wake-ups of the sender."""
    svc = IntakeService(db=db, keyring=keyring, clock=clock)
    svc.wakes = 0  # type: ignore[attr-defined]

    def wake() -> None:
        svc.wakes += 1  # type: ignore[attr-defined]

    svc.on_outbox = wake
    return svc


async def add_draft(
    db: Database,
    clock: FakeClock,
    *,
    chat: int,
    state: str,
    silent_for: timedelta,
    channel: str = "zalo",
    locale: str = "en",
) -> None:
    """A draft last touched `silent_for` ago, with one collected file."""
    key = KEYRING.user_key(channel, chat)
    touched = clock.now - silent_for
    async with db.session() as session:
        session.add(
            ConversationDraft(
                key=key,
                channel=channel,
                route=KEYRING.encrypt_route(channel, chat, purpose=RoutePurpose.DRAFT),
                state=state,
                data={},
                locale=locale,
                updated_at=touched,
                expires_at=touched + TTL,
            )
        )
        session.add(TipAttachment(draft_key=key, kind="photo", content=b"x", size=1))
        await session.commit()


async def notices(db: Database) -> list[OutboxMessage]:
    """The queued expiry notices, oldest first."""
    async with db.session() as session:
        statement = (
            select(OutboxMessage)
            .where(OutboxMessage.kind == "draft_expired")
            .order_by(OutboxMessage.id)  # type: ignore[arg-type]
        )
        return list((await session.exec(statement)).all())


async def left(db: Database) -> tuple[set[str], int]:
    """The draft keys still stored and the number of files collected for drafts."""
    async with db.session() as session:
        keys = set((await session.exec(select(ConversationDraft.key))).all())
        files = (await session.exec(select(TipAttachment))).all()
    return keys, len(files)


async def four_drafts(db: Database, clock: FakeClock) -> None:
    """Two expired mid-tip, one expired at the menu (no notice), one still fresh."""
    await add_draft(db, clock, chat=1, state="details", silent_for=timedelta(hours=25))
    await add_draft(
        db, clock, chat=2, state="category", silent_for=timedelta(hours=30), channel="telegram"
    )
    await add_draft(db, clock, chat=3, state="menu", silent_for=timedelta(hours=26))
    await add_draft(db, clock, chat=4, state="details", silent_for=timedelta(hours=1))


async def test_notices_are_queued_with_the_deletes(db: Database, clock: FakeClock) -> None:
    await four_drafts(db, clock)
    svc = service(db, clock)
    assert await svc.expire_drafts() == 2
    assert svc.wakes == 1  # type: ignore[attr-defined]
    # Read back through another connection pool: both the deletes and the rows are committed.
    other = Database(db.url)
    try:
        rows = await notices(other)
        keys, files = await left(other)
    finally:
        await other.dispose()
    assert keys == {KEYRING.user_key("zalo", 4)} and files == 1
    assert {KEYRING.decrypt_route(r.route or b"") for r in rows} == {
        ("telegram", "2"),
        ("zalo", "1"),
    }
    assert all(r.status == "pending" and r.chat_id is None and r.tip_id is None for r in rows)
    assert all("24 hours" in r.payload["text"] and "/start" in r.payload["text"] for r in rows)
    assert await svc.expire_drafts() == 0 and len(await notices(db)) == 2


async def test_the_route_is_sealed_afresh(db: Database, clock: FakeClock) -> None:
    await add_draft(db, clock, chat=1, state="review", silent_for=timedelta(hours=25))
    async with db.session() as session:
        draft_route = (await session.exec(select(ConversationDraft.route))).one()
    await service(db, clock).expire_drafts()
    (row,) = await notices(db)
    assert row.route != draft_route  # no two tables share a ciphertext
    assert KEYRING.decrypt_route(row.route or b"") == ("zalo", "1")


async def test_two_sweepers_queue_each_notice_once(database_url: str, clock: FakeClock) -> None:
    first, second = Database(database_url), Database(database_url)
    try:
        await four_drafts(first, clock)
        counts = await asyncio.gather(
            service(first, clock).expire_drafts(), service(second, clock).expire_drafts()
        )
        assert sum(counts) == 2
        assert len(await notices(first)) == 2
    finally:
        await first.dispose()
        await second.dispose()


async def test_a_failing_notice_keeps_its_draft_and_the_others_go(
    db: Database, clock: FakeClock
) -> None:
    await four_drafts(db, clock)
    svc = service(db, clock)
    queue = svc._queue_notice
    broken = KEYRING.user_key("telegram", 2)

    def flaky(session: Any, item: ExpiredDraft) -> bool:
        if KEYRING.decrypt_route(item.route) == ("telegram", "2"):
            raise RuntimeError("rendering failed")
        return queue(session, item)

    svc._queue_notice = flaky  # type: ignore[method-assign]
    assert await svc.expire_drafts() == 1
    keys, _ = await left(db)
    assert keys == {broken, KEYRING.user_key("zalo", 4)}, "the failed one waits, deleted not"
    svc._queue_notice = queue  # type: ignore[method-assign]
    assert await svc.expire_drafts() == 1
    assert [KEYRING.decrypt_route(r.route or b"")[0] for r in await notices(db)] == [
        "zalo",
        "telegram",
    ]


async def test_a_dropped_key_deletes_without_a_notice(db: Database, clock: FakeClock) -> None:
    await add_draft(db, clock, chat=1, state="details", silent_for=timedelta(hours=25))
    assert (
        await service(db, clock, Keyring("another-secret-0123456789-abcdefghij")).expire_drafts()
        == 0
    )
    assert await left(db) == (set(), 0) and await notices(db) == []


class FlakyChannel:
    """A channel whose first send fails as a platform outage would."""

    name = "zalo"

    def __init__(self) -> None:
        self.sent: list[OutboundMessage] = []
        self.failures = 1

    async def send(self, message: OutboundMessage) -> SendOutcome:
        """Fail once, then deliver."""
        if self.failures:
            self.failures -= 1
            return Transient("platform down")
        self.sent.append(message)
        return Sent(str(len(self.sent)))


async def test_the_notice_survives_a_failed_send(db: Database, clock: FakeClock) -> None:
    await add_draft(db, clock, chat=1, state="details", silent_for=timedelta(hours=25))
    assert await service(db, clock).expire_drafts() == 1
    channel = FlakyChannel()
    sender = OutboxSender(
        db=db, channels={"zalo": channel}, keyring=KEYRING, t=translator("en"), clock=clock
    )
    await sender.drain()
    (row,) = await notices(db)
    assert (row.status, row.attempts, channel.sent) == ("pending", 1, [])
    clock.advance(minutes=1)
    await sender.drain()
    (row,) = await notices(db)
    assert row.status == "sent"
    assert [(m.chat_id, "24 hours" in m.text) for m in channel.sent] == [("1", True)]


# --- texts follow the settings ---------------------------------------------------------------


@pytest.fixture
def custom(database_url: str, tmp_path: Path) -> Settings:
    """Settings with a 36-hour draft TTL, 5 MB files and quiet hours 22:00-06:00; no messenger."""
    return Settings(
        mode="dev",
        database_url=database_url,
        secret_key=SecretStr("draft-expiry-secret-0123456789-abcdefghijkl"),
        data_dir=tmp_path / "data",
        draft_ttl_hours=36,
        max_file_bytes=5 * 1024 * 1024,
        quiet_start=22,
        quiet_end=6,
        _env_file=None,  # type: ignore[call-arg]
    )


async def test_texts_say_the_configured_values(custom: Settings, clock: FakeClock) -> None:
    services = build_services(custom, clock=clock)
    try:
        intake = services.intake
        for locale in ("en", "vi"):
            t = translator(locale)
            assert "36" in intake.expiry_notice(t)
            assert "5 MB" in intake._unsupported_text(t, "too_big")
            assert "22:00" in refusal_text(t, "quiet_hours", quiet=(22, 6))
        en = translator("en")
        assert "after 36 hours" in intake.expiry_notice(en)
        assert "(21:00–07:00)" in refusal_text(en, "quiet_hours"), "the console's default"
        flow = next(f for f in intake.flows if isinstance(f, BroadcastFlow))
        draft = ConversationDraft(key="k", channel="telegram", route=b"", state="bc_time")
        turn = Turn(None, draft, en, clock.now, Outcome())  # type: ignore[arg-type]
        asked = await flow.render(turn)
        assert "between 22:00 and 06:00" in asked.text
    finally:
        await services.db.dispose()


def test_one_hour_is_singular() -> None:
    intake = IntakeService(
        db=None,  # type: ignore[arg-type]
        keyring=KEYRING,
        limits=IntakeLimits(draft_ttl=timedelta(hours=1)),
    )
    assert "after 1 hour without" in intake.expiry_notice(translator("en"))
    intake.limits = IntakeLimits(draft_ttl=timedelta(hours=1.5))
    assert "after 1.5 hours without" in intake.expiry_notice(translator("en"))


async def test_maintenance_sweeps_without_any_messenger(custom: Settings, clock: FakeClock) -> None:
    services = build_services(custom, clock=clock)
    try:
        assert not services.settings.telegram_enabled
        await add_draft(services.db, clock, chat=1, state="details", silent_for=timedelta(hours=1))
        clock.advance(hours=36)
        await make_maintenance(services).expire_drafts_now()
        (row,) = await notices(services.db)
        assert "36" in row.payload["text"]
        channel = FlakyChannel()
        channel.failures = 0
        await make_sender(services, {"zalo": channel}).drain()
        assert [m.chat_id for m in channel.sent] == ["1"]
    finally:
        await services.db.dispose()
