"""One broadcast run over two channels: each subscriber's own channel, each channel its own pace."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime

import httpx
import pytest
from sqlalchemy import insert

from bot.channels.zalo_bot.client import ZaloBotClient
from bot.channels.zalo_bot.outbound import ZaloBotOutbound
from bot.i18n import translator
from bot.services.anonymity import Keyring, RoutePurpose
from sandbox.client import EmulatorClient
from sandbox.zalo_bot import ZaloBotEmulator
from sandbox.zalo_common import Fault
from scheduler.delivery import BroadcastSender, TokenBucket
from storage.db import Database
from storage.models import Subscriber
from tests.conftest import FakeClock
from tests.scheduler.conftest import (
    KHA_CUU,
    PROVINCE_OF,
    NewSubscriber,
    add_subscribers,
    open_chats,
    telegram_channel,
)
from tests.scheduler.test_delivery import FakeMonotonic, broadcast_now, deliveries, reach

ZALO_TOKEN = "135790:zalo-broadcast-test"


@pytest.fixture
def zalo_bot() -> Iterator[ZaloBotEmulator]:
    """A Zalo Bot emulator with one bot."""
    emulator = ZaloBotEmulator()
    emulator.add_bot(ZALO_TOKEN)
    running = emulator.start_in_thread()
    yield emulator
    running.stop()


async def zalo_subscribers(
    db: Database, keyring: Keyring, zalo_bot: ZaloBotEmulator, names: list[str]
) -> list[str]:
    """Citizens who wrote to the Zalo bot (so it may answer them) and subscribed there."""
    chat_ids = []
    async with httpx.AsyncClient(base_url=zalo_bot.url) as http:
        for name in names:
            sent = await http.post("/control/messages", json={"user": name, "text": "xin chào"})
            chat_ids.append(str(sent.json()["chat_id"]))
    rows = [
        {
            "key": f"zalo-sub-{chat_id}",
            "channel": "zalo_bot",
            "route": keyring.encrypt_route("zalo_bot", chat_id, purpose=RoutePurpose.SUBSCRIBER),
            "commune_code": KHA_CUU,
            "province_code": PROVINCE_OF[KHA_CUU],
            "created_at": datetime(2026, 1, 1, tzinfo=UTC),
        }
        for chat_id in chat_ids
    ]
    async with db.session() as session:
        await (await session.connection()).execute(insert(Subscriber), rows)
        await session.commit()
    return chat_ids


async def test_a_mixed_audience_goes_through_each_channel_and_a_429_slows_only_its_own(
    db: Database,
    keyring: Keyring,
    clock: FakeClock,
    emulator_url: str,
    users: EmulatorClient,
    zalo_bot: ZaloBotEmulator,
) -> None:
    made = await add_subscribers(db, keyring, [NewSubscriber(), NewSubscriber()])
    await open_chats(users, [user for _, user in made])
    zalo_chats = await zalo_subscribers(db, keyring, zalo_bot, ["an", "binh", "chi"])
    # Zalo answers the first broadcast send with 429, asking for a one-second wait.
    zalo_bot.bot().faults.append(
        Fault("sendMessage", 429, "Too many requests", times=1, retry_after=1)
    )
    monotonic = FakeMonotonic()
    telegram_bucket = TokenBucket(100.0, monotonic=monotonic, sleep=monotonic.sleep)
    async with httpx.AsyncClient(timeout=10) as http:
        zalo = ZaloBotOutbound(
            ZaloBotClient(ZALO_TOKEN, base_url=zalo_bot.url, http=http), translator("vi")
        )
        sender = BroadcastSender(
            db=db,
            channels={**telegram_channel(emulator_url, rate=100.0), "zalo_bot": zalo},
            keyring=keyring,
            clock=clock,
            bucket=telegram_bucket,
        )
        broadcast = await broadcast_now(db, clock)
        await sender.drain()
        await sender.drain()  # the requeued Zalo delivery, after its wait
        await sender.close()

    found = await reach(db, broadcast)
    assert (found.sent, found.failed, found.blocked) == (5, 0, 0), await deliveries(db)
    # Each channel has its own bucket: the 429 paused and slowed Zalo's, not Telegram's.
    assert sender.buckets["zalo_bot"].throttled == 1
    assert sender.buckets["zalo_bot"].rate < zalo.broadcast_rate
    assert sender.buckets["telegram"].throttled == 0
    assert sender.buckets["telegram"].rate == 100.0
    # Zalo got plain text, each of its subscribers exactly once.
    for chat_id in zalo_chats:
        sent = zalo_bot.bot().chats[chat_id].bot_messages()
        assert [m["text"] for m in sent] == ["Thông báo của Công an xã"]
