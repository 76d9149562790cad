"""Load: 1,000 concurrent citizens sending whole tips at human pace, every tip into an inbox.

    python bench/load.py
    python bench/load.py --citizens 500 --think-ms 5000 --communes 50
    python bench/load.py --database-url postgresql+asyncpg://postgres@127.0.0.1:5432/bench_load
    python bench/load.py --citizens 1000 --tips-per-citizen 1 --ramp-s 30 --json

Built on bench/intake.py (its processes, driver, event stream and figures). One run:

1. the Bot API emulator (`tinbao emulator --no-limits`) and `tinbao run` on a fresh database (a
   temporary SQLite file, or the PostgreSQL database of --database-url whose schema `public` is
   DROPPED and recreated), with bench/intake.py's environment: flood limits raised and
   outgoing pacing off (TINBAO_BOT_MAX_RATE=0: the emulator enforces no limits). PTB's
   AIORateLimiter still paces every group at 20 messages a minute, which is why the tips go to
   --communes communes, each with its own inbox group: 1,000 cards in one group would take
   50 minutes, 20 per group go out in one burst;
2. the police: for each commune an officer invited on the database (as `tinbao staff invite`
   does) who sends `/join CODE` and links a new group with `/link`, and the same for a
   supervisor of each province involved (their province inbox is the fallback);
3. N citizens, all concurrent, each sending K whole tips (the 9 steps of bench/intake.py,
   typing its commune's name and picking its button), pausing --think-ms on average between
   steps (jittered +-50%); their first steps are spread over --ramp-s so that they do not all
   land in the same second. Every tip must end with a receipt code;
4. then waiting until every tip in the database has its card in an inbox group (counted in the
   groups' transcripts: a message with the tip's short id and "Lĩnh vực"), up to
   --card-timeout.

Figures only: the exit code is 0 whether the goals (0 errors; every tip in an inbox exactly
once) pass or not.
"""

from __future__ import annotations

import argparse
import asyncio
import contextvars
import itertools
import json
import math
import os
import random
import re
import signal
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a script: the project's root on the path
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from rich.console import Console
from rich.table import Table
from sqlalchemy import func
from sqlmodel import col, select

from bench.intake import (
    RECEIPT_CODE,
    TINBAO,
    TINBAO_STEPS,
    TINBAO_TOKEN,
    BenchClient,
    CpuMeter,
    Driver,
    Processes,
    RunResult,
    SseReplies,
    Step,
    console,
    cpu_seconds,
    machine,
    machine_busy_seconds,
    make_client,
    percentile_ms,
    reset_postgres,
    start_emulator,
    tinbao_done,
    tinbao_env,
    wait_until,
)
from bot.services.enrollment import create_invite
from sandbox.client import User
from storage.communes import CommuneChoice, search_communes
from storage.db import Database
from storage.models import Commune, OutboxMessage, Tip
from storage.types import utcnow

FIRST_CITIZEN_ID = 20_000_000
FIRST_STAFF_ID = 19_000_000
FIRST_GROUP_ID = -1_000_000_001
PHU_THO = 25  # bench/intake.py's province: Xã Khả Cửu (8635) comes first
KHA_CUU = 8635
SHORT_ID = re.compile(r"\bT-[0-9A-Z]{6}\b")
CARD_MARK = "Lĩnh vực"  # every tip card has this line; other inbox messages do not
ENROLLED = "đã được ghi danh"
LINKED = "Từ nay nhóm này là hộp thư"
GROUP_BURST = 20  # AIORateLimiter's default: 20 messages a minute per group, as one burst
GROUP_PERIOD = 60.0


@dataclass
class LoadOptions:
    """Command-line options."""

    citizens: int
    tips: int
    think: float
    ramp: float
    communes: int
    step_timeout: float
    card_timeout: float | None
    database_url: str | None
    logs: Path | None
    as_json: bool


@dataclass
class Place:
    """A commune the citizens send tips to: what they type, its button, its inbox group."""

    choice: CommuneChoice
    query: str
    group: int = 0
    steps: list[Step] = field(default_factory=list)


@dataclass
class LoadResult:
    """What one load run measured, beyond the driver's RunResult."""

    run: RunResult
    places: list[Place] = field(default_factory=list)
    province_groups: dict[int, int] = field(default_factory=dict)
    confirm_times: list[float] = field(default_factory=list)
    tips_in_db: dict[str, int] = field(default_factory=dict)
    tips_by_commune: Counter[int] = field(default_factory=Counter)
    planned_by_commune: Counter[int] = field(default_factory=Counter)
    cards: Counter[str] = field(default_factory=Counter)
    wrong_group: int = 0
    unknown_cards: int = 0
    card_rows: dict[str, int] = field(default_factory=dict)
    last_card: float | None = None
    card_wait: float = 0.0
    card_timeout: float = 0.0
    setup_seconds: float = 0.0
    cpu_samples: list[tuple[float, float, float]] = field(default_factory=list)
    receipt_waits: list[float] = field(default_factory=list)
    failed: list[tuple[int, float | None]] = field(default_factory=list)
    late_receipts: list[float | None] = field(default_factory=list)
    load_before: str = ""
    load_after: str = ""


# When the current citizen's last step was answered (each citizen is a task of its own).
ANSWERED: contextvars.ContextVar[float] = contextvars.ContextVar("answered")


class LoadDriver(Driver):
    """bench/intake's driver for one commune's steps; confirms, receipt waits and failures kept."""

    def __init__(
        self,
        client: BenchClient,
        replies: SseReplies,
        steps: list[Step],
        result: LoadResult,
        *,
        step_timeout: float,
        think: float,
    ) -> None:
        super().__init__(
            client,
            replies,
            steps,
            tinbao_done,
            result.run,
            step_timeout=step_timeout,
            think=think,
        )
        self.load = result

    def record_step(self, index: int, injected: float, arrived: float) -> None:
        """One measured update; the last step's answer starts the wait for the receipt."""
        super().record_step(index, injected, arrived)
        if index == len(self.steps) - 1:
            ANSWERED.set(arrived)

    def record_end(self, outcome: str) -> None:
        """One tip that ended with its receipt code: when, and how long after the answer."""
        super().record_end(outcome)
        now = time.perf_counter()
        self.load.confirm_times.append(now)
        self.load.receipt_waits.append(max(0.0, now - ANSWERED.get(now)))

    async def conversation(self, user: User, record: bool) -> bool:
        """Play one tip; a failed one's citizen is kept, to look for a late receipt after."""
        if await super().conversation(user, record):
            return True
        if record:
            self.load.failed.append((user.id, ANSWERED.get(None)))
        return False

    async def start_citizen(self, user: User, tips: int, delay: float) -> None:
        """One citizen: start after delay (the ramp), then K tips in a row; stop at a failure."""
        await asyncio.sleep(delay)
        for _ in range(tips):
            if not await self.conversation(user, record=True):
                return


def steps_for(choice: CommuneChoice, query: str) -> list[Step]:
    """bench/intake's tip, typing this commune's name and pressing its button."""
    steps = list(TINBAO_STEPS)
    steps[4] = ("text", query, choice.label)
    steps[5] = ("press", choice.label, "Xong")
    return steps


async def pick_places(db: Database, count: int) -> list[Place]:
    """Communes whose typed name finds them unambiguously: Khả Cửu, then Phú Thọ, then others."""
    async with db.session() as session:
        rows = (await session.exec(select(Commune))).all()

    def order(commune: Commune) -> tuple[int, int, int]:
        return (commune.code != KHA_CUU, commune.province_code != PHU_THO, commune.code)

    places: list[Place] = []
    async with db.session() as session:
        for commune in sorted(rows, key=order):
            query = commune.search_name.split(" ", 1)[-1]  # "xa kha cuu" -> "kha cuu"
            found = await search_communes(session, query)
            mine = [c for c in found if c.code == commune.code]
            if not mine or len(query) < 3:
                continue
            label = mine[0].label
            # The driver presses the first button whose text contains the label: it must be ours.
            first = next(c for c in found if label in c.label)
            if first.code != commune.code:
                continue
            places.append(Place(mine[0], query, steps=steps_for(mine[0], query)))
            if len(places) == count:
                break
    if len(places) < count:
        raise SystemExit(f"only {len(places)} communes are found unambiguously by name")
    return places


class Police:
    """Officers and supervisors enrolled through the bot, each with a linked inbox group."""

    def __init__(self, client: BenchClient, replies: SseReplies, db: Database, timeout: float):
        self.client = client
        self.replies = replies
        self.db = db
        self.timeout = timeout
        self.users = itertools.count(FIRST_STAFF_ID)
        self.groups = itertools.count(FIRST_GROUP_ID, -1)

    async def until(self, chat_id: int, after_seq: int, needle: str) -> None:
        """Wait for a bot message in a chat, newer than after_seq, that contains needle."""
        deadline = time.monotonic() + self.timeout
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise RuntimeError(f"no {needle!r} in chat {chat_id}")
            _arrived, message = await self.replies.next_reply(chat_id, after_seq, remaining)
            if needle in (message.get("text") or ""):
                return
            after_seq = int(message["seq"])

    async def enroll(self, role: str, name: str, *, commune: int | None, province: int) -> User:
        """Invite on the database (as the operator's CLI does), then /join through the bot."""
        async with self.db.session() as session:
            invite = await create_invite(
                session, role=role, commune_code=commune, province_code=province, now=utcnow()
            )
        user = User(next(self.users), name, language_code="vi")
        sent = await self.client.send_text(user, f"/join {invite.code}")
        await self.until(user.id, int(sent["seq"]), ENROLLED)
        return user

    async def link(self, staff: User, title: str) -> int:
        """Add the bot to a new group and /link it as the staff member's inbox."""
        chat_id = next(self.groups)
        await self.client.add_bot_to_group(staff, chat_id, title)
        sent = await self.client.send_text(staff, "/link", chat_id=chat_id)
        await self.until(chat_id, int(sent["seq"]), LINKED)
        return chat_id

    async def officer(self, place: Place) -> None:
        """An officer of the place's commune and its inbox group."""
        choice = place.choice
        staff = await self.enroll(
            "officer", f"Cán bộ {choice.code}", commune=choice.code, province=choice.province_code
        )
        place.group = await self.link(staff, f"Công an {choice.name}")

    async def supervisor(self, province: int, name: str) -> int:
        """A supervisor of a province and its inbox group."""
        staff = await self.enroll(
            "supervisor", f"Giám sát {province}", commune=None, province=province
        )
        return await self.link(staff, f"Công an tỉnh {name}")


async def fresh_database(database_url: str | None, workdir: Path) -> str:
    """An empty database: a new SQLite file, or --database-url with schema public recreated."""
    if database_url and not database_url.startswith("sqlite"):
        console.print("resetting schema public of the benchmark database")
        await reset_postgres(database_url)
        return database_url
    return f"sqlite+aiosqlite:///{tempfile.mkdtemp(dir=workdir)}/load.db"


def loadavg() -> str:
    """The machine's load averages over 1, 5 and 15 minutes (as `uptime` prints them)."""
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


async def read_cards(
    client: BenchClient, groups: dict[int, int | None]
) -> tuple[Counter[str], dict[str, int | None]]:
    """Tip cards per short id across the groups, and the commune of the group each is in."""
    found: Counter[str] = Counter()
    where: dict[str, int | None] = {}
    for chat_id, commune in groups.items():
        for message in await client.bot_messages(chat_id):
            text = str(message.get("text") or message.get("caption") or "")
            match = SHORT_ID.search(text)
            if match and CARD_MARK in text:
                found[match.group(0)] += 1
                where[match.group(0)] = commune
    return found, where


async def database_tips(db: Database) -> dict[str, int]:
    """Every tip in the database: short id -> commune code (a row exists once confirmed)."""
    async with db.session() as session:
        rows = (await session.exec(select(Tip.short_id, Tip.commune_code))).all()
    return dict(rows)


async def card_rows(db: Database) -> dict[str, int]:
    """The outbox's card rows per status."""
    async with db.session() as session:
        statement = (
            select(OutboxMessage.status, func.count())
            .where(OutboxMessage.kind == "card")
            .group_by(col(OutboxMessage.status))
        )
        return {status: int(n) for status, n in (await session.exec(statement)).all()}


def first_arrivals(replies: SseReplies, chat_ids: list[int]) -> list[float]:
    """When each card message first reached the event stream (edits not counted again)."""
    arrivals: dict[tuple[int, int], float] = {}
    for chat_id in chat_ids:
        queue = replies.queue(chat_id)
        while not queue.empty():
            arrived, message = queue.get_nowait()
            text = str(message.get("text") or message.get("caption") or "")
            if SHORT_ID.search(text) and CARD_MARK in text:
                key = (chat_id, int(message["message_id"]))
                arrivals[key] = min(arrived, arrivals.get(key, arrived))
    return list(arrivals.values())


def card_timeout(options: LoadOptions) -> float:
    """Long enough for the most loaded group at 20 messages a minute, plus a margin."""
    if options.card_timeout is not None:
        return options.card_timeout
    per_group = math.ceil(options.citizens * options.tips / options.communes) + 2  # + link, etc.
    paced = max(0, per_group - GROUP_BURST) * GROUP_PERIOD / GROUP_BURST
    return 120.0 + paced * 1.5


async def run(options: LoadOptions, processes: Processes, workdir: Path) -> LoadResult:
    """Emulator + `tinbao run`, the police, the citizens, then the cards; all stopped after."""
    result = LoadResult(RunResult("tinbao", options.citizens, options.tips))
    result.load_before = loadavg()
    database_url = await fresh_database(options.database_url, workdir)
    env = {
        "TINBAO_BOT_TOKEN": TINBAO_TOKEN,
        **tinbao_env(database_url, workdir),
        "TINBAO_BOT_MAX_RATE": "0",  # the emulator enforces no limits (--no-limits)
    }
    url = await start_emulator(processes, TINBAO_TOKEN)
    client = make_client(url, TINBAO_TOKEN, options.citizens)
    replies = SseReplies(url, TINBAO_TOKEN)
    db: Database | None = None
    try:
        bot_pid = processes.start(
            "tinbao", [TINBAO, "run"], {"TINBAO_TELEGRAM_API_URL": url, **env}
        )

        async def commands_set() -> bool:
            return bool(await client.commands())

        console.print(f"[bold]tinbao run[/bold]: waiting for the bot to start (pid {bot_pid})")
        await wait_until("tinbao", commands_set, 180, lambda: processes.check("tinbao"))
        await replies.start()
        db = Database(database_url)

        setup = time.perf_counter()
        result.places = places = await pick_places(db, options.communes)
        police = Police(client, replies, db, options.step_timeout)
        provinces = {p.choice.province_code: p.choice.province_name for p in places}
        console.print(
            f"enrolling {len(places)} officers and {len(provinces)} supervisors, "
            "each linking an inbox group"
        )
        await asyncio.gather(*(police.officer(place) for place in places))
        supervisors = await asyncio.gather(
            *(police.supervisor(code, name) for code, name in provinces.items())
        )
        result.province_groups = dict(zip(provinces, supervisors, strict=True))
        result.setup_seconds = time.perf_counter() - setup

        drivers = [
            LoadDriver(
                client,
                replies,
                place.steps,
                result,
                step_timeout=options.step_timeout,
                think=options.think,
            )
            for place in places
        ]
        warm = drivers[0]
        if not await warm.conversation(User(FIRST_CITIZEN_ID - 1, "Warm"), record=False):
            raise RuntimeError(f"the warm-up tip failed: {dict(result.run.errors)}")
        result.run.errors.clear()
        result.planned_by_commune[places[0].choice.code] += 1  # the warm-up's tip

        citizens = []
        for i in range(options.citizens):
            driver = drivers[i % len(drivers)]
            result.planned_by_commune[places[i % len(places)].choice.code] += options.tips
            user = User(FIRST_CITIZEN_ID + i, f"Người dân {i}", language_code="vi")
            delay = random.uniform(0, options.ramp)
            citizens.append(driver.start_citizen(user, options.tips, delay))
        meter = CpuMeter(
            {
                "driver": os.getpid(),
                "emulator": processes.running["emulator"].pid,
                "bot": bot_pid,
            }
        )
        console.print(
            f"[bold]{options.citizens} citizens x {options.tips} tips x 9 updates[/bold], "
            f"{len(places)} communes, pause {options.think * 1000:.0f} ms, "
            f"ramp {options.ramp:.0f} s"
        )
        meter.start()
        started = time.perf_counter()
        sampler = asyncio.create_task(sample_cpu(bot_pid, result.cpu_samples))
        try:
            await asyncio.gather(*citizens)
        finally:
            sampler.cancel()
        result.run.seconds = time.perf_counter() - started
        meter.finish(result.run)
        processes.check("tinbao")

        await wait_for_cards(options, result, client, replies, db, processes)
        counters = await client.counters()
        result.run.emulator_errors = dict(counters.get("errors_by_code", {}))
        result.run.bot_log_errors = processes.log_lines("tinbao", " ERROR ")
    finally:
        result.load_after = loadavg()
        if db is not None:
            await db.dispose()
        await replies.aclose()
        await client.aclose()
        processes.stop("tinbao")
        processes.stop("emulator")
    return result


async def wait_for_cards(
    options: LoadOptions,
    result: LoadResult,
    client: BenchClient,
    replies: SseReplies,
    db: Database,
    processes: Processes,
) -> None:
    """Wait until every tip in the database has a card in an inbox group; count them."""
    groups: dict[int, int | None] = {p.group: p.choice.code for p in result.places}
    groups.update(dict.fromkeys(result.province_groups.values()))
    tips = await database_tips(db)
    result.card_timeout = card_timeout(options)
    console.print(
        f"{len(tips)} tips in the database; waiting (up to {result.card_timeout:.0f} s) "
        "for their cards"
    )
    started = time.perf_counter()
    deadline = started + result.card_timeout
    while True:
        processes.check("tinbao")
        cards, _where = await read_cards(client, groups)
        if all(cards[tip] for tip in tips) or time.perf_counter() > deadline:
            break
        await asyncio.sleep(2)
    await asyncio.sleep(3)  # a duplicate would come right behind
    result.card_wait = time.perf_counter() - started
    tips = await database_tips(db)
    result.cards, where = await read_cards(client, groups)
    result.tips_in_db = tips
    result.tips_by_commune = Counter(tips.values())
    result.wrong_group = sum(1 for tip, commune in where.items() if tips.get(tip) != commune)
    result.unknown_cards = sum(n for tip, n in result.cards.items() if tip not in tips)
    result.card_rows = await card_rows(db)
    arrivals = first_arrivals(replies, list(groups))
    result.last_card = max(arrivals) if arrivals else None
    result.late_receipts = late_receipts(replies, result.failed)


def late_receipts(
    replies: SseReplies, failed: list[tuple[int, float | None]]
) -> list[float | None]:
    """For each failed tip: seconds from its last answer to a receipt code that came later."""
    found: list[float | None] = []
    for chat_id, answered in failed:
        queue = replies.queue(chat_id)
        wait: float | None = None
        while not queue.empty():
            arrived, message = queue.get_nowait()
            if wait is None and RECEIPT_CODE.search(message.get("text") or ""):
                wait = arrived - answered if answered is not None else float("nan")
        found.append(wait)
    return found


async def sample_cpu(pid: int, samples: list[tuple[float, float, float]]) -> None:
    """Every second: (time, the bot's CPU seconds, the machine's busy seconds), until cancelled."""
    while True:
        samples.append((time.perf_counter(), cpu_seconds(pid), machine_busy_seconds()))
        await asyncio.sleep(1)


def busiest_window(samples: list[tuple[float, float, float]], width: int = 10) -> dict[str, float]:
    """The bot's CPU in its busiest `width` seconds, and how busy the machine was meanwhile."""
    best: dict[str, float] = {}
    cores = os.cpu_count() or 1
    for start, end in zip(samples, samples[width:], strict=False):
        seconds = end[0] - start[0]
        bot = (end[1] - start[1]) / seconds * 100
        if bot > best.get("bot_percent_of_one_core", -1.0):
            best = {
                "bot_percent_of_one_core": round(bot, 1),
                "machine_busy_percent_of_all_cores": round(
                    (end[2] - start[2]) / seconds / cores * 100, 1
                ),
                "seconds": round(seconds, 1),
            }
    return best


def step_figures(values: list[float]) -> dict[str, float | None]:
    """p50, p90, p99 and max of a step's latencies, in ms."""
    ordered = sorted(values)
    return {
        "p50": percentile_ms(ordered, 0.50),
        "p90": percentile_ms(ordered, 0.90),
        "p99": percentile_ms(ordered, 0.99),
        "max": round(ordered[-1] * 1000, 1) if ordered else None,
    }


def figures(result: LoadResult, options: LoadOptions, database: str) -> dict[str, Any]:
    """Everything measured, as plain data, with the goals judged."""
    run = result.run
    tips_expected = options.citizens * options.tips + 1  # + the warm-up
    in_inbox = sum(1 for tip in result.tips_in_db if result.cards[tip])
    missing = len(result.tips_in_db) - in_inbox
    duplicates = sum(n - 1 for n in result.cards.values() if n > 1)
    last_confirm = max(result.confirm_times) if result.confirm_times else None
    errors = sum(run.errors.values())
    wrong_commune = sum(
        abs(result.tips_by_commune[code] - n) for code, n in result.planned_by_commune.items()
    )
    goals = {
        "zero_errors": errors == 0 and run.conversations == options.citizens * options.tips,
        "every_tip_in_an_inbox_once": (
            missing == 0
            and duplicates == 0
            and result.unknown_cards == 0
            and len(result.tips_in_db) == tips_expected
            and result.wrong_group == 0
        ),
    }
    return {
        "machine": machine(),
        "database": database,
        "load_average_before": result.load_before,
        "load_average_after": result.load_after,
        "citizens": options.citizens,
        "tips_per_citizen": options.tips,
        "think_ms": options.think * 1000,
        "ramp_s": options.ramp,
        "communes": len(result.places),
        "provinces": len(result.province_groups),
        "setup_s": round(result.setup_seconds, 1),
        "updates": run.updates,
        "seconds": round(run.seconds, 1),
        "updates_per_s": round(run.updates / run.seconds, 1) if run.seconds else None,
        "latency_ms": step_figures(run.latencies),
        "latency_ms_by_step": {
            str(step + 1): step_figures(values)
            for step, values in sorted(run.latencies_by_step.items())
        },
        "errors": errors,
        "errors_by_kind": dict(run.errors),
        "tips_confirmed": run.conversations,
        "receipt_after_last_answer_ms": step_figures(result.receipt_waits),
        "failed_tips_whose_receipt_came_late": sum(
            1 for w in result.late_receipts if w is not None
        ),
        "late_receipt_after_last_answer_s": sorted(
            round(w, 1) for w in result.late_receipts if w is not None
        ),
        "unique_receipts": len(run.receipts),
        "tips_in_db": len(result.tips_in_db),
        "tips_in_db_expected": tips_expected,
        "tips_in_wrong_commune": wrong_commune,
        "cards_delivered": in_inbox,
        "cards_missing": missing,
        "cards_duplicated": duplicates,
        "cards_of_unknown_tips": result.unknown_cards,
        "cards_in_wrong_group": result.wrong_group,
        "card_rows_by_status": result.card_rows,
        "card_wait_s": round(result.card_wait, 1),
        "card_timeout_s": round(result.card_timeout, 1),
        "last_confirm_to_last_card_s": (
            round(result.last_card - last_confirm, 2) + 0.0  # no "-0.0"
            if result.last_card is not None and last_confirm is not None
            else None
        ),
        "cpu_percent_of_one_core": {k: round(v, 1) for k, v in run.cpu.items()},
        "busiest_10_s": busiest_window(result.cpu_samples),
        "bot_cpu_ms_per_update": (
            round(run.bot_cpu_seconds / run.updates * 1000, 2) if run.updates else None
        ),
        "emulator_errors_by_code": run.emulator_errors,
        "bot_log_error_lines": len(run.bot_log_errors),
        "goals": goals,
    }


def report(data: dict[str, Any], bot_log_errors: list[str]) -> None:
    """Print the table and the goal verdicts."""
    out = Console()
    table = Table(
        title=f"Load: {data['citizens']} citizens x {data['tips_per_citizen']} tips, "
        f"pause {data['think_ms']:.0f} ms, {data['communes']} communes ({data['database']})"
    )
    table.add_column("")
    table.add_column("value", justify="right")

    def row(label: str, value: Any) -> None:
        table.add_row(label, "-" if value is None else str(value))

    row(
        "load average before / after",
        f"{data['load_average_before']} / {data['load_average_after']}",
    )
    row("updates", data["updates"])
    row("wall time of the citizens, s", data["seconds"])
    row("updates/s", data["updates_per_s"])
    for key in ("p50", "p90", "p99", "max"):
        row(f"{key} update latency, ms", data["latency_ms"][key])
    row("errors", data["errors"])
    row("tips confirmed (receipt code)", data["tips_confirmed"])
    receipt = data["receipt_after_last_answer_ms"]
    row(
        "receipt after the last answer p50 / p99 / max, ms",
        f"{receipt['p50']} / {receipt['p99']} / {receipt['max']}",
    )
    if data["errors"]:
        late = data["late_receipt_after_last_answer_s"]
        row(
            "failed tips whose receipt came later (max s)",
            f"{data['failed_tips_whose_receipt_came_late']} ({max(late) if late else '-'})",
        )
    row("tips in the database (incl. warm-up)", data["tips_in_db"])
    row("cards delivered", data["cards_delivered"])
    row("cards missing", data["cards_missing"])
    row("cards duplicated", data["cards_duplicated"])
    row(
        "cards in the wrong group / of unknown tips",
        f"{data['cards_in_wrong_group']} / {data['cards_of_unknown_tips']}",
    )
    row("last confirm to last card, s", data["last_confirm_to_last_card_s"])
    for who in ("driver", "emulator", "bot", "postgres", "other"):
        row(f"CPU {who}, % of one core", data["cpu_percent_of_one_core"].get(who))
    row("bot CPU per update, ms", data["bot_cpu_ms_per_update"])
    busiest = data["busiest_10_s"]
    if busiest:
        bot, busy = busiest["bot_percent_of_one_core"], busiest["machine_busy_percent_of_all_cores"]
        row("busiest 10 s: bot % of one core / machine % busy", f"{bot} / {busy}")
    out.print(table)
    steps = Table(title="Latency per step, ms")
    for name in ("step", "p50", "p90", "p99", "max"):
        steps.add_column(name, justify="right")
    for step, values in data["latency_ms_by_step"].items():
        steps.add_row(
            step,
            *("-" if values[k] is None else str(values[k]) for k in ("p50", "p90", "p99", "max")),
        )
    out.print(steps)
    if data["errors_by_kind"]:
        out.print(f"errors: {data['errors_by_kind']}")
    if data["emulator_errors_by_code"]:
        out.print(f"Bot API errors: {data['emulator_errors_by_code']}")
    if data["tips_in_wrong_commune"]:
        out.print(f"tips not in the commune their citizen picked: {data['tips_in_wrong_commune']}")
    out.print(f"card rows by status: {data['card_rows_by_status']}")
    if bot_log_errors:
        out.print(f"the bot's log has {len(bot_log_errors)} ERROR lines, first ones:")
        for line in bot_log_errors[:5]:
            out.print(f"  {line}", markup=False, highlight=False)
    verdict = {True: "[green]PASS[/green]", False: "[red]FAIL[/red]"}
    goals = data["goals"]
    out.print(f"0 errors: {data['errors']} errors {verdict[goals['zero_errors']]}")
    out.print(
        f"every tip in an inbox exactly once: {data['cards_delivered']} of {data['tips_in_db']} "
        f"tips, {data['cards_missing']} missing, {data['cards_duplicated']} duplicated "
        f"{verdict[goals['every_tip_in_an_inbox_once']]}"
    )
    out.print(f"p99 update latency (recorded, no goal): {data['latency_ms']['p99']} ms")


def parse_args(argv: list[str] | None = None) -> LoadOptions:
    """Read the command line."""
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--citizens", type=int, default=1000, help="concurrent citizens (1000)")
    parser.add_argument("--tips-per-citizen", type=int, default=1, help="tips each sends (1)")
    parser.add_argument(
        "--think-ms",
        type=float,
        default=5000.0,
        help="mean pause of each citizen between steps, jittered +-50%% (5000)",
    )
    parser.add_argument(
        "--ramp-s",
        type=float,
        default=30.0,
        help="the citizens' first steps are spread uniformly over this many seconds (30)",
    )
    parser.add_argument(
        "--communes",
        type=int,
        default=50,
        help="communes the tips go to, each with its own inbox group (50: 20 cards a group "
        "at 1,000 citizens, one burst of PTB's 20 messages a minute per group)",
    )
    parser.add_argument("--step-timeout", type=float, default=60.0, help="seconds per reply (60)")
    parser.add_argument(
        "--card-timeout",
        type=float,
        help="seconds to wait for the cards after the citizens (default: enough for the "
        "busiest group at 20 messages a minute, plus 120 s)",
    )
    parser.add_argument(
        "--database-url",
        help="tinbao's database; PostgreSQL: schema public is dropped and recreated first "
        "(default: a temporary SQLite file)",
    )
    parser.add_argument(
        "--logs", type=Path, metavar="DIR", help="keep the emulator's and the bot's logs in DIR"
    )
    parser.add_argument("--json", action="store_true", help="also print the figures as JSON")
    args = parser.parse_args(argv)
    if args.communes < 1 or args.citizens < 1 or args.tips_per_citizen < 1:
        parser.error("--citizens, --tips-per-citizen and --communes must be at least 1")
    return LoadOptions(
        citizens=args.citizens,
        tips=args.tips_per_citizen,
        think=args.think_ms / 1000,
        ramp=args.ramp_s,
        communes=args.communes,
        step_timeout=args.step_timeout,
        card_timeout=args.card_timeout,
        database_url=args.database_url,
        logs=args.logs.resolve() if args.logs else None,
        as_json=args.json,
    )


def main(argv: list[str] | None = None) -> int:
    """Run the load; subprocesses are ended on any exit (errors and Ctrl+C included)."""
    options = parse_args(argv)

    def terminate(signum: int, _frame: object) -> None:
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGTERM, terminate)
    if options.database_url and not options.database_url.startswith("sqlite"):
        database = options.database_url.split("://", 1)[0]
    else:
        database = "sqlite+aiosqlite (temporary file)"
    with tempfile.TemporaryDirectory(prefix="tinbao-load-") as tmp:
        workdir = Path(tmp)
        if options.logs is not None:
            options.logs.mkdir(parents=True, exist_ok=True)
        processes = Processes(options.logs or workdir, workdir)
        try:
            result = asyncio.run(run(options, processes, workdir))
        except KeyboardInterrupt:
            console.print("interrupted")
            return 130
        finally:
            processes.stop_all()
    data = figures(result, options, database)
    report(data, result.run.bot_log_errors)
    if options.as_json:
        print(json.dumps(data, ensure_ascii=False, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
