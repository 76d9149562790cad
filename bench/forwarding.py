"""Forwarding latency: from a citizen's "📨 Gửi tin báo" press to the card in the inbox group.

    python bench/forwarding.py                      # 50 citizens x 2 tips, 10 communes, limits on
    python bench/forwarding.py --no-limits          # the pipeline alone
    python bench/forwarding.py --communes 2         # 50 cards per group: over the 20/min limit
    python bench/forwarding.py --hot-share 0.6      # 60% of citizens report in one commune
    python bench/forwarding.py --database-url postgresql+asyncpg://postgres@127.0.0.1:5432/bench

Each run starts the Bot API emulator (`tinbao emulator`, Telegram-like flood limits unless
--no-limits) and `tinbao run` (bot and outbox sender in one process) as subprocesses, on a
fresh database (a temporary SQLite file, or the PostgreSQL database of --database-url whose
schema `public` is DROPPED and recreated). It enrolls one officer per commune through the bot,
links an inbox group for each, then N citizens, spread over the communes, each send M tips in a
row, all citizens at once, through the button flow.

Latency of a tip: from just before the control-API call that presses "📨 Gửi tin báo" to the
card (short id + "Lĩnh vực") reaching the driver on the emulator's server-sent-event stream.
Telegram allows a bot 20 messages a minute in one group: once a group's burst of 20 is spent,
its cards queue, and the latency grows with the queue. The report gives the distribution and,
per group, how many cards arrived in the busiest 60 s. With --no-limits the emulator refuses
nothing and tinbao's overall pace is off (TINBAO_BOT_MAX_RATE=0); PTB's AIORateLimiter in the
bot still paces each group at 20 a minute. Figures only: the exit code says nothing about them.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import math
import os
import platform
import re
import secrets
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections import Counter, defaultdict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from rich.console import Console
from rich.table import Table

from sandbox.client import EmulatorClient, EmulatorError, User

ROOT = Path(__file__).resolve().parent.parent
TINBAO = str(Path(sys.executable).parent / "tinbao")
TOKEN = "700003:BENCH-FORWARDING"
SHORT_ID = re.compile(r"\bT-[0-9A-Z]{6}\b")
RECEIPT_CODE = re.compile(r"\b[0-9A-Z]{4}-[0-9A-Z]{4}-[0-9A-Z]{4}\b")
CARD_MARK = "Lĩnh vực"
CONFIRM = "📨"
FIRST_CITIZEN_ID = 20_000_000
FIRST_OFFICER_ID = 30_000_000
FIRST_GROUP_ID = -1_003_000_000_000
CLK_TCK = os.sysconf("SC_CLK_TCK")
STEP_TIMEOUT = 120.0  # one reply; with limits on, private chats get 1 message a second

console = Console(stderr=True)


# -- processes ---------------------------------------------------------------------------------


def free_port() -> int:
    """A TCP port nobody listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Processes:
    """Subprocesses of the benchmark, output in log files; all ended on exit, by pid."""

    def __init__(self, log_dir: Path) -> None:
        self.log_dir = log_dir
        self.running: dict[str, subprocess.Popen[bytes]] = {}

    def start(self, name: str, argv: list[str], env: dict[str, str]) -> None:
        """Start a process in its own session, stdout and stderr to <log_dir>/<name>.log."""
        with (self.log_dir / f"{name}.log").open("wb") as log:
            self.running[name] = subprocess.Popen(
                argv,
                stdout=log,
                stderr=subprocess.STDOUT,
                env={**os.environ, **env},
                cwd=self.log_dir,  # keeps a developer's .env out
                start_new_session=True,
            )

    def check(self, name: str) -> None:
        """Raise, with the end of its log, if a process has exited."""
        process = self.running[name]
        if process.poll() is not None:
            tail = (self.log_dir / f"{name}.log").read_text(errors="replace")[-3000:]
            raise RuntimeError(f"{name} exited with {process.returncode}:\n{tail}")

    def error_lines(self, name: str, context: int = 12) -> list[str]:
        """Lines of a process's log that report an error, each with the lines after it."""
        lines = (self.log_dir / f"{name}.log").read_text(errors="replace").splitlines()
        return [
            "\n".join(lines[index : index + context])
            for index, line in enumerate(lines)
            if " ERROR " in line
        ]

    def stop_all(self) -> None:
        """SIGTERM every process (SIGKILL after 10 s), newest first."""
        for name in reversed(list(self.running)):
            process = self.running.pop(name)
            if process.poll() is not None:
                continue
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGTERM)
            try:
                process.wait(10)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(process.pid, signal.SIGKILL)
                process.wait(5)


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far (Linux /proc)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def machine_busy_seconds() -> float:
    """CPU seconds all cores spent busy so far (Linux /proc/stat; idle and iowait excluded)."""
    fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    return (sum(fields[:7]) - fields[3] - fields[4]) / CLK_TCK


async def wait_until(
    what: str, probe: Callable[[], Awaitable[bool]], timeout: float, alive: Callable[[], None]
) -> None:
    """Poll probe() until it is true; alive() raises if a process died meanwhile."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        alive()
        with contextlib.suppress(httpx.HTTPError, EmulatorError):
            if await probe():
                return
        await asyncio.sleep(0.1)
    raise RuntimeError(f"{what} not ready after {timeout:.0f} s")


# -- the database ------------------------------------------------------------------------------


async def reset_postgres(url: str) -> None:
    """Drop and recreate schema public of the benchmark database."""
    from sqlalchemy import text

    from storage.db import Database

    db = Database(url)
    try:
        async with db.engine.begin() as connection:
            await connection.execute(text("DROP SCHEMA IF EXISTS public CASCADE"))
            await connection.execute(text("CREATE SCHEMA public"))
    finally:
        await db.dispose()


@dataclass(frozen=True)
class Commune:
    """A commune the citizens name by typing `typed` and pressing `label`."""

    code: int
    typed: str
    label: str


async def pick_communes(url: str, count: int) -> list[Commune]:
    """Communes whose bare name finds them first in the bot's own search."""
    from sqlmodel import col, select

    from storage.communes import search_communes
    from storage.db import Database
    from storage.models import Commune as CommuneRow

    db = Database(url)
    picked: list[Commune] = []
    try:
        async with db.session() as session:
            rows = (
                await session.exec(select(CommuneRow).order_by(col(CommuneRow.code)).limit(2000))
            ).all()
            for row in rows[::7]:  # spread over provinces
                typed = row.search_name.split(" ", 1)[-1]
                found = await search_communes(session, typed)
                if found and found[0].code == row.code:
                    picked.append(Commune(row.code, typed, found[0].label))
                if len(picked) == count:
                    break
    finally:
        await db.dispose()
    if len(picked) < count:
        raise RuntimeError(f"only {len(picked)} communes can be typed unambiguously")
    return picked


async def invite_code(url: str, commune: int) -> str:
    """An officer invite, as `tinbao invite` makes it."""
    from bot.services.enrollment import create_invite
    from storage.db import Database
    from storage.types import utcnow

    db = Database(url)
    try:
        async with db.session() as session:
            invite = await create_invite(
                session, role="officer", commune_code=commune, province_code=None, now=utcnow()
            )
    finally:
        await db.dispose()
    return invite.code


async def outbox_summary(url: str) -> dict[str, Any]:
    """Card rows per status and their send attempts."""
    from sqlmodel import select

    from storage.db import Database
    from storage.models import OutboxMessage

    db = Database(url)
    try:
        async with db.session() as session:
            rows = (
                await session.exec(select(OutboxMessage).where(OutboxMessage.kind == "card"))
            ).all()
    finally:
        await db.dispose()
    return {
        "cards_by_status": dict(Counter(row.status for row in rows)),
        "attempts_max": max((row.attempts for row in rows), default=0),
        "cards_retried": sum(1 for row in rows if row.attempts > 1),
    }


# -- watching the inboxes ----------------------------------------------------------------------


class CardWatch:
    """The emulator's event stream: when each card first appeared, and in which group."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.first_seen: dict[str, tuple[float, int]] = {}
        self.copies: Counter[str] = Counter()
        self.groups: set[int] = set()
        self._connected = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._http = httpx.AsyncClient(timeout=httpx.Timeout(10, read=None))

    async def start(self) -> None:
        """Subscribe; return once the emulator confirms."""
        self._task = asyncio.create_task(self._read())
        async with asyncio.timeout(10):
            await self._connected.wait()

    async def _read(self) -> None:
        async with self._http.stream("GET", f"{self.url}/control/events") as response:
            async for line in response.aiter_lines():
                if line.startswith(": connected"):
                    self._connected.set()
                if not line.startswith("data: "):
                    continue
                now = time.perf_counter()
                event = json.loads(line[6:])
                chat_id = int(event.get("chat_id") or 0)
                if event.get("type") != "message" or chat_id not in self.groups:
                    continue
                text = event["message"].get("text") or ""
                match = SHORT_ID.search(text)
                if match and CARD_MARK in text:
                    short_id = match.group(0)
                    self.copies[short_id] += 1
                    self.first_seen.setdefault(short_id, (now, chat_id))

    async def aclose(self) -> None:
        """Stop reading."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, httpx.HTTPError):
                await self._task
        await self._http.aclose()


# -- people --------------------------------------------------------------------------------------


class People:
    """Officers and citizens acting through the control API."""

    def __init__(self, client: EmulatorClient) -> None:
        self.client = client

    async def reply(self, chat_id: int, wanted: Callable[[dict[str, Any]], bool]) -> dict[str, Any]:
        """The next bot message of a chat that `wanted` accepts."""
        deadline = time.monotonic() + STEP_TIMEOUT
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError(f"no expected reply in chat {chat_id}")
            for message in await self.client.wait_bot_messages(chat_id, timeout=remaining):
                if wanted(message):
                    return message

    async def press(self, user: User, message: dict[str, Any], label: str) -> None:
        """Press the button of a message whose text contains label."""
        await self.client.press(user, user.id, message["message_id"], button(message, label))

    async def officer_with_inbox(self, index: int, commune: Commune, code: str) -> int:
        """An officer joins with an invite and links a new group; returns the group's id."""
        officer = User(FIRST_OFFICER_ID + index, f"Officer {index}")
        await self.client.send_text(officer, f"/join {code}")
        await self.reply(officer.id, lambda m: "ghi danh" in text_of(m))
        group = FIRST_GROUP_ID - index
        await self.client.add_bot_to_group(officer, group, f"Công an {commune.label}")
        await self.client.send_text(officer, "/link", chat_id=group)
        await self.reply(group, lambda m: "Từ nay nhóm này là hộp thư" in text_of(m))
        return group

    async def tip(self, user: User, commune: Commune, number: int) -> tuple[float, str]:
        """One whole tip; returns (when "📨" was pressed, the tip's short id)."""
        chat = user.id
        await self.client.send_text(user, "/start")
        for label in ("Gửi tin báo", "Ma túy", "Không"):
            await self.press(user, await self.reply(chat, has_button(label)), label)
        await self.reply(chat, lambda m: True)
        await self.client.send_text(user, commune.typed)
        await self.press(user, await self.reply(chat, has_button(commune.label)), commune.label)
        await self.reply(chat, lambda m: True)
        await self.client.send_text(user, f"Tin báo {number}: có người bán ma túy ở đầu ngõ 5.")
        await self.press(user, await self.reply(chat, has_button("Xong")), "Xong")
        review = await self.reply(chat, has_button(CONFIRM))
        confirmed = time.perf_counter()
        await self.press(user, review, CONFIRM)
        receipt = await self.reply(chat, lambda m: bool(RECEIPT_CODE.search(text_of(m))))
        match = SHORT_ID.search(text_of(receipt))
        if match is None:
            raise LookupError("the receipt has no short id")
        return confirmed, match.group(0)


def text_of(message: dict[str, Any]) -> str:
    """A message's text or caption."""
    return str(message.get("text") or message.get("caption") or "")


def button(message: dict[str, Any], label: str) -> str:
    """The callback data of the button whose text contains label."""
    for row in (message.get("reply_markup") or {}).get("inline_keyboard", []):
        for candidate in row:
            if label in candidate.get("text", ""):
                return str(candidate["callback_data"])
    raise LookupError(f"no button {label!r}")


def has_button(label: str) -> Callable[[dict[str, Any]], bool]:
    """A reply check: the message carries a button with this label."""

    def check(message: dict[str, Any]) -> bool:
        with contextlib.suppress(LookupError):
            return bool(button(message, label))
        return False

    return check


# -- one run -------------------------------------------------------------------------------------


@dataclass
class Options:
    """Command-line options."""

    citizens: int
    tips_per_citizen: int
    communes: int
    hot_share: float
    limits: bool
    database_url: str | None
    deliver_timeout: float
    logs: Path | None
    as_json: bool


@dataclass
class Run:
    """What one run measured."""

    confirmed: dict[str, float] = field(default_factory=dict)  # short id -> press time
    commune_of: dict[str, int] = field(default_factory=dict)
    errors: Counter[str] = field(default_factory=Counter)
    tips_seconds: float = 0.0
    deliver_seconds: float = 0.0
    cpu_percent: dict[str, float] = field(default_factory=dict)  # of one core
    load_average: tuple[float, float, float] = (0.0, 0.0, 0.0)


async def run(options: Options, workdir: Path) -> dict[str, Any]:
    """Emulator and bot up, police set up, citizens send; everything stopped after."""
    log_dir = options.logs or workdir
    log_dir.mkdir(parents=True, exist_ok=True)
    processes = Processes(log_dir)
    if options.database_url:
        url = options.database_url
        if not url.startswith("sqlite"):
            console.print("resetting schema public of the benchmark database")
            await reset_postgres(url)
        database = url.split("://", 1)[0]
    else:
        url = f"sqlite+aiosqlite:///{workdir / 'bench.db'}"
        database = "sqlite+aiosqlite (temporary file)"
    port = free_port()
    api = f"http://127.0.0.1:{port}"
    emulator_argv = [TINBAO, "emulator", "--port", str(port), "--token", TOKEN]
    env = {
        "TINBAO_BOT_TOKEN": TOKEN,
        "TINBAO_DATABASE_URL": url,
        "TINBAO_TELEGRAM_API_URL": api,
        "TINBAO_SECRET_KEY": secrets.token_urlsafe(48),
        "TINBAO_MODE": "dev",
        "TINBAO_DATA_DIR": str(workdir / "data"),
        "TINBAO_RUN_SENDER": "true",
        # Citizens here send faster than any person; the flood rules are not what is measured.
        "TINBAO_MESSAGES_PER_MINUTE": "1000000",
        "TINBAO_TIPS_PER_HOUR": "1000000",
    }
    if not options.limits:
        emulator_argv.append("--no-limits")
        env["TINBAO_BOT_MAX_RATE"] = "0"
    connections = httpx.Limits(
        max_connections=options.citizens * 2 + 32, max_keepalive_connections=options.citizens * 2
    )
    client = EmulatorClient(
        api, timeout=STEP_TIMEOUT + 30, transport=httpx.AsyncHTTPTransport(limits=connections)
    )
    watch = CardWatch(api)
    result = Run()
    try:
        processes.start("emulator", emulator_argv, {})

        async def answers() -> bool:
            return bool(await client.counters())

        await wait_until("the emulator", answers, 30, lambda: processes.check("emulator"))
        processes.start("tinbao", [TINBAO, "run"], env)

        async def commands_set() -> bool:
            return bool(await client.commands())

        console.print("waiting for `tinbao run` (migrations and communes on a fresh database)")
        await wait_until("tinbao run", commands_set, 300, lambda: processes.check("tinbao"))
        communes = await pick_communes(url, options.communes)
        people = People(client)
        codes = [await invite_code(url, commune.code) for commune in communes]
        groups = await asyncio.gather(
            *(
                people.officer_with_inbox(i, commune, code)
                for i, (commune, code) in enumerate(zip(communes, codes, strict=True))
            )
        )
        watch.groups.update(groups)
        group_of = {commune.code: group for commune, group in zip(communes, groups, strict=True)}
        await watch.start()
        console.print(
            f"{options.citizens} citizens x {options.tips_per_citizen} tips over "
            f"{len(communes)} communes, limits {'on' if options.limits else 'off'}"
        )

        async def citizen(index: int) -> None:
            user = User(FIRST_CITIZEN_ID + index, f"Citizen {index}", language_code="vi")
            commune = communes[commune_index(index, options)]
            for number in range(options.tips_per_citizen):
                try:
                    confirmed, short_id = await people.tip(user, commune, number)
                except (TimeoutError, LookupError, EmulatorError, httpx.HTTPError) as error:
                    result.errors[type(error).__name__] += 1
                    return
                result.confirmed[short_id] = confirmed
                result.commune_of[short_id] = commune.code

        pids = {
            "bot": processes.running["tinbao"].pid,
            "emulator": processes.running["emulator"].pid,
            "driver": os.getpid(),
        }
        cpu_before = {who: cpu_seconds(pid) for who, pid in pids.items()}
        busy_before = machine_busy_seconds()
        result.load_average = os.getloadavg()
        started = time.perf_counter()
        await asyncio.gather(*(citizen(i) for i in range(options.citizens)))
        result.tips_seconds = time.perf_counter() - started

        async def all_seen() -> bool:
            return set(result.confirmed) <= set(watch.first_seen)

        with contextlib.suppress(RuntimeError):
            await wait_until(
                "every card", all_seen, options.deliver_timeout, lambda: processes.check("tinbao")
            )
        result.deliver_seconds = time.perf_counter() - started
        for who, pid in pids.items():
            spent = cpu_seconds(pid) - cpu_before[who]
            result.cpu_percent[who] = round(spent / result.deliver_seconds * 100, 1)
        busy = (machine_busy_seconds() - busy_before) / result.deliver_seconds * 100
        # Whatever else ran on the machine meanwhile: noise the figures carry.
        result.cpu_percent["other"] = round(max(0.0, busy - sum(result.cpu_percent.values())), 1)
        counters = await client.counters()
        outbox = await outbox_summary(url)
        log_errors = processes.error_lines("tinbao")
    finally:
        await watch.aclose()
        await client.aclose()
        processes.stop_all()
    return figures(options, database, result, watch, group_of, counters, outbox, log_errors)


def percentile(ordered: list[float], q: float) -> float | None:
    """Nearest-rank percentile of sorted values."""
    if not ordered:
        return None
    return ordered[max(1, math.ceil(q * len(ordered))) - 1]


def seconds(value: float | None) -> float | None:
    """Seconds rounded to the millisecond."""
    return None if value is None else round(value, 3)


def commune_index(citizen: int, options: Options) -> int:
    """The commune of a citizen: the first `hot_share` of them in the first, the rest spread."""
    hot = round(options.citizens * options.hot_share)
    if citizen < hot or options.communes == 1:
        return 0
    if hot:
        return 1 + (citizen - hot) % (options.communes - 1)
    return citizen % options.communes


def after_burst_per_minute(times: list[float], burst: int = 20) -> float | None:
    """Cards a minute beyond a group's burst, over its first-to-last span (None: no queue)."""
    span = max(times) - min(times) if times else 0.0
    if len(times) <= burst or span <= 0:
        return None
    return round((len(times) - burst) / span * 60, 1)


def busiest_minute(times: list[float]) -> int:
    """The most events inside any 60 s window."""
    ordered = sorted(times)
    best = start = 0
    for end, moment in enumerate(ordered):
        while moment - ordered[start] >= 60:
            start += 1
        best = max(best, end - start + 1)
    return best


def figures(
    options: Options,
    database: str,
    result: Run,
    watch: CardWatch,
    group_of: dict[int, int],
    counters: dict[str, Any],
    outbox: dict[str, Any],
    log_errors: list[str],
) -> dict[str, Any]:
    """Everything measured, as plain data."""
    latencies = sorted(
        watch.first_seen[short_id][0] - pressed
        for short_id, pressed in result.confirmed.items()
        if short_id in watch.first_seen
    )
    arrivals: dict[int, list[float]] = defaultdict(list)
    waits: dict[int, list[float]] = defaultdict(list)
    for short_id, pressed in result.confirmed.items():
        if short_id in watch.first_seen:
            moment, chat = watch.first_seen[short_id]
            arrivals[chat].append(moment)
            waits[chat].append(moment - pressed)
    per_group: dict[str, dict[str, Any]] = {}
    for chat, times in sorted(arrivals.items()):
        span = max(times) - min(times)
        ordered = sorted(waits[chat])
        per_group[str(chat)] = {
            "cards": len(times),
            "busiest_60s": busiest_minute(times),
            "after_burst_per_minute": after_burst_per_minute(times),
            "latency_p50_s": seconds(percentile(ordered, 0.50)),
            "latency_max_s": seconds(ordered[-1]),
            # How long the group took to receive them all, first card to last.
            "span_s": round(span, 1),
        }
    wrong_group = sum(
        1
        for short_id, code in result.commune_of.items()
        if short_id in watch.first_seen and watch.first_seen[short_id][1] != group_of[code]
    )

    return {
        "machine": machine(),
        "database": database,
        "limits": "telegram" if options.limits else "off",
        "citizens": options.citizens,
        "tips_per_citizen": options.tips_per_citizen,
        "communes": options.communes,
        "hot_share": options.hot_share,
        "tips_confirmed": len(result.confirmed),
        "cards_delivered": len(latencies),
        "cards_lost": len(set(result.confirmed) - set(watch.first_seen)),
        "cards_repeated": sum(n - 1 for n in watch.copies.values() if n > 1),
        "cards_in_wrong_group": wrong_group,
        "citizen_errors": dict(result.errors),
        "seconds_to_confirm_all": round(result.tips_seconds, 1),
        "seconds_to_deliver_all": round(result.deliver_seconds, 1),
        "latency_s": {
            "p50": seconds(percentile(latencies, 0.50)),
            "p90": seconds(percentile(latencies, 0.90)),
            "p99": seconds(percentile(latencies, 0.99)),
            "max": seconds(latencies[-1] if latencies else None),
        },
        "per_group": per_group,
        "busiest_60s_max": max((g["busiest_60s"] for g in per_group.values()), default=0),
        "refused_429_by_scope": counters.get("refused_429_by_scope", {}),
        "bot_api_errors_by_code": counters.get("errors_by_code", {}),
        "outbox": outbox,
        "bot_log_error_lines": len(log_errors),
        "bot_log_first_errors": log_errors[:3],
        "cpu_percent_of_one_core": result.cpu_percent,
        "load_average_at_start": [round(x, 2) for x in result.load_average],
    }


def machine() -> dict[str, Any]:
    """The machine the figures come from."""
    cpu = platform.processor()
    memory = ""
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                memory = f"{int(line.split()[1]) / 1024 / 1024:.1f} GiB"
    revision = "unknown"
    with contextlib.suppress(OSError, subprocess.SubprocessError):
        revision = subprocess.run(
            ["git", "describe", "--always", "--dirty"],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=10,
        ).stdout.strip()
    return {
        "revision": revision,
        "cpus": os.cpu_count(),
        "cpu": cpu,
        "memory": memory,
        "python": platform.python_version(),
    }


def print_report(data: dict[str, Any]) -> None:
    """The figures as a table."""
    out = Console()
    table = Table(
        title=f"Forwarding: {data['citizens']} citizens x {data['tips_per_citizen']} tips, "
        f"{data['communes']} inbox groups, limits {data['limits']} ({data['database']})"
    )
    table.add_column("")
    table.add_column("value", justify="right")
    latency = data["latency_s"]
    rows = [
        ("tips confirmed", data["tips_confirmed"]),
        (
            "cards delivered / lost / repeated",
            (f"{data['cards_delivered']} / {data['cards_lost']} / {data['cards_repeated']}"),
        ),
        ("seconds until every tip confirmed", data["seconds_to_confirm_all"]),
        ("seconds until every card delivered", data["seconds_to_deliver_all"]),
        ("confirm -> card p50, s", latency["p50"]),
        ("confirm -> card p90, s", latency["p90"]),
        ("confirm -> card p99, s", latency["p99"]),
        ("confirm -> card max, s", latency["max"]),
        ("cards in the busiest 60 s of a group", data["busiest_60s_max"]),
        ("429 refusals (bot/chat/group)", json.dumps(data["refused_429_by_scope"])),
        (
            "card rows retried / max attempts",
            (f"{data['outbox']['cards_retried']} / {data['outbox']['attempts_max']}"),
        ),
        ("citizen errors", json.dumps(data["citizen_errors"])),
        (
            "CPU % of one core (bot/emulator/driver/other)",
            "/".join(
                str(data["cpu_percent_of_one_core"].get(who))
                for who in ("bot", "emulator", "driver", "other")
            ),
        ),
        ("load average at start", data["load_average_at_start"][0]),
    ]
    for label, value in rows:
        table.add_row(label, "-" if value is None else str(value))
    out.print(table)
    groups = Table(title="per inbox group")
    columns = (
        "group",
        "cards",
        "busiest 60 s",
        "per min after burst",
        "first to last, s",
        "latency p50, s",
        "latency max, s",
    )
    for column in columns:
        groups.add_column(column, justify="right")
    for chat, group in data["per_group"].items():
        cells = [
            group[key]
            for key in (
                "cards",
                "busiest_60s",
                "after_burst_per_minute",
                "span_s",
                "latency_p50_s",
                "latency_max_s",
            )
        ]
        groups.add_row(chat, *("-" if cell is None else str(cell) for cell in cells))
    out.print(groups)


def parse_args(argv: list[str] | None = None) -> Options:
    """Read the command line."""
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--citizens", type=int, default=50, help="concurrent citizens (50)")
    parser.add_argument(
        "--tips-per-citizen", type=int, default=2, help="tips each citizen sends in a row (2)"
    )
    parser.add_argument(
        "--communes", type=int, default=10, help="communes, each with an inbox group (10)"
    )
    parser.add_argument(
        "--hot-share",
        type=float,
        default=0.0,
        help="share of citizens who all report in the first commune; the rest spread over "
        "the others (0: everyone spread evenly)",
    )
    parser.add_argument(
        "--limits",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="Telegram-like flood limits in the emulator (default: on)",
    )
    parser.add_argument(
        "--database-url",
        help="PostgreSQL: schema public is dropped and recreated first "
        "(default: a temporary SQLite file)",
    )
    parser.add_argument(
        "--deliver-timeout",
        type=float,
        default=900.0,
        help="seconds to wait for the last card once every tip is confirmed (900)",
    )
    parser.add_argument(
        "--logs", type=Path, metavar="DIR", help="keep the emulator's and the bot's logs in DIR"
    )
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    args = parser.parse_args(argv)
    return Options(
        citizens=args.citizens,
        tips_per_citizen=args.tips_per_citizen,
        communes=args.communes,
        hot_share=args.hot_share,
        limits=args.limits,
        database_url=args.database_url,
        deliver_timeout=args.deliver_timeout,
        logs=args.logs,
        as_json=args.json,
    )


def main(argv: list[str] | None = None) -> None:
    """Run once and report."""
    options = parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="tinbao-forwarding-") as workdir:
        data = asyncio.run(run(options, Path(workdir)))
    print_report(data)
    if options.as_json:
        print(json.dumps(data, ensure_ascii=False, indent=2))


if __name__ == "__main__":
    main()
