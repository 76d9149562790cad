"""The intake service alone (no Telegram, no HTTP): CPU and worker-thread hand-offs per update.

    python -m bench.intake_service                  # SQLite: tinbao's connection vs plain aiosqlite
    python -m bench.intake_service --conversations 200 --rounds 5
    python -m bench.intake_service --database-url postgresql+asyncpg://postgres@127.0.0.1/bench

Plays bench/intake.py's 9-update tip conversation (its TINBAO_STEPS) straight into
`IntakeService.handle` (no Telegram, no HTTP), one citizen after another, on a fresh database,
and prints the process's CPU time per update (all threads) and, on SQLite, how many calls went
to aiosqlite's worker thread per update. On SQLite it alternates tinbao's engine
(storage/sqlite.py: statements run on the event loop while the transaction holds the write
lock) with the same engine on aiosqlite's own connection (every call on the worker thread),
round by round, so that both see the same machine; the table shows medians.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import aiosqlite
from rich.console import Console
from rich.table import Table
from sqlalchemy import func
from sqlmodel import select

from bench.intake import TINBAO_STEPS
from bot.app import build_services
from bot.services.events import Event, Pick, Start, Text
from bot.services.steps import Outcome
from storage.db import Database, is_sqlite
from storage.models import OutboxMessage
from tinbao.runtime import prepare_database
from tinbao.settings import Settings

UPDATES_PER_CONVERSATION = len(TINBAO_STEPS)
handoffs = 0
_thread_execute = aiosqlite.Connection._execute


async def _counted_execute(self: aiosqlite.Connection, fn: Any, *args: Any, **kwargs: Any) -> Any:
    """aiosqlite's hand-off to its worker thread, counted."""
    global handoffs
    handoffs += 1
    return await _thread_execute(self, fn, *args, **kwargs)


# tinbao's connection calls this only for what must wait (super()._execute); plain aiosqlite
# calls it for everything.
aiosqlite.Connection._execute = _counted_execute  # type: ignore[method-assign]


def pick(outcome: Outcome, label: str) -> Pick:
    """Press the button whose label contains `label` on the last reply."""
    step = outcome.replies[-1]
    for choice in step.flat_choices():
        if label in choice.label:
            return Pick(step.token, choice.value)
    raise LookupError(f"no button {label!r} under {step.text[:60]!r}")


async def conversation(handle: Callable[[Event], Awaitable[Outcome]]) -> None:
    """bench/intake.py's tip steps as service events, checked to end with a receipt code."""
    out: Outcome | None = None
    for kind, value, _expected in TINBAO_STEPS:
        if kind == "press":
            assert out is not None
            out = await handle(pick(out, value))
        else:
            out = await handle(Start() if value == "/start" else Text(value))
    assert out is not None
    if not out.replies or "✅" not in out.replies[-1].text:
        raise RuntimeError("the tip did not end with its confirmation")


async def measure(db: Database, conversations: int, first_user: int) -> tuple[float, float]:
    """CPU ms and hand-offs per update over `conversations` citizens, after one warm-up."""
    global handoffs
    os.environ.update(
        TINBAO_BOT_TOKEN="1:bench",
        TINBAO_DATABASE_URL=db.url,
        TINBAO_SECRET_KEY="bench-" * 8,
        TINBAO_MODE="dev",
        TINBAO_MESSAGES_PER_MINUTE="1000000",
        TINBAO_TIPS_PER_HOUR="1000000",
    )
    services = build_services(Settings(), db=db)
    try:

        def citizen(user: int) -> Callable[[Event], Awaitable[Outcome]]:
            async def handle(event: Event) -> Outcome:
                return await services.intake.handle(
                    channel="telegram", user_id=user, chat_id=user, event=event, locale="vi"
                )

            return handle

        await conversation(citizen(first_user - 1))  # warm-up: caches, prepared statements
        handoffs = 0
        started = time.process_time()
        for user in range(first_user, first_user + conversations):
            await conversation(citizen(user))
        updates = conversations * UPDATES_PER_CONVERSATION
        spent = (time.process_time() - started) / updates * 1000, handoffs / updates
        async with db.session() as session:  # every tip queued its receipt for the sender
            receipts = (
                await session.exec(
                    select(func.count())
                    .select_from(OutboxMessage)
                    .where(OutboxMessage.kind == "receipt", OutboxMessage.status == "pending")
                )
            ).one()
        if receipts < conversations + 1:
            raise RuntimeError(f"{receipts} receipts queued for {conversations + 1} tips")
        return spent
    finally:
        await db.dispose()


async def run(options: argparse.Namespace) -> None:
    """Measure and print the table."""
    out = Console()
    if options.database_url and not is_sqlite(options.database_url):
        await prepare_database(options.database_url)
        name = "tinbao (asyncpg)"
        results: dict[str, list[tuple[float, float]]] = {name: []}
        for round_ in range(options.rounds):
            first = 10_000 * (round_ + 1) + int(time.time()) % 1000 * 1_000_000
            results[name].append(
                await measure(Database(options.database_url), options.conversations, first)
            )
    else:
        path = Path(tempfile.mkdtemp(prefix="tinbao-bench-")) / "bench.db"
        url = f"sqlite+aiosqlite:///{path}"
        await prepare_database(url)
        # The same engine (pragmas, BEGIN IMMEDIATE, pool) on aiosqlite's own connection.
        variants: dict[str, Callable[[], Database]] = {
            "tinbao": lambda: Database(url),
            "plain aiosqlite": lambda: Database(
                url, async_creator=lambda: aiosqlite.connect(path, timeout=30)
            ),
        }
        results = {name: [] for name in variants}
        for round_ in range(options.rounds):
            for index, (name, make) in enumerate(variants.items()):
                first = 10_000 * (2 * round_ + index + 1)
                results[name].append(await measure(make(), options.conversations, first))
    table = Table(
        title=f"Intake service alone: {options.conversations} conversations x "
        f"{UPDATES_PER_CONVERSATION} updates, median of {options.rounds} rounds"
    )
    for column in ("engine", "CPU ms/update", "each round", "thread calls/update"):
        table.add_column(column, justify="left" if column == "engine" else "right")
    for name, figures in results.items():
        cpu = [round(ms, 2) for ms, _ in figures]
        calls = statistics.median(count for _, count in figures)
        handoff_text = f"{calls:.1f}" if "asyncpg" not in name else "-"
        table.add_row(name, f"{statistics.median(cpu):.2f}", str(cpu), handoff_text)
    out.print(table)


def main() -> None:
    """Parse arguments and run."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--conversations", type=int, default=100, help="per round (100)")
    parser.add_argument("--rounds", type=int, default=3, help="alternating rounds (3)")
    parser.add_argument(
        "--database-url", help="PostgreSQL to measure instead (its tables are used, not wiped)"
    )
    asyncio.run(run(parser.parse_args()))


if __name__ == "__main__":
    main()
