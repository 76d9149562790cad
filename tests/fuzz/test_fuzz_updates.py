"""Generated updates through the real bot and the emulator: no unhandled error, every citizen
update answered, and whatever state they leave, the next /start shows the menu.

Each example is a burst: several citizens act at once (each waits for the bot's answer to one
update before the next, as people do) while an officer presses card buttons with any data and
types in the commune's inbox group. The bot, its database and the emulator live through all
examples, so state left by one burst meets the next. `TINBAO_FUZZ_UPDATES` sets how many
updates in all: 2,000 by default (`make test`), 10,000 in `.ci/run`'s SQLite pass (the CI
profile); at least 60% must reach the bot (the rest are presses with no button on screen and
what the emulator refuses, as Telegram would), checked at the end.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from sandbox.client import EmulatorClient, EmulatorError
from tests.e2e.harness import BotUnderTest, Citizen, buttons_of
from tests.e2e.police import enroll, link_group
from tests.fuzz.actions import FORWARD, ODD_FIELDS, Action, citizen_actions, jpeg, officer_actions

KHA_CUU = 8635
TOTAL_UPDATES = int(os.environ.get("TINBAO_FUZZ_UPDATES", "2000"))
CITIZENS = 12
ACTIONS_PER_CITIZEN = 12
OFFICER_ACTIONS = 4
PER_EXAMPLE = CITIZENS * ACTIONS_PER_CITIZEN + OFFICER_ACTIONS
EXAMPLES = max(1, TOTAL_UPDATES // PER_EXAMPLE)
ANSWER_TIMEOUT = 20.0
PHOTO = jpeg()


class ErrorRecords(logging.Handler):
    """Collects ERROR records: an unhandled error in a handler is logged by the error handler."""

    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        """Keep the record."""
        self.records.append(record)


@pytest.fixture
def errors() -> Iterator[ErrorRecords]:
    """ERROR records logged anywhere while the test runs."""
    handler = ErrorRecords()
    logging.getLogger().addHandler(handler)
    yield handler
    logging.getLogger().removeHandler(handler)


class Counter:
    """Updates sent to the bot, over all examples."""

    def __init__(self) -> None:
        self.sent = 0


async def _send(citizen: Citizen, action: Action) -> list[dict[str, Any]] | None:
    """Inject one citizen action; the injected messages (None when nothing reached the bot)."""
    client, user = citizen.client, citizen.user
    match action.kind:
        case "text":
            return [await client.send_text(user, action.text)]
        case "forwarded":
            return [await client.send_text(user, action.text, forward_origin=FORWARD)]
        case "photo":
            return [await client.send_photo(user, PHOTO, caption=action.text or None)]
        case "broken_photo":
            return [await client.send_photo(user, action.data)]
        case "document":
            document = await client.send_document(
                user, action.data, filename=action.text, mime_type="application/octet-stream"
            )
            return [document]
        case "big_file":
            sent = await client.send_declared_file(
                user, kind="document", size=action.number, filename="video-lon.mp4"
            )
            return [sent]
        case "album":
            items = [("photo", PHOTO, {}) for _ in range(action.number)]
            return await client.send_album(user, items)  # type: ignore[arg-type]
        case "location":
            place = dict(action.extra)
            return [await client.send_location(user, place["latitude"], place["longitude"])]
        case "odd":
            return [await client.send_raw(user, ODD_FIELDS[action.number])]
        case "edit":
            own = [m for m in await client.transcript(citizen.chat_id) if not m["from_bot"]]
            own = [m for m in own if m.get("text")]
            if not own:
                return [await client.send_text(user, action.text)]
            target = own[-1 - action.number % len(own)]
            return [
                await client.edit_text(user, citizen.chat_id, target["message_id"], action.text)
            ]
    raise AssertionError(f"not a message action: {action.kind}")


async def _press(citizen: Citizen, action: Action) -> bool:
    """Press a button (the newest message's, a stale one, or forged data); whether it pressed."""
    client = citizen.client
    messages = [m for m in await client.transcript(citizen.chat_id) if m["from_bot"]]
    with_buttons = [m for m in messages if (m.get("reply_markup") or {}).get("inline_keyboard")]
    if action.kind == "forged_press":
        if not messages:
            return False
        target, data = messages[-1], action.text
    else:
        if not with_buttons:
            return False
        pool = with_buttons if action.kind == "press_stale" else with_buttons[-1:]
        target = pool[-1 - action.number % len(pool)]
        buttons = [
            b
            for row in target["reply_markup"]["inline_keyboard"]
            for b in row
            if "callback_data" in b
        ]
        if not buttons:
            return False
        data = buttons[action.number % len(buttons)]["callback_data"]
    query = await client.press(
        citizen.user, citizen.chat_id, target["message_id"], data, force=True
    )
    answer = await client.callback_answer(query, timeout=ANSWER_TIMEOUT)
    assert answer is not None, f"press {data!r} was never answered"
    return True


async def _citizen_turn(citizen: Citizen, action: Action, counter: Counter) -> None:
    """One citizen action, and the bot's answer to it."""
    if action.kind in ("press", "press_stale", "forged_press"):
        if await _press(citizen, action):
            counter.sent += 1
        return
    try:
        sent = await _send(citizen, action)
    except EmulatorError as refused:
        # The emulator refuses what Telegram would (a file it cannot hold, an empty edit):
        # such an update never reaches a bot.
        assert refused.status in (400, 413), refused
        return
    if not sent:
        return
    counter.sent += len(sent)
    replies = await citizen.client.wait_bot_messages(citizen.chat_id, 1, timeout=ANSWER_TIMEOUT)
    assert replies, f"{action.kind} got no answer"


async def _officer_turn(group: Citizen, private: Citizen, action: Action, counter: Counter) -> None:
    """One officer action in the inbox group or their private chat (no answer is owed there)."""
    client = group.client
    if action.kind == "group_text":
        await client.send_text(group.user, action.text, chat_id=group.chat_id)
    elif action.kind == "private_text":
        await client.send_text(private.user, action.text)
    else:
        messages = [m for m in await client.transcript(group.chat_id) if m["from_bot"]]
        if not messages:
            return
        target = messages[-1 - action.number % len(messages)]
        data = action.text
        if action.kind == "group_card_press":
            buttons = [
                b["callback_data"]
                for row in (target.get("reply_markup") or {}).get("inline_keyboard", [])
                for b in row
                if "callback_data" in b
            ]
            if not buttons:
                return
            data = buttons[action.number % len(buttons)]
        query = await client.press(
            group.user, group.chat_id, target["message_id"], data, force=True
        )
        answer = await client.callback_answer(query, timeout=ANSWER_TIMEOUT)
        assert answer is not None, f"officer press {data!r} was never answered"
    counter.sent += 1


async def test_generated_updates_are_all_handled(
    client: EmulatorClient,
    bot: BotUnderTest,
    new_citizen: Callable[..., Citizen],
    errors: ErrorRecords,
) -> None:
    officer = await enroll(
        client, bot, bot.settings.database_url, role="officer", name="Cán bộ xã", commune=KHA_CUU
    )
    group = await link_group(officer, "Hộp thư Công an xã Khả Cửu")
    citizens = [new_citizen(f"Người dân {n}") for n in range(CITIZENS)]
    counter = Counter()

    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        database=None,  # no example database: CI starts clean, and the run stays bounded
        derandomize=True,  # the same bursts on every run: a failure reproduces
        # No shrinking: each step of it replays a burst through the bot (minutes); the failing
        # burst is printed whole, and the bot's log says which update failed.
        phases=(Phase.explicit, Phase.generate),
        suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    )
    @given(
        bursts=st.lists(
            st.lists(citizen_actions, min_size=ACTIONS_PER_CITIZEN, max_size=ACTIONS_PER_CITIZEN),
            min_size=CITIZENS,
            max_size=CITIZENS,
        ),
        officer_burst=st.lists(officer_actions, min_size=OFFICER_ACTIONS, max_size=OFFICER_ACTIONS),
    )
    def burst(bursts: list[list[Action]], officer_burst: list[Action]) -> None:
        asyncio.run_coroutine_threadsafe(
            _burst(citizens, group, officer.private, bursts, officer_burst, counter), loop
        ).result(timeout=600)

    loop = asyncio.get_running_loop()
    # Hypothesis drives examples synchronously: it runs in a thread, each burst on this loop.
    await asyncio.to_thread(burst)
    await citizens[0].settle()
    for citizen in citizens:
        assert await _menu_after_start(citizen), "whatever the state, /start leads to the menu"
    failures = [r.getMessage() for r in errors.records]
    assert failures == [], failures[:5]
    assert counter.sent >= TOTAL_UPDATES * 0.6, f"only {counter.sent} updates reached the bot"


async def _menu_after_start(citizen: Citizen) -> bool:
    """/start answers; an unfinished tip is offered to resume, and /cancel then /start is the
    menu either way."""
    answer = await citizen.say("/start")
    assert answer, "/start got no answer"
    if _has_menu(answer):
        return True
    await citizen.say("/cancel")
    return _has_menu(await citizen.say("/start"))


def _has_menu(messages: list[dict[str, Any]]) -> bool:
    """Whether the main menu (its first entry) is among the messages' buttons."""
    return any("Gửi tin báo" in label for message in messages for label in buttons_of(message))


async def _burst(
    citizens: list[Citizen],
    group: Citizen,
    private: Citizen,
    bursts: list[list[Action]],
    officer_burst: list[Action],
    counter: Counter,
) -> None:
    """Everyone acts at once; each person one update at a time."""

    async def run_citizen(citizen: Citizen, actions: list[Action]) -> None:
        for action in actions:
            await _citizen_turn(citizen, action, counter)

    async def run_officer() -> None:
        for action in officer_burst:
            await _officer_turn(group, private, action, counter)

    await asyncio.gather(
        *(run_citizen(c, a) for c, a in zip(citizens, bursts, strict=True)), run_officer()
    )
