"""Broadcast throughput, pacing and memory, against the Bot API emulator in its own process.

    python bench/broadcast.py                       # every phase, figures as a table
    python bench/broadcast.py --only paced --window 120 --json

Needs PostgreSQL: --database-url (default the database `bench_broadcast` on 127.0.0.1, whose
schema `public` is DROPPED and recreated; create it with
`psql -h 127.0.0.1 -U postgres -c 'create database bench_broadcast'`). Phases:

1. paced: `tinbao emulator` with Telegram's limits on (30 msg/s per bot, 1 msg/s per chat),
   --subscribers (100,000) subscribers, one broadcast to all of them sent by
   `tinbao broadcast send ID --wait` in its own process at --rate (25/s). 100,000 messages at
   25/s take 66 minutes, so the achieved rate is measured over --window seconds after a short
   warm-up, with the 429s the emulator answered and the sender's peak RSS.
2. ceiling: the emulator with limits off and the sender at an unreachable rate with
   --ceiling-slots concurrent sends: the pipeline's own messages/s, HTTP included.
3. pipeline: the same sender in this process against a Bot API that answers at once without a
   network (claims, pacing, PTB, marks): what the pipeline does when HTTP costs nothing.
4. plan: --plan-subscribers (1,000,000) subscribers; the time and peak RSS of the process that
   fires the broadcast and plans its deliveries (one INSERT ... SELECT).

Figures only: the exit code is 0 whether goals pass or not.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import platform
import resource
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from rich.console import Console
from rich.table import Table
from telegram.request import BaseRequest, RequestData

from sandbox.client import EmulatorClient, User

VENV_BIN = Path(sys.executable).parent
TINBAO = str(VENV_BIN / "tinbao")
TOKEN = "720001:BENCH-BROADCAST"
SECRET = "bench-broadcast-secret-0123456789-abcdefghijklmnopqrstuvwxyz"
DEFAULT_URL = "postgresql+asyncpg://postgres@127.0.0.1:5432/bench_broadcast"
FIRST_USER = 20_000_001
COMMUNES = ((8635, 25), (4792, 25), (4, 1), (8, 1))
SEND = "from tinbao.cli_broadcast import broadcast_app; broadcast_app(prog_name='broadcast')"
GOAL_CEILING = 1000.0
GOAL_PLAN_RSS_MB = 300.0
CLK_TCK = os.sysconf("SC_CLK_TCK")

console = Console(stderr=True)


@dataclass
class Options:
    """Command-line options."""

    database_url: str
    subscribers: int
    plan_subscribers: int
    rate: float
    window: float
    warmup: float
    ceiling_window: float
    ceiling_slots: int
    ceiling_lanes: int
    only: str | None
    logs: Path | None
    as_json: bool


class Processes:
    """Subprocesses this benchmark started; all of them are ended on exit."""

    def __init__(self, log_dir: Path) -> None:
        self.log_dir = log_dir
        self.running: dict[str, subprocess.Popen[bytes]] = {}

    def start(self, name: str, argv: list[str], env: dict[str, str] | None = None) -> int:
        """Start a process in its own session, output to <log_dir>/<name>.log."""
        with (self.log_dir / f"{name}.log").open("wb") as log:
            process = subprocess.Popen(
                argv,
                stdout=log,
                stderr=subprocess.STDOUT,
                env={**os.environ, **(env or {})},
                cwd=self.log_dir,  # no stray .env is read
                start_new_session=True,
            )
        self.running[name] = process
        return process.pid

    def check(self, name: str) -> None:
        """Raise, with the end of its log, if a process has died."""
        process = self.running[name]
        if process.poll() is not None:
            tail = (self.log_dir / f"{name}.log").read_text(errors="replace")[-3000:]
            raise RuntimeError(f"{name} exited with {process.returncode}:\n{tail}")

    def stop(self, name: str) -> None:
        """End one process (its whole session) by its pid; SIGKILL after 10 s."""
        process = self.running.pop(name, None)
        if process is None or process.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait(5)

    def stop_all(self) -> None:
        """End every process still running."""
        for name in reversed(list(self.running)):
            self.stop(name)


def free_port() -> int:
    """A TCP port nobody listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def peak_rss_mb(pid: int) -> float:
    """A live process's peak resident set (VmHWM), in MB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return 0.0


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of a process so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


async def wait_until(
    what: str, probe: Callable[[], Awaitable[bool]], timeout: float, alive: Callable[[], None]
) -> None:
    """Poll until probe() holds; fail after timeout or as soon as `alive` raises."""
    deadline = time.monotonic() + timeout
    while True:
        alive()
        with contextlib.suppress(httpx.HTTPError, OSError):
            if await probe():
                return
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what} not ready after {timeout:.0f}s")
        await asyncio.sleep(0.1)


# -- database --------------------------------------------------------------------------------------


async def reset_database(url: str) -> None:
    """Drop and recreate schema public, then migrate and load communes."""
    from sqlalchemy import text

    from storage.db import Database
    from tinbao.runtime import prepare_database

    db = Database(url)
    try:
        async with db.engine.begin() as connection:
            await connection.execute(text("DROP SCHEMA IF EXISTS public CASCADE"))
            await connection.execute(text("CREATE SCHEMA public"))
    finally:
        await db.dispose()
    await prepare_database(url)


async def load_subscribers(url: str, count: int) -> None:
    """Subscribers with real encrypted routes (Telegram users FIRST_USER...)."""
    from sqlalchemy import insert

    from bot.services.anonymity import Keyring, RoutePurpose
    from storage.db import Database
    from storage.models import Subscriber
    from storage.types import utcnow

    keyring = Keyring(SECRET)
    db = Database(url)
    now = utcnow()
    try:
        for start in range(0, count, 20_000):
            rows = []
            for user in range(FIRST_USER + start, FIRST_USER + min(count, start + 20_000)):
                commune, province = COMMUNES[user % len(COMMUNES)]
                rows.append(
                    {
                        "key": f"bench-{user}",
                        "channel": "telegram",
                        "route": keyring.encrypt_route(
                            "telegram", user, purpose=RoutePurpose.SUBSCRIBER
                        ),
                        "commune_code": commune,
                        "province_code": province,
                        "locale": "vi",
                        "active": True,
                        "created_at": now,
                    }
                )
            async with db.engine.begin() as connection:
                await connection.execute(insert(Subscriber), rows)
    finally:
        await db.dispose()


async def add_dummy_subscribers(url: str, total: int) -> None:
    """Top the subscribers up to `total` in SQL (routes are never decrypted: planning only)."""
    from sqlalchemy import text

    from storage.db import Database

    db = Database(url)
    try:
        async with db.engine.begin() as connection:
            have = int(
                (await connection.execute(text("SELECT max(id) FROM subscriber"))).scalar() or 0
            )
            await connection.execute(
                text(
                    "INSERT INTO subscriber (key, channel, route, commune_code, province_code, "
                    "locale, active, created_at) SELECT 'plan-' || g, 'telegram', "
                    "'\\x00'::bytea, 8635, 25, 'vi', true, now() "
                    "FROM generate_series(CAST(:first AS integer), CAST(:last AS integer)) AS g"
                ),
                {"first": have + 1, "last": total},
            )
            await connection.execute(text("ANALYZE"))
    finally:
        await db.dispose()


async def create_broadcast(url: str, text_html: str) -> int:
    """An urgent broadcast to everyone, due now (urgent: the bench may run at night)."""
    from bot.services.broadcasts import BroadcastSpec, create_broadcast
    from storage.db import Database
    from storage.types import utcnow

    db = Database(url)
    spec = BroadcastSpec(
        topic_id=None,
        text=text_html,
        photo=None,
        audience="all",
        audience_code=None,
        audience_topic=None,
        trigger="now",
        run_at=None,
        cron=None,
        urgent=True,
    )
    try:
        async with db.session() as session:
            broadcast = await create_broadcast(
                session, spec=spec, staff_id=None, now=utcnow(), tz="Asia/Ho_Chi_Minh"
            )
    finally:
        await db.dispose()
    assert broadcast.id is not None
    return broadcast.id


async def cancel_broadcast(url: str, broadcast_id: int) -> None:
    """Cancel what is left of an earlier phase's broadcast."""
    from bot.services.broadcasts import set_state
    from storage.db import Database
    from storage.types import utcnow

    db = Database(url)
    try:
        async with db.session() as session:
            await set_state(session, broadcast_id=broadcast_id, action="cancel", now=utcnow())
    finally:
        await db.dispose()


def plan_in_this_process(url: str, broadcast_id: int) -> None:
    """Subprocess entry: fire the broadcast (plan its run); print seconds and peak RSS."""
    from scheduler.broadcasts import fire_due
    from storage.db import Database
    from storage.types import utcnow

    async def plan() -> float:
        db = Database(url)
        try:
            started = time.perf_counter()
            runs = await fire_due(
                db, now=utcnow(), tz="Asia/Ho_Chi_Minh", broadcast_ids=[broadcast_id]
            )
            elapsed = time.perf_counter() - started
            assert runs, "nothing was due"
            return elapsed
        finally:
            await db.dispose()

    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    seconds = asyncio.run(plan())
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"seconds": seconds, "peak_rss_mb": peak, "rss_before_mb": before}))


async def planned_count(url: str, broadcast_id: int) -> int:
    """How many deliveries the broadcast's run has."""
    from bot.services.broadcasts import reach
    from storage.db import Database

    db = Database(url)
    try:
        async with db.session() as session:
            return (await reach(session, broadcast_id)).planned
    finally:
        await db.dispose()


# -- emulator and sender -------------------------------------------------------------------------


async def start_emulator(processes: Processes, name: str, limits: bool) -> str:
    """`tinbao emulator` in its own process; its URL once it answers."""
    port = free_port()
    argv = [TINBAO, "emulator", "--host", "127.0.0.1", "--port", str(port), "--token", TOKEN]
    processes.start(name, [*argv, "--limits" if limits else "--no-limits"])
    url = f"http://127.0.0.1:{port}"
    async with httpx.AsyncClient(timeout=2) as http:

        async def answers() -> bool:
            return (await http.get(url + "/")).status_code == 200

        await wait_until(name, answers, 30, lambda: processes.check(name))
    return url


async def open_chats(url: str, count: int) -> None:
    """Every subscriber says /start, so the emulator knows their chat."""
    async with EmulatorClient(url, timeout=120) as users:
        chunks = [
            [
                (User(u, f"U{u}"), "/start")
                for u in range(start, min(start + 1000, FIRST_USER + count))
            ]
            for start in range(FIRST_USER, FIRST_USER + count, 1000)
        ]
        for index in range(0, len(chunks), 4):
            await asyncio.gather(*(users.send_texts(c) for c in chunks[index : index + 4]))


def start_sender(
    processes: Processes,
    name: str,
    options: Options,
    emulator_url: str,
    broadcast_id: int,
    *,
    rate: float,
    slots: int,
    lanes: int,
) -> int:
    """`tinbao broadcast send ID --wait` in its own process."""
    env = {
        "TINBAO_DATABASE_URL": options.database_url,
        "TINBAO_SECRET_KEY": SECRET,
        "TINBAO_BOT_TOKEN": TOKEN,
        "TINBAO_TELEGRAM_API_URL": emulator_url,
        "TINBAO_DATA_DIR": str(processes.log_dir / "data"),
    }
    argv = [sys.executable, "-c", SEND, "send", str(broadcast_id), "--wait"]
    argv += ["--rate", str(rate), "--slots", str(slots), "--lanes", str(lanes)]
    return processes.start(name, argv, env)


async def measure_sending(
    processes: Processes, name: str, emulator_url: str, warmup: float, window: float
) -> dict[str, Any]:
    """Messages/s and 429s over `window` seconds after `warmup`; the sender's peak RSS and CPU."""
    pid = processes.running[name].pid
    emulator_pid = processes.running[name.replace("sender", "emulator")].pid
    async with EmulatorClient(emulator_url, timeout=30) as users:

        async def sending() -> bool:
            return int((await users.counters())["sent_total"]) > 0

        await wait_until(f"{name} first message", sending, 120, lambda: processes.check(name))
        await asyncio.sleep(warmup)
        processes.check(name)
        first = await users.counters()
        started = time.monotonic()
        cpu_start, emu_start = cpu_seconds(pid), cpu_seconds(emulator_pid)
        await asyncio.sleep(window)
        processes.check(name)
        last = await users.counters()
        elapsed = time.monotonic() - started
        cpu_end, emu_end = cpu_seconds(pid), cpu_seconds(emulator_pid)
    sent = int(last["sent_total"]) - int(first["sent_total"])
    refused = int(last["refused_429_total"]) - int(first["refused_429_total"])
    repeats = sum(1 for n in last["sent_by_chat"].values() if n > 1)
    return {
        "window_s": round(elapsed, 1),
        "sent_in_window": sent,
        "msg_per_s": round(sent / elapsed, 2),
        "refused_429_in_window": refused,
        "refused_429_total": int(last["refused_429_total"]),
        "refused_429_by_scope": last["refused_429_by_scope"],
        "chats_with_more_than_one_message": repeats,
        "sent_total": int(last["sent_total"]),
        "sender_peak_rss_mb": round(peak_rss_mb(pid), 1),
        "sender_cpu_percent": round(100 * (cpu_end - cpu_start) / elapsed, 1),
        "emulator_cpu_percent": round(100 * (emu_end - emu_start) / elapsed, 1),
    }


# -- phases ----------------------------------------------------------------------------------------


async def phase_paced(options: Options, processes: Processes) -> dict[str, Any]:
    """Limits on, the configured rate: achieved/configured, 429s, sender RSS."""
    url = await start_emulator(processes, "paced-emulator", limits=True)
    console.print(f"paced: opening {options.subscribers:,} chats in the emulator")
    await open_chats(url, options.subscribers)
    broadcast_id = await create_broadcast(options.database_url, "<b>Thông báo</b> (đo tốc độ)")
    started = time.perf_counter()
    from scheduler.broadcasts import fire_due
    from storage.db import Database
    from storage.types import utcnow

    db = Database(options.database_url)
    try:
        await fire_due(db, now=utcnow(), tz="Asia/Ho_Chi_Minh", broadcast_ids=[broadcast_id])
    finally:
        await db.dispose()
    plan_seconds = time.perf_counter() - started
    start_sender(
        processes, "paced-sender", options, url, broadcast_id, rate=options.rate, slots=16, lanes=4
    )
    console.print(f"paced: measuring {options.window:.0f}s at {options.rate:g} msg/s")
    figures = await measure_sending(processes, "paced-sender", url, options.warmup, options.window)
    processes.stop("paced-sender")
    processes.stop("paced-emulator")
    await cancel_broadcast(options.database_url, broadcast_id)
    figures.update(
        configured_rate=options.rate,
        achieved_ratio=round(figures["msg_per_s"] / options.rate, 4),
        subscribers=options.subscribers,
        plan_seconds=round(plan_seconds, 2),
    )
    return figures


async def phase_ceiling(options: Options, processes: Processes) -> dict[str, Any]:
    """Limits off, an unreachable rate: the pipeline's own messages/s."""
    url = await start_emulator(processes, "ceiling-emulator", limits=False)
    console.print(f"ceiling: opening {options.subscribers:,} chats in the emulator")
    await open_chats(url, options.subscribers)
    broadcast_id = await create_broadcast(options.database_url, "<b>Thông báo</b> (trần)")
    start_sender(
        processes,
        "ceiling-sender",
        options,
        url,
        broadcast_id,
        rate=1_000_000.0,
        slots=options.ceiling_slots,
        lanes=options.ceiling_lanes,
    )
    console.print(f"ceiling: measuring {options.ceiling_window:.0f}s")
    figures = await measure_sending(
        processes, "ceiling-sender", url, options.warmup, options.ceiling_window
    )
    processes.stop("ceiling-sender")
    processes.stop("ceiling-emulator")
    await cancel_broadcast(options.database_url, broadcast_id)
    figures.update(slots=options.ceiling_slots, lanes=options.ceiling_lanes)
    return figures


class _NoNetwork(BaseRequest):
    """A Bot API that answers every call at once, in process: the pipeline without HTTP."""

    _ME = json.dumps(
        {"ok": True, "result": {"id": 720001, "is_bot": True, "first_name": "b", "username": "b"}}
    ).encode()
    _SENT = json.dumps(
        {
            "ok": True,
            "result": {
                "message_id": 1,
                "date": 1_700_000_000,
                "chat": {"id": 1, "type": "private", "first_name": "U"},
                "text": "Thông báo (đường ống)",
            },
        }
    ).encode()

    @property
    def read_timeout(self) -> float | None:
        """No timeouts: nothing waits."""
        return None

    async def initialize(self) -> None:
        """Nothing to open."""

    async def shutdown(self) -> None:
        """Nothing to close."""

    async def do_request(
        self,
        url: str,
        method: str,
        request_data: RequestData | None = None,
        read_timeout: Any = None,
        write_timeout: Any = None,
        connect_timeout: Any = None,
        pool_timeout: Any = None,
    ) -> tuple[int, bytes]:
        """Encode the parameters as for the wire, then answer as Telegram would."""
        if request_data is not None:
            request_data.json_parameters  # noqa: B018 - the encoding work a real call does
        return 200, self._ME if url.endswith("/getMe") else self._SENT


async def phase_pipeline(options: Options) -> dict[str, Any]:
    """The sender against a Bot API with no network: database, pacing and PTB, no HTTP."""
    from telegram import Bot

    from bot.channels.telegram.broadcast import TelegramBroadcast
    from bot.services.anonymity import Keyring
    from scheduler.broadcasts import fire_due
    from scheduler.delivery import BroadcastSender
    from storage.db import Database
    from storage.types import utcnow

    broadcast_id = await create_broadcast(options.database_url, "<b>Thông báo</b> (đường ống)")
    db = Database(options.database_url)
    bot = Bot(TOKEN, request=_NoNetwork(), get_updates_request=_NoNetwork())
    sender = BroadcastSender(
        db=db,
        channels={"telegram": TelegramBroadcast(bot, 1_000_000.0)},
        keyring=Keyring(SECRET),
        rate=1_000_000.0,
        slots=options.ceiling_slots,
        lanes=options.ceiling_lanes,
        broadcast_ids=[broadcast_id],
    )
    try:
        await fire_due(db, now=utcnow(), tz="Asia/Ho_Chi_Minh", broadcast_ids=[broadcast_id])
        stop = asyncio.Event()
        task = asyncio.create_task(sender.run(stop))
        await asyncio.sleep(options.warmup)
        first, started, cpu = sender.stats.sent, time.monotonic(), time.process_time()
        await asyncio.sleep(options.ceiling_window)
        sent = sender.stats.sent - first
        elapsed, cpu = time.monotonic() - started, time.process_time() - cpu
        stop.set()
        await task
    finally:
        await db.dispose()
    await cancel_broadcast(options.database_url, broadcast_id)
    return {
        "msg_per_s": round(sent / elapsed, 1),
        "cpu_ms_per_message": round(1000 * cpu / max(sent, 1), 3),
        "window_s": round(elapsed, 1),
        "slots": options.ceiling_slots,
        "lanes": options.ceiling_lanes,
    }


async def phase_plan(options: Options, processes: Processes) -> dict[str, Any]:
    """Planning a broadcast to --plan-subscribers: seconds and the planning process's peak RSS."""
    console.print(f"plan: topping subscribers up to {options.plan_subscribers:,}")
    await add_dummy_subscribers(options.database_url, options.plan_subscribers)
    broadcast_id = await create_broadcast(options.database_url, "<b>Thông báo</b> (lập kế hoạch)")
    argv = [
        sys.executable,
        str(Path(__file__).resolve()),
        "_plan",
        options.database_url,
        str(broadcast_id),
    ]
    console.print("plan: planning in a fresh process")
    result = await asyncio.to_thread(
        subprocess.run, argv, capture_output=True, text=True, check=True, cwd=processes.log_dir
    )
    figures: dict[str, Any] = json.loads(result.stdout.strip().splitlines()[-1])
    figures["planned"] = await planned_count(options.database_url, broadcast_id)
    figures["seconds"] = round(figures["seconds"], 2)
    figures["peak_rss_mb"] = round(figures["peak_rss_mb"], 1)
    figures["rss_before_mb"] = round(figures["rss_before_mb"], 1)
    return figures


def machine() -> dict[str, Any]:
    """What the figures were measured on."""
    model = ""
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    postgres = subprocess.run(
        ["psql", "-h", "127.0.0.1", "-U", "postgres", "-Atc", "show server_version"],
        capture_output=True,
        text=True,
        check=False,
    ).stdout.strip()
    return {
        "cpu": model,
        "cores": os.cpu_count(),
        "python": platform.python_version(),
        "os": platform.platform(),
        "postgresql": postgres,
        "memory_gb": round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1),
    }


def report(figures: dict[str, Any]) -> None:
    """The figures as a table on stderr."""
    table = Table("phase", "figure", "value", title="tinbao broadcast benchmark")
    paced = figures.get("paced")
    if paced:
        table.add_row(
            "paced",
            "subscribers / planning",
            f"{paced['subscribers']:,} / {paced['plan_seconds']} s",
        )
        table.add_row(
            "paced",
            "achieved / configured",
            f"{paced['msg_per_s']} / {paced['configured_rate']:g} msg/s "
            f"= {paced['achieved_ratio']:.3f} over {paced['window_s']} s",
        )
        table.add_row(
            "paced",
            "429s (window / total)",
            f"{paced['refused_429_in_window']} / {paced['refused_429_total']}",
        )
        table.add_row("paced", "sender peak RSS", f"{paced['sender_peak_rss_mb']} MB")
        table.add_row(
            "paced",
            "sender / emulator CPU",
            f"{paced['sender_cpu_percent']}% / {paced['emulator_cpu_percent']}%",
        )
    ceiling = figures.get("ceiling")
    if ceiling:
        verdict = "PASS" if ceiling["msg_per_s"] >= GOAL_CEILING else "below goal"
        table.add_row(
            "ceiling",
            "msg/s (limits off)",
            f"{ceiling['msg_per_s']} ({ceiling['slots']} slots, {ceiling['lanes']} lanes; "
            f"goal >= {GOAL_CEILING:g}: {verdict})",
        )
        table.add_row(
            "ceiling",
            "sender / emulator CPU",
            f"{ceiling['sender_cpu_percent']}% / {ceiling['emulator_cpu_percent']}%",
        )
        table.add_row("ceiling", "sender peak RSS", f"{ceiling['sender_peak_rss_mb']} MB")
    pipeline = figures.get("pipeline")
    if pipeline:
        table.add_row(
            "pipeline",
            "msg/s without HTTP",
            f"{pipeline['msg_per_s']} ({pipeline['cpu_ms_per_message']} ms CPU per message)",
        )
    plan = figures.get("plan")
    if plan:
        verdict = "PASS" if plan["peak_rss_mb"] < GOAL_PLAN_RSS_MB else "FAIL"
        table.add_row("plan", "deliveries planned", f"{plan['planned']:,} in {plan['seconds']} s")
        table.add_row(
            "plan",
            "planning process peak RSS",
            f"{plan['peak_rss_mb']} MB (goal < {GOAL_PLAN_RSS_MB:g}: {verdict})",
        )
    console.print(table)


async def benchmark(options: Options, processes: Processes) -> dict[str, Any]:
    """The phases asked for, on a fresh database."""
    figures: dict[str, Any] = {
        "machine": machine(),
        "options": {
            "subscribers": options.subscribers,
            "plan_subscribers": options.plan_subscribers,
            "rate": options.rate,
            "window": options.window,
            "ceiling_window": options.ceiling_window,
            "ceiling_slots": options.ceiling_slots,
            "ceiling_lanes": options.ceiling_lanes,
        },
    }
    console.print("resetting the benchmark database")
    await reset_database(options.database_url)
    if options.only in (None, "paced", "ceiling", "pipeline"):
        console.print(f"loading {options.subscribers:,} subscribers")
        await load_subscribers(options.database_url, options.subscribers)
    if options.only in (None, "paced"):
        figures["paced"] = await phase_paced(options, processes)
    if options.only in (None, "ceiling"):
        figures["ceiling"] = await phase_ceiling(options, processes)
    if options.only in (None, "pipeline"):
        figures["pipeline"] = await phase_pipeline(options)
    if options.only in (None, "plan"):
        figures["plan"] = await phase_plan(options, processes)
    return figures


def parse(argv: list[str]) -> Options:
    """Read the command line."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--database-url", default=DEFAULT_URL)
    parser.add_argument("--subscribers", type=int, default=100_000)
    parser.add_argument("--plan-subscribers", type=int, default=1_000_000)
    parser.add_argument("--rate", type=float, default=25.0, help="configured msg/s (paced)")
    parser.add_argument("--window", type=float, default=90.0, help="paced window, seconds")
    parser.add_argument("--warmup", type=float, default=5.0)
    parser.add_argument("--ceiling-window", type=float, default=30.0)
    # Past a few dozen slots httpcore's pool bookkeeping (a scan of every connection for each
    # request) costs more than the concurrency brings against a local emulator.
    parser.add_argument("--ceiling-slots", type=int, default=32)
    parser.add_argument("--ceiling-lanes", type=int, default=4)
    parser.add_argument("--only", choices=("paced", "ceiling", "pipeline", "plan"))
    parser.add_argument("--logs", type=Path, help="keep process logs here")
    parser.add_argument("--json", dest="as_json", action="store_true", help="figures as JSON")
    args = parser.parse_args(argv)
    if not args.database_url.startswith("postgresql"):
        parser.error("--database-url must be PostgreSQL")
    return Options(**vars(args))


def main(argv: list[str]) -> None:
    """Run the benchmark (or, internally, the planning subprocess)."""
    if argv[:1] == ["_plan"]:
        plan_in_this_process(argv[1], int(argv[2]))
        return
    options = parse(argv)
    with tempfile.TemporaryDirectory(prefix="tinbao-bench-broadcast-") as tmp:
        log_dir = options.logs or Path(tmp)
        log_dir.mkdir(parents=True, exist_ok=True)
        processes = Processes(log_dir)
        try:
            figures = asyncio.run(benchmark(options, processes))
        finally:
            processes.stop_all()
    report(figures)
    if options.as_json:
        print(json.dumps(figures, indent=2, ensure_ascii=False))


if __name__ == "__main__":
    main(sys.argv[1:])
