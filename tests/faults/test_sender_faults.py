"""Nothing confirmed is lost (DESIGN principle 5), with real processes and real failures.

Each test runs `tinbao run` (updates in, tips and outbox rows committed, nothing sent from the
outbox) and `tinbao sender` as separate processes against the emulator, has citizens send
tips through the buttons, breaks something, and then checks the inboxes: every confirmed tip
has its card there, and a card repeats only when a sender died with that card in flight (or,
with two senders, when a card was in flight as its lease ran out).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator

import pytest
from sqlalchemy.engine import make_url

from sandbox.client import EmulatorClient
from scheduler.sender import MAX_ATTEMPTS
from storage.db import is_sqlite
from tests.faults.conftest import Running
from tests.faults.proxy import CuttableProxy
from tests.faults.tipline import (
    Processes,
    TipLine,
    all_delivered,
    assert_each_once,
    eventually,
    pause_outside_transactions,
    start_sender,
)

pytestmark = pytest.mark.faults
TIPS = 5
HOLD = 60.0  # longer than any test: a hold ends when the test says so
FAILED_CYCLE = "outbox sender cycle failed"  # scheduler/sender.py logs this, then waits


async def test_baseline_every_card_arrives_once(
    running: Running, processes: Processes, tipline: TipLine, client: EmulatorClient
) -> None:
    tips = await tipline.send_tips(TIPS)
    assert sorted(await tipline.tip_ids()) == sorted(tips)
    sender = await start_sender(processes, client)
    assert_each_once(await all_delivered(tipline, running.inboxes, processes, sender), tips)
    assert {row.attempts for row in await tipline.card_rows()} == {1}


async def test_sigkill_between_claim_and_send_repeats_nothing(
    running: Running, processes: Processes, tipline: TipLine, client: EmulatorClient
) -> None:
    tips = await tipline.send_tips(TIPS)
    inbox = running.inboxes.commune_chat
    # Calls to the inbox wait at the door: claimed and committed "sending", not yet sent.
    await client.add_fault("sendMessage", "hold_before", seconds=HOLD, chat_id=inbox)
    first = await start_sender(processes, client)

    async def claimed_and_held() -> bool:
        return (await tipline.statuses())["sending"] > 0 and await tipline.held_now() > 0

    await eventually("a card claimed and held", claimed_and_held)
    processes.kill(first)

    async def hung_up() -> bool:
        return await tipline.held_now() == 0

    await eventually("the emulator sees the killed sender hang up", hung_up)
    await client.clear_faults()
    assert not await tipline.cards(running.inboxes), "nothing reached the inbox"
    assert (await client.counters())["faults"]["dropped_total"] >= 1
    second = await start_sender(processes, client)
    assert_each_once(await all_delivered(tipline, running.inboxes, processes, second), tips)


async def test_sigkill_after_send_before_mark_repeats_at_most_the_card_in_flight(
    running: Running, processes: Processes, tipline: TipLine, client: EmulatorClient
) -> None:
    tips = await tipline.send_tips(TIPS)
    inbox = running.inboxes.commune_chat
    # The first card reaches the inbox, but the sender hears nothing back: it cannot mark it.
    await client.add_fault("sendMessage", "hold_after", seconds=HOLD, chat_id=inbox, count=1)
    first = await start_sender(processes, client)
    in_flight: list[str] = []

    async def sent_not_marked() -> bool:
        visible = await tipline.cards(running.inboxes)
        rows = await tipline.card_states()
        in_flight[:] = [tip for tip in visible if rows[tip].status == "sending"]
        return bool(in_flight)

    await eventually("a card visible whose row is still 'sending'", sent_not_marked)
    processes.kill(first)
    await client.clear_faults()
    second = await start_sender(processes, client)
    cards = await all_delivered(tipline, running.inboxes, processes, second)
    (repeated,) = in_flight
    assert set(cards) == set(tips), cards
    assert cards[repeated] <= 2, cards
    assert all(cards[tip] == 1 for tip in tips if tip != repeated), cards


@pytest.mark.parametrize("status", [500, 429])
async def test_bot_api_errors_for_a_while_are_retried_without_repeats(
    status: int,
    running: Running,
    processes: Processes,
    tipline: TipLine,
    client: EmulatorClient,
) -> None:
    tips = await tipline.send_tips(TIPS)
    inbox = running.inboxes.commune_chat
    await client.add_fault("sendMessage", "error", status=status, retry_after=1, chat_id=inbox)
    sender = await start_sender(processes, client)

    async def every_card_refused_twice() -> bool:
        return bool((await client.counters())["faults"]["injected_total"] >= 2 * TIPS)

    # The outage lasts until each card has failed twice, however fast the retries come.
    await eventually(
        "two refusals per card", every_card_refused_twice, alive=processes.require_alive(sender)
    )
    await client.clear_faults()
    assert_each_once(await all_delivered(tipline, running.inboxes, processes, sender), tips)
    attempts = {tip: row.attempts for tip, row in (await tipline.card_states()).items()}
    if status == 429:
        # Flood control asks the bot to wait; waiting is not a failed attempt.
        assert set(attempts.values()) == {1}, attempts
    else:
        assert all(n > 2 for n in attempts.values()), attempts
    assert (await client.counters())["errors_by_code"].get(str(status), 0) >= 2 * TIPS


async def test_a_long_flood_wait_loses_no_card(
    running: Running, processes: Processes, tipline: TipLine, client: EmulatorClient
) -> None:
    tips = await tipline.send_tips(2)
    await client.add_fault(
        "sendMessage", "error", status=429, retry_after=1, chat_id=running.inboxes.commune_chat
    )
    sender = await start_sender(processes, client)

    async def refused_long_enough() -> bool:
        faults = (await client.counters())["faults"]
        return bool(faults["injected_total"] >= MAX_ATTEMPTS * len(tips))

    # Telegram may answer 429 for minutes; here, for more retries than MAX_ATTEMPTS allows.
    await eventually(
        "a long flood wait", refused_long_enough, alive=processes.require_alive(sender)
    )
    await client.clear_faults()
    assert_each_once(await all_delivered(tipline, running.inboxes, processes, sender), tips)


async def test_a_second_sender_repeats_no_card_that_was_not_in_flight(
    running: Running,
    processes: Processes,
    tipline: TipLine,
    client: EmulatorClient,
    database_url: str,
) -> None:
    # The second sender is up first but frozen, so that the first one claims every card.
    second = await start_sender(processes, client)
    await pause_outside_transactions(processes, second, database_url)
    tips = await tipline.send_tips(TIPS)
    # A slow Bot API: each send to the inbox takes 1 s, half the 2 s lease, so the lease of
    # the cards queued behind the first runs out while the first sender still works on them.
    await client.add_fault(
        "sendMessage", "hold_before", seconds=1.0, chat_id=running.inboxes.commune_chat
    )
    first = await start_sender(processes, client)

    async def all_claimed() -> bool:
        return (await tipline.statuses())["sending"] == TIPS

    await eventually("the first sender claims every card", all_claimed)
    processes.resume(second)
    cards = await all_delivered(tipline, running.inboxes, processes, first, second)
    assert set(cards) == set(tips), cards
    # Neither sender died, so at most a card in flight when its lease ran out may repeat.
    assert sum(cards.values()) - len(tips) <= 1, cards


@pytest.fixture
def postgres_proxy(database_url: str) -> Iterator[CuttableProxy | None]:
    """A cuttable proxy in front of the PostgreSQL server (None on SQLite)."""
    if is_sqlite(database_url):
        yield None
        return
    url = make_url(database_url)
    proxy = CuttableProxy(url.host or "127.0.0.1", url.port or 5432)
    proxy.start()
    try:
        yield proxy
    finally:
        proxy.stop()


async def test_database_unreachable_for_a_while_is_waited_out(
    running: Running,
    processes: Processes,
    tipline: TipLine,
    client: EmulatorClient,
    database_url: str,
    postgres_proxy: CuttableProxy | None,
) -> None:
    env = {}
    if postgres_proxy is not None:
        through_proxy = make_url(database_url).set(host="127.0.0.1", port=postgres_proxy.port)
        env["TINBAO_DATABASE_URL"] = through_proxy.render_as_string(hide_password=False)
    sender = await start_sender(processes, client, **env)
    if postgres_proxy is not None:

        async def connected() -> bool:
            return postgres_proxy.accepted > 0

        # The cut must break connections the sender already holds, not only refuse new ones.
        await eventually("the sender connects through the proxy", connected)
    # Frozen, the sender keeps its pooled connections but claims nothing: the tips wait.
    await pause_outside_transactions(processes, sender, database_url)
    tips = await tipline.send_tips(TIPS)
    assert set((await tipline.statuses()).elements()) == {"pending"}

    lock: sqlite3.Connection | None = None
    if postgres_proxy is not None:
        postgres_proxy.cut()
    else:
        lock = sqlite3.connect(make_url(database_url).database or "", isolation_level=None)
        # Every tinbao transaction begins IMMEDIATE, so this shuts all of them out.
        lock.execute("BEGIN EXCLUSIVE")
    try:
        processes.resume(sender)

        async def failed() -> bool:
            return FAILED_CYCLE in processes.log(sender)

        # The database stays away until the sender has run into it at least once.
        await eventually(
            "the sender fails on the database", failed, alive=processes.require_alive(sender)
        )
    finally:
        if lock is not None:
            lock.execute("ROLLBACK")
            lock.close()
        if postgres_proxy is not None:
            postgres_proxy.restore()
    assert processes.alive(sender), "the sender survives"
    assert_each_once(await all_delivered(tipline, running.inboxes, processes, sender), tips)
