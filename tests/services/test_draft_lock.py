"""Two processes taking one citizen's updates at once lose no step (drafts.lock).

Two `Database` objects are two processes' engines. Within one minute the flood counter's upsert
happens to serialise a citizen's transactions (both update the same counter row), so the two
"processes" here stand on either side of a minute boundary, where each hits a counter row of
its own and only the draft lock keeps them apart.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

from sqlmodel import select

from bot.services.anonymity import Keyring
from bot.services.events import Text
from bot.services.intake import IntakeLimits, IntakeService
from bot.services.steps import Outcome, match_typed_choice
from storage.db import Database
from storage.models import Tip
from tests.conftest import FakeClock

USER = 778001
PARTS = 24


def service(db: Database, clock: FakeClock) -> IntakeService:
    """An intake service, as one process has it."""
    return IntakeService(
        db=db,
        keyring=Keyring("y" * 48),
        limits=IntakeLimits(messages_per_minute=1000),
        clock=clock,
    )


async def send(svc: IntakeService, text: str) -> Outcome:
    """One typed message from the citizen."""
    return await svc.handle(
        channel="zalo", user_id=USER, chat_id=USER, event=Text(text), locale="en"
    )


async def typed(svc: IntakeService, outcome: Outcome, choice: str) -> Outcome:
    """Answer the last step by typing a number or label."""
    assert match_typed_choice(outcome.replies[-1], choice) is not None
    return await send(svc, choice)


async def test_two_processes_apply_every_part_of_one_citizens_tip(database_url: str) -> None:
    first_db, second_db = Database(database_url), Database(database_url)
    # Either side of a minute boundary: the flood counters of the two are different rows.
    first = service(first_db, FakeClock(datetime(2026, 11, 22, 3, 0, 59, tzinfo=UTC)))
    second = service(second_db, FakeClock(datetime(2026, 11, 22, 3, 1, 1, tzinfo=UTC)))
    try:
        out = await send(first, "/start")
        out = await typed(first, out, "1")  # report
        out = await typed(first, out, "drugs")
        out = await typed(first, out, "2")  # not happening now
        out = await send(first, "kha cuu")
        out = await typed(first, out, "1")
        parts = [f"part {number:02d}" for number in range(PARTS)]
        await asyncio.gather(
            *(send(first if index % 2 else second, part) for index, part in enumerate(parts))
        )
        out = await send(first, "Done")
        out = await typed(first, out, "1")  # send
        async with first_db.session() as session:
            tip = (await session.exec(select(Tip))).one()
        missing = [part for part in parts if part not in tip.text]
        assert not missing, missing
    finally:
        await first_db.dispose()
        await second_db.dispose()
