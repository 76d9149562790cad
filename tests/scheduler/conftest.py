"""Fixtures for broadcasts: subscribers on the real database, topics, the emulator."""

from __future__ import annotations

import itertools
from collections.abc import AsyncIterator, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import pytest
from sqlalchemy import insert, select
from sqlmodel import col

from bot.services.anonymity import Keyring, RoutePurpose
from bot.services.broadcasts import BroadcastSpec
from sandbox.client import EmulatorClient, User
from sandbox.emulator import Emulator, EmulatorLimits
from storage.db import Database
from storage.models import Subscriber, SubscriptionTopic

SECRET = "broadcast-test-secret-0123456789-abcdefghijklmnopqrstuvwxyz"
TOKEN = "710001:BROADCAST-TEST"
TZ = "Asia/Ho_Chi_Minh"
KHA_CUU = 8635  # Xã Khả Cửu, Phú Thọ (province 25)
TAN_HOA = 4792  # Phường Tân Hòa, Phú Thọ (province 25)
BA_DINH = 4  # Phường Ba Đình, Hà Nội (province 1)
PROVINCE_OF = {KHA_CUU: 25, TAN_HOA: 25, BA_DINH: 1}
_user_ids = itertools.count(8_000_001)


@dataclass(frozen=True)
class NewSubscriber:
    """What a test subscriber looks like."""

    commune: int = KHA_CUU
    topics: tuple[str, ...] = ()
    locale: str = "vi"
    active: bool = True


def local(year: int, month: int, day: int, hour: int, minute: int = 0) -> datetime:
    """A Vietnam local time (UTC+7, no DST) as aware UTC."""
    from zoneinfo import ZoneInfo

    return datetime(year, month, day, hour, minute, tzinfo=ZoneInfo(TZ)).astimezone(UTC)


def spec(**changes: object) -> BroadcastSpec:
    """A text broadcast to everyone, now, with some fields changed."""
    fields: dict[str, object] = {
        "topic_id": None,
        "text": "<b>Thông báo</b> của Công an xã",
        "photo": None,
        "audience": "all",
        "audience_code": None,
        "audience_topic": None,
        "trigger": "now",
        "run_at": None,
        "cron": None,
        "urgent": False,
    }
    fields.update(changes)
    return BroadcastSpec(**fields)  # type: ignore[arg-type]


@pytest.fixture
def keyring() -> Keyring:
    """The keyring the subscribers' routes are encrypted with."""
    return Keyring(SECRET)


async def add_subscribers(
    db: Database, keyring: Keyring, people: Sequence[NewSubscriber]
) -> list[tuple[int, int]]:
    """Insert subscribers in bulk; return (subscriber id, Telegram user id) pairs."""
    users = [next(_user_ids) for _ in people]
    rows = [
        {
            "key": f"sub-{user}",
            "channel": "telegram",
            "route": keyring.encrypt_route("telegram", user, purpose=RoutePurpose.SUBSCRIBER),
            "commune_code": person.commune,
            "province_code": PROVINCE_OF[person.commune],
            "locale": person.locale,
            "active": person.active,
            "created_at": datetime(2026, 1, 1, tzinfo=UTC),
        }
        for user, person in zip(users, people, strict=True)
    ]
    async with db.session() as session:
        connection = await session.connection()
        await connection.execute(insert(Subscriber), rows)
        found = (
            await connection.execute(
                select(col(Subscriber.id), col(Subscriber.key)).where(
                    col(Subscriber.key).in_([row["key"] for row in rows])
                )
            )
        ).all()
        ids = {key: int(sub_id or 0) for sub_id, key in found}
        topics = [
            {"subscriber_id": ids[f"sub-{user}"], "topic_id": topic}
            for user, person in zip(users, people, strict=True)
            for topic in person.topics
        ]
        if topics:
            await connection.execute(insert(SubscriptionTopic), topics)
        await session.commit()
    return [(ids[f"sub-{user}"], user) for user in users]


@pytest.fixture(scope="session")
def topic_ids() -> tuple[str, str]:
    """Two real topic ids from the content library."""
    from bot.content.library import topics

    first, second = sorted(topics())[:2]
    return first, second


@pytest.fixture(scope="session")
def emulator_url() -> Iterator[str]:
    """The Bot API emulator in a thread, limits off (429 tests inject faults)."""
    emulator = Emulator(limits=EmulatorLimits.off())
    emulator.add_bot(token=TOKEN, username="tinbao_broadcast_bot", first_name="tinbao")
    running = emulator.start_in_thread(host="127.0.0.1", port=0)
    yield running.url
    running.stop()


@pytest.fixture
async def users(emulator_url: str) -> AsyncIterator[EmulatorClient]:
    """A control-API client on a freshly reset emulator."""
    async with EmulatorClient(emulator_url) as client:
        await client.reset()
        yield client


async def open_chats(users: EmulatorClient, user_ids: Sequence[int]) -> None:
    """Each subscriber says /start, so the emulator knows their private chat."""
    for start in range(0, len(user_ids), 500):
        chunk = user_ids[start : start + 500]
        await users.send_texts([(User(uid, f"U{uid}"), "/start") for uid in chunk])


def telegram_channel(api_root: str, rate: float = 25.0) -> dict[str, Any]:
    """The Telegram broadcast side of the test bot on a Bot API root."""
    from bot.channels.telegram.broadcast import TelegramBroadcast, make_bot

    bot = make_bot(TOKEN, f"{api_root}/bot", f"{api_root}/file/bot", connections=20)
    return {"telegram": TelegramBroadcast(bot, rate)}
