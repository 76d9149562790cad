"""Fault injection: errors, calls held before or after they take effect, dropped callers."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import httpx
import pytest
from telegram import Bot
from telegram.error import NetworkError, RetryAfter

from sandbox.client import EmulatorClient, EmulatorError
from sandbox.emulator import Emulator
from sandbox.faults import faults_of
from tests.sandbox.support import ANN, BEN, TOKEN, BotApiClient, FakeClock

WAIT = 5.0


async def until(check: Callable[[], Awaitable[bool]]) -> None:
    """Poll a condition of the emulator until it holds (fails after WAIT seconds)."""
    async with asyncio.timeout(WAIT):
        while not await check():
            await asyncio.sleep(0.005)


async def held_now(users: EmulatorClient) -> int:
    """How many calls a hold keeps waiting right now."""
    return int((await users.counters())["faults"]["held_now"])


async def test_error_answers_the_next_calls_then_stops(
    api: BotApiClient, users: EmulatorClient
) -> None:
    await users.send_text(ANN, "hi")
    await users.add_fault("sendMessage", "error", status=500, count=2)
    for _ in range(2):
        body = await api.call("sendMessage", chat_id=ANN.id, text="card")
        assert body == {"ok": False, "error_code": 500, "description": "Internal Server Error"}
    assert (await api.call("sendMessage", chat_id=ANN.id, text="card"))["ok"]
    assert [m["text"] for m in await users.bot_messages(ANN.id)] == ["card"]
    counters = await users.counters()
    assert counters["faults"]["injected_total"] == 2
    assert counters["faults"]["injected_by_mode"] == {"error": 2}
    assert counters["faults"]["active_rules"] == 0
    assert counters["errors_by_code"] == {"500": 2}
    assert await users.faults() == []


async def test_429_carries_retry_after(api: BotApiClient, users: EmulatorClient) -> None:
    await users.send_text(ANN, "hi")
    await users.add_fault("sendMessage", "error", status=429, retry_after=2, count=1)
    body = await api.call("sendMessage", chat_id=ANN.id, text="card")
    assert body == {
        "ok": False,
        "error_code": 429,
        "description": "Too Many Requests: retry after 2",
        "parameters": {"retry_after": 2},
    }


async def test_error_window_ends_after_its_seconds(
    emulator: Emulator, clock: FakeClock, api: BotApiClient, users: EmulatorClient
) -> None:
    faults_of(emulator.bot()).clock = clock
    await users.send_text(ANN, "hi")
    await users.add_fault("*", "error", status=502, seconds=10)
    for _ in range(3):
        assert (await api.call("sendMessage", chat_id=ANN.id, text="x"))["error_code"] == 502
    assert (await api.call("getMe"))["error_code"] == 502, "'*' matches every method"
    clock.advance(10)
    assert (await api.call("sendMessage", chat_id=ANN.id, text="x"))["ok"]
    assert await users.faults() == []


async def test_rules_match_method_and_chat(api: BotApiClient, users: EmulatorClient) -> None:
    await users.send_text(ANN, "hi")
    await users.send_text(BEN, "hi")
    await users.add_fault("SENDMESSAGE", "error", status=503, chat_id=ANN.id)
    assert (await api.call("sendMessage", chat_id=ANN.id, text="x"))["error_code"] == 503
    assert (await api.call("sendMessage", chat_id=BEN.id, text="x"))["ok"]
    assert (await api.call("sendLocation", chat_id=ANN.id, latitude=1, longitude=2))["ok"]
    (rule,) = await users.faults()
    assert rule["matched"] == 1 and rule["chat_id"] == ANN.id
    assert await users.clear_faults() == 1
    assert (await api.call("sendMessage", chat_id=ANN.id, text="x"))["ok"]


async def test_hold_before_records_nothing_until_released(
    api: BotApiClient, users: EmulatorClient
) -> None:
    await users.send_text(ANN, "hi")
    await users.add_fault("sendMessage", "hold_before", seconds=60, count=1)
    call = asyncio.create_task(api.call("sendMessage", chat_id=ANN.id, text="card"))
    await until(lambda: _is(held_now(users), 1))
    assert await users.bot_messages(ANN.id) == []
    # The rule's count is used up, yet clearing still releases the call it holds.
    assert await users.clear_faults() == 0
    assert (await asyncio.wait_for(call, WAIT))["ok"]
    assert [m["text"] for m in await users.bot_messages(ANN.id)] == ["card"]
    assert await held_now(users) == 0


async def test_hold_before_ends_by_itself(api: BotApiClient, users: EmulatorClient) -> None:
    await users.send_text(ANN, "hi")
    await users.add_fault("sendMessage", "hold_before", seconds=0.05)
    assert (await asyncio.wait_for(api.call("sendMessage", chat_id=ANN.id, text="a"), WAIT))["ok"]
    assert [m["text"] for m in await users.bot_messages(ANN.id)] == ["a"]
    assert len(await users.faults()) == 1, "without a count the hold stays in force"


async def test_hold_after_shows_the_message_before_answering(
    api: BotApiClient, users: EmulatorClient
) -> None:
    await users.send_text(ANN, "hi")
    await users.add_fault("sendMessage", "hold_after", seconds=60)
    call = asyncio.create_task(api.call("sendMessage", chat_id=ANN.id, text="card"))
    await users.wait_bot_messages(ANN.id, timeout=WAIT)
    assert await held_now(users) == 1
    assert not call.done(), "the answer is held back"
    await users.clear_faults()
    result = (await asyncio.wait_for(call, WAIT))["result"]
    assert [m["message_id"] for m in await users.bot_messages(ANN.id)] == [result["message_id"]]


async def test_a_caller_that_hangs_up_during_hold_before_is_dropped(emulator: Emulator) -> None:
    async with (
        emulator.serving() as url,
        EmulatorClient(url) as users,
        httpx.AsyncClient(base_url=url) as http,
    ):
        await users.send_text(ANN, "hi")
        await users.add_fault("sendMessage", "hold_before", seconds=60)
        call = asyncio.create_task(
            http.post(f"/bot{TOKEN}/sendMessage", json={"chat_id": ANN.id, "text": "card"})
        )
        await until(lambda: _is(held_now(users), 1))
        # Closing the client's connection is what a killed or timed-out bot does.
        call.cancel()
        await http.aclose()
        await until(lambda: _is(held_now(users), 0))
        await users.clear_faults()
        faults = (await users.counters())["faults"]
        assert faults["dropped_total"] == 1
        assert await users.bot_messages(ANN.id) == [], "a dropped call never takes effect"


async def test_ptb_sees_retry_after_and_network_errors(emulator: Emulator) -> None:
    async with emulator.serving() as url, EmulatorClient(url) as users:
        await users.send_text(ANN, "hi")
        bot = Bot(TOKEN, base_url=f"{url}/bot", base_file_url=f"{url}/file/bot")
        async with bot:
            await users.add_fault("sendMessage", "error", status=429, retry_after=3, count=1)
            with pytest.raises(RetryAfter) as limited:
                await bot.send_message(ANN.id, "x")
            assert limited.value.retry_after == 3
            await users.add_fault("sendMessage", "error", status=500, count=1)
            with pytest.raises(NetworkError):
                await bot.send_message(ANN.id, "x")
            assert (await bot.send_message(ANN.id, "x")).text == "x"


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"mode": "explode"}, "mode must be one of"),
        ({"mode": "hold_before"}, "a hold needs seconds"),
        ({"status": 200}, "status must be an HTTP error status"),
        ({"count": 0}, "count must be at least 1"),
        ({"seconds": -1}, "seconds must be a positive number"),
        ({"retry_after": "soon"}, "retry_after must be an integer"),
    ],
)
async def test_malformed_rules_are_refused(
    users: EmulatorClient, body: dict[str, object], message: str
) -> None:
    with pytest.raises(EmulatorError) as refused:
        await users._call("POST", "/control/faults", body=body)
    assert refused.value.status == 400 and message in refused.value.message


async def test_reset_clears_rules_and_counters(api: BotApiClient, users: EmulatorClient) -> None:
    await users.send_text(ANN, "hi")
    await users.add_fault("sendMessage", "error", count=1)
    await users.add_fault("getMe", "error")
    assert (await api.call("sendMessage", chat_id=ANN.id, text="x"))["error_code"] == 500
    await users.reset()
    assert await users.faults() == []
    assert (await users.counters())["faults"]["injected_total"] == 0
    assert (await api.call("getMe"))["ok"]


async def _is(value: Awaitable[int], expected: int) -> bool:
    return await value == expected
