"""Flood limits: 429 with retry_after per private chat, per group and per bot."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest

from sandbox.client import EmulatorClient, User
from sandbox.emulator import Emulator, EmulatorLimits
from sandbox.limits import RateLimiter
from tests.sandbox.support import ANN, BEN, TOKEN, BotApiClient, FakeClock


def test_private_chat_bucket_refuses_after_burst(clock: FakeClock) -> None:
    limiter = RateLimiter(EmulatorLimits(private_per_second=1.0, private_burst=3), clock)
    assert [limiter.acquire(1, 10, is_group=False) for _ in range(3)] == [None, None, None]
    refusal = limiter.acquire(1, 10, is_group=False)
    assert refusal is not None and refusal.retry_after == 1 and refusal.scope == "chat"
    # Another chat has its own bucket.
    assert limiter.acquire(1, 11, is_group=False) is None
    clock.advance(1.0)
    assert limiter.acquire(1, 10, is_group=False) is None


def test_group_bucket_is_per_minute(clock: FakeClock) -> None:
    limiter = RateLimiter(EmulatorLimits(group_per_minute=20, group_burst=20), clock)
    for _ in range(20):
        assert limiter.acquire(1, -5, is_group=True) is None
    refusal = limiter.acquire(1, -5, is_group=True)
    assert refusal is not None and refusal.scope == "group" and refusal.retry_after == 3
    clock.advance(3.0)
    assert limiter.acquire(1, -5, is_group=True) is None


def test_bot_bucket_spans_chats(clock: FakeClock) -> None:
    limits = EmulatorLimits(bot_per_second=30, bot_burst=30, private_burst=3)
    limiter = RateLimiter(limits, clock)
    for chat in range(30):
        assert limiter.acquire(1, chat, is_group=False) is None
    refusal = limiter.acquire(1, 999, is_group=False)
    assert refusal is not None and refusal.scope == "bot" and refusal.retry_after == 1
    # A refusal charges nothing: chat 999 still has its whole burst once the bot refills.
    clock.advance(0.1)
    assert [limiter.acquire(1, 999, is_group=False) for _ in range(3)] == [None, None, None]
    # Other bots are not affected.
    assert limiter.acquire(2, 0, is_group=False) is None


def test_limits_off_never_refuse(clock: FakeClock) -> None:
    limiter = RateLimiter(EmulatorLimits.off(), clock)
    assert all(limiter.acquire(1, 1, is_group=False) is None for _ in range(1000))


@pytest.fixture
async def limited(clock: FakeClock) -> AsyncIterator[tuple[BotApiClient, EmulatorClient]]:
    emu = Emulator(limits=EmulatorLimits(), clock=clock)
    emu.add_bot(TOKEN, username="tinbao_bot")
    transport = httpx.ASGITransport(app=emu.app)
    async with (
        httpx.AsyncClient(transport=transport, base_url="http://e") as http,
        EmulatorClient("http://e", transport=transport) as users,
    ):
        yield BotApiClient(http), users


async def test_429_answer_and_counters(
    limited: tuple[BotApiClient, EmulatorClient], clock: FakeClock
) -> None:
    api, users = limited
    await users.send_text(ANN, "hi")
    await users.send_text(BEN, "hi")
    for _ in range(3):
        await api.ok("sendMessage", chat_id=ANN.id, text="x")
    body = await api.call("sendMessage", chat_id=ANN.id, text="x")
    assert body == {
        "ok": False,
        "error_code": 429,
        "description": "Too Many Requests: retry after 1",
        "parameters": {"retry_after": 1},
    }
    # Ben's chat is separate; after waiting, Ann's chat accepts again.
    await api.ok("sendMessage", chat_id=BEN.id, text="x")
    clock.advance(1.0)
    await api.ok("sendMessage", chat_id=ANN.id, text="x")
    counters = await users.counters()
    assert counters["refused_429_total"] == 1
    assert counters["refused_429_by_chat"] == {str(ANN.id): 1}
    assert counters["refused_429_by_scope"] == {"chat": 1}
    assert counters["sent_by_chat"] == {str(ANN.id): 4, str(BEN.id): 1}
    # The refused message never reached the transcript.
    assert len(await users.bot_messages(ANN.id)) == 4


async def test_group_limit_over_the_api(limited: tuple[BotApiClient, EmulatorClient]) -> None:
    api, users = limited
    await users.add_bot_to_group(ANN, -100200, "Công an xã")
    for _ in range(20):
        await api.ok("sendMessage", chat_id=-100200, text="x")
    body = await api.call("sendMessage", chat_id=-100200, text="x")
    assert body["error_code"] == 429 and body["parameters"]["retry_after"] == 3


async def test_global_limit_over_the_api(limited: tuple[BotApiClient, EmulatorClient]) -> None:
    api, users = limited
    people = [User(2000 + index, f"U{index}") for index in range(31)]
    for person in people:
        await users.send_text(person, "hi")
    for person in people[:30]:
        await api.ok("sendMessage", chat_id=person.id, text="x")
    body = await api.call("sendMessage", chat_id=people[30].id, text="x")
    assert body["error_code"] == 429
    assert (await users.counters())["refused_429_by_scope"] == {"bot": 1}
