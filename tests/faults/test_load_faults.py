"""Nothing confirmed is lost under load: citizens keep sending tips while the bot process is
SIGKILLed at random moments and restarted, while the Bot API answers 500 to everything for a
minute, or while the database goes away (PostgreSQL's connections cut, SQLite's file locked).
A checker then counts every tip a citizen was told was received: each one reaches an
inbox, and a card repeats only when a process died with it in flight.
"""

from __future__ import annotations

import asyncio
import os
import random
import sqlite3
from collections import Counter
from typing import Any

import pytest
from sqlalchemy.engine import make_url
from sqlmodel import select

from sandbox.client import EmulatorClient, User
from storage.db import is_sqlite
from storage.models import OutboxMessage
from tests.faults import tipline as tipline_module
from tests.faults.proxy import CuttableProxy
from tests.faults.tipline import (
    Processes,
    TipLine,
    all_delivered,
    eventually,
)

pytestmark = pytest.mark.faults
CITIZENS = 10
TIPS_EACH = 2
KILLS = 3
DATABASE_AWAY_SECONDS = 6.0  # under SQLite's busy timeout: writers wait, none gives up
LONG_POLL_SECONDS = 10  # `tinbao run` long-polls getUpdates with this timeout
OUTAGE_SECONDS = float(os.environ.get("TINBAO_FAULT_OUTAGE_SECONDS", "60"))


async def _start_bot(processes: Processes, client: EmulatorClient, name: str) -> str:
    """`tinbao run` with its outbox sender; return once it polls the emulator."""
    before = (await client.counters())["calls_by_method"].get("getUpdates", 0)
    started = processes.start(name, "run")

    async def polling() -> bool:
        calls = (await client.counters())["calls_by_method"].get("getUpdates", 0)
        return bool(calls > before)

    await eventually(f"{started} polls", polling, alive=processes.require_alive(started))
    return started


async def _citizens_send(tipline: TipLine, first_number: int) -> tuple[list[str], int]:
    """Each citizen sends tips one after another, giving up on a tip whose step got no answer
    (its update may have died with the process): (short ids they were told of, tips dropped)."""
    told: list[str] = []
    dropped = 0

    async def one_citizen(index: int) -> None:
        nonlocal dropped
        user = User(first_number + index, "Nguyễn Văn", username=f"load{first_number + index}")
        for attempt in range(TIPS_EACH):
            try:
                told.append(await tipline.send_tip(index * 10 + attempt, user))
            except (AssertionError, TimeoutError):
                dropped += 1  # as a person would: they start over with the next tip

    await asyncio.gather(*(one_citizen(n) for n in range(CITIZENS)))
    return told, dropped


async def _rows(tipline: TipLine) -> list[Any]:
    """Every outbox row (to say what is stuck)."""
    async with tipline.db.session() as session:
        return list((await session.exec(select(OutboxMessage))).all())


def _assert_told_tips_arrived(cards: Counter[str], told: list[str], repeats_allowed: int) -> None:
    """Every tip a citizen was told about has its card; repeats only for cards in flight."""
    missing = [tip for tip in told if not cards[tip]]
    assert missing == [], f"confirmed tips with no card: {missing}"
    repeated = sum(count - 1 for count in cards.values() if count > 1)
    assert repeated <= repeats_allowed, cards


async def test_sigkill_of_the_bot_at_random_moments_under_load(
    processes: Processes,
    tipline: TipLine,
    client: EmulatorClient,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # An update fetched by the killed process is gone with it: its citizen waits this long for
    # the answer before starting over, as people do.
    monkeypatch.setattr(tipline_module, "TIMEOUT", 20.0)
    bot = await _start_bot(processes, client, "bot")
    inboxes = await tipline.police()
    rng = random.Random(13)
    kills = 0

    async def killer() -> None:
        nonlocal bot, kills
        for round_ in range(KILLS):
            await asyncio.sleep(rng.uniform(1.0, 4.0))
            processes.kill(bot)
            kills += 1
            await asyncio.sleep(rng.uniform(0.0, 1.0))
            bot = await _start_bot(processes, client, f"bot-after-kill-{round_ + 1}")

    sending = asyncio.create_task(_citizens_send(tipline, 7_100_001))
    await killer()
    told, dropped = await sending
    assert kills == KILLS and told, (kills, told)
    cards = await all_delivered(tipline, inboxes, processes, bot)
    # Every committed tip, told or not (a kill between commit and answer), reaches an inbox.
    assert all(cards[tip] for tip in await tipline.tip_ids())
    # A killed sender repeats at most what it had in flight: a card per kill.
    _assert_told_tips_arrived(cards, told, repeats_allowed=kills)
    assert len(told) + dropped == CITIZENS * TIPS_EACH


async def test_the_bot_api_failing_everything_for_a_minute_loses_nothing(
    processes: Processes, tipline: TipLine, client: EmulatorClient
) -> None:
    bot = await _start_bot(processes, client, "bot")
    inboxes = await tipline.police()
    before = await tipline.send_tips(3)  # their cards and receipts are still in the outbox
    # Every Bot API method answers 500 for a minute: polling, answers, cards, receipts.
    await client.add_fault("*", "error", status=500)
    # A long poll begun before the outage may still return what arrives now (and the answer
    # would then meet the outage): the citizens write once every poll in flight has ended.
    await asyncio.sleep(LONG_POLL_SECONDS + 1)
    waiting = [User(7_200_001 + n, "Trần Thị", username=f"outage{n}") for n in range(2)]
    for user in waiting:
        await client.send_text(user, "/start")  # sent while the bot cannot fetch it
    await asyncio.sleep(max(0.0, OUTAGE_SECONDS - LONG_POLL_SECONDS - 1))
    assert processes.alive(bot), processes.tail(bot)
    await client.clear_faults()
    for user in waiting:  # what citizens sent during the outage is answered after it
        await tipline.reply(user.id, lambda m: "Gửi tin báo" in str(m.get("reply_markup")))
    after = [await tipline.send_tip(100 + n, user) for n, user in enumerate(waiting)]
    told = before + after

    async def delivered() -> bool:
        cards = await tipline.cards(inboxes)
        return all(cards[tip] for tip in told) and set(await tipline.statuses()) == {"sent"}

    # The sender backs off while the platform fails (2, 4, 8, ... s): after a minute's outage
    # the last cards wait for their next attempt, up to about another minute.
    await eventually("every card after the outage", delivered, timeout=180)
    cards = await tipline.cards(inboxes)
    _assert_told_tips_arrived(cards, told, repeats_allowed=0)
    assert sorted(cards) == sorted(await tipline.tip_ids())
    assert (await client.counters())["errors_by_code"].get("500", 0) > 10
    log = processes.log(bot)
    assert "update None failed" not in log and "Bot API unreachable while polling" in log


async def test_the_database_going_away_mid_load_loses_no_confirmed_tip(
    processes: Processes,
    tipline: TipLine,
    client: EmulatorClient,
    database_url: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """PostgreSQL: every connection of the bot cut and refused for a while (as a restart does);
    SQLite: another process holds the file's write lock for as long."""
    monkeypatch.setattr(tipline_module, "TIMEOUT", 30.0)
    proxy: CuttableProxy | None = None
    env: dict[str, str] = {}
    if not is_sqlite(database_url):
        url = make_url(database_url)
        proxy = CuttableProxy(url.host or "127.0.0.1", url.port or 5432)
        proxy.start()
        through = url.set(host="127.0.0.1", port=proxy.port)
        env["TINBAO_DATABASE_URL"] = through.render_as_string(hide_password=False)
    try:
        before = (await client.counters())["calls_by_method"].get("getUpdates", 0)
        bot = processes.start("bot", "run", **env)

        async def polling() -> bool:
            calls = (await client.counters())["calls_by_method"].get("getUpdates", 0)
            return bool(calls > before)

        await eventually("the bot polls", polling, alive=processes.require_alive(bot))
        inboxes = await tipline.police()
        sending = asyncio.create_task(_citizens_send(tipline, 7_300_001))
        await asyncio.sleep(2.0)
        lock: sqlite3.Connection | None = None
        if proxy is not None:
            proxy.cut()
        else:
            lock = sqlite3.connect(make_url(database_url).database or "", isolation_level=None)
            lock.execute("BEGIN EXCLUSIVE")
        await asyncio.sleep(DATABASE_AWAY_SECONDS)
        if proxy is not None:
            proxy.restore()
        if lock is not None:
            lock.execute("ROLLBACK")
            lock.close()
        told, _dropped = await sending
        assert processes.alive(bot), processes.tail(bot)
        # Back to normal: tips sent now go through (the bot reconnected by itself).
        monkeypatch.setattr(tipline_module, "TIMEOUT", 60.0)
        told += await tipline.send_tips(2)
        try:
            cards = await all_delivered(tipline, inboxes, processes, bot)
        except AssertionError as stuck:
            rows = [
                (r.id, r.kind, r.status, r.attempts, r.last_error) for r in await _rows(tipline)
            ]
            raise AssertionError(f"{stuck}: {await tipline.statuses()} {rows}") from None
        assert all(cards[tip] for tip in await tipline.tip_ids())
        _assert_told_tips_arrived(cards, told, repeats_allowed=0)
    finally:
        if proxy is not None:
            proxy.stop()
