"""Intake throughput and latency: tinbao against a bare PTB echo bot, both through the emulator.

    python bench/intake.py --citizens 200 --conversations-per-citizen 3
    python bench/intake.py --citizens 200 --think-ms 5000
    python bench/intake.py --database-url postgresql+asyncpg://postgres@127.0.0.1:5432/bench
    python bench/intake.py --channel zalo_oa --citizens 200 --conversations-per-citizen 3

Each run starts the Bot API emulator (`tinbao emulator --no-limits`) as a subprocess, then:

1. the echo bot (bench/echo_bot.py: PTB with tinbao's throughput settings, one sendMessage per
   update plus answerCallbackQuery per button press, i.e. the Bot API calls tinbao makes) and
   N simulated citizens each playing the 9-update tip sequence K times;
2. on a fresh emulator, `tinbao run` on a fresh database (a temporary SQLite file, or the
   PostgreSQL database of --database-url whose schema `public` is DROPPED and recreated), with
   flood limits raised out of the way and outgoing pacing off (TINBAO_BOT_MAX_RATE=0: the
   emulator enforces no limits, and the pacer would otherwise cap everything at 30 msg/s), and
   N citizens each sending K complete tips, every one checked to end with a receipt code.

Latency of an update: from the control-API call that injects it returning, to the bot's reply
reaching the driver (the emulator's server-sent-event stream by default; --wait poll uses one
long-polling /control/chats/{id}/wait request per update instead).

Two ways to run, each judging one goal:
- closed loop (default, --think-ms 0): every citizen sends as soon as it got its reply, so both
  bots run saturated and updates/s is their capacity: the tinbao/echo ratio is judged. Latency is
  then queueing, about citizens / throughput (Little's law), for any bot;
- human pace (--think-ms T): citizens pause T on average (jittered +-50%) between steps, so the
  p99 latency of 200 concurrent citizens is judged; updates/s is then the offered load.
Figures only: the exit code is 0 whether goals pass or not.

--channel zalo_oa measures the Zalo Official Account instead, on the same database logic: the
OA emulator (bench/zalo_oa_emulator.py) as a subprocess, `tinbao db upgrade`, the OA token
stored with `tinbao zalo oa token set`, then `tinbao serve` (no Telegram) with the emulator's
webhook pointed at it. Zalo has no buttons: a citizen types the number of the choice line that
carries each label, and every tip must end with a receipt code. Latency of an update: from the
/control/messages call returning to a /control/chats/{id}/wait long poll returning the OA's
first new message. There is no Zalo echo bot, so there is no baseline and no ratio: the
figures stand alone (the p99 goal is still checked at human pace).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import json
import math
import os
import platform
import random
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Generic, TypeVar

import httpx
from rich.console import Console
from rich.table import Table

from sandbox.client import EmulatorClient, EmulatorError, User

ROOT = Path(__file__).resolve().parent.parent
VENV_BIN = Path(sys.executable).parent
TINBAO = str(VENV_BIN / "tinbao")
ECHO_TOKEN = "700001:BENCH-ECHO"
TINBAO_TOKEN = "700002:BENCH-TINBAO"
RECEIPT_CODE = re.compile(r"\b[0-9A-Z]{4}-[0-9A-Z]{4}-[0-9A-Z]{4}\b")
FIRST_USER_ID = 10_000_000
WARMUP_USER_ID = 9_999_999
GOAL_RATIO = 0.6
GOAL_P99_MS = 100.0
CLK_TCK = os.sysconf("SC_CLK_TCK")

console = Console(stderr=True)
UserT = TypeVar("UserT")

# -- the conversations -----------------------------------------------------------------------
# A step is (kind, value, expected): kind "text" types value, kind "press" presses the button
# labelled value on the previous reply; the reply must carry a button labelled expected (None:
# the conversation's end, checked by its done function).
Step = tuple[str, str, str | None]

TINBAO_STEPS: list[Step] = [
    ("text", "/start", "Gửi tin báo"),
    ("press", "Gửi tin báo", "Ma túy"),
    ("press", "Ma túy", "Không"),
    ("press", "Không", "Chọn theo tỉnh"),
    ("text", "kha cuu", "Xã Khả Cửu (Phú Thọ)"),
    ("press", "Xã Khả Cửu (Phú Thọ)", "Xong"),
    ("text", "Có người bán ma túy ở đầu ngõ 5, tối nào cũng có.", "Xong"),
    ("press", "Xong", "📨 Gửi tin báo"),
    ("press", "📨 Gửi tin báo", None),
]
# Same shape for the echo bot: its every reply carries one button, "Tiếp".
ECHO_STEPS: list[Step] = [
    (kind, text if kind == "text" else "Tiếp", "Tiếp" if expected else None)
    for kind, text, expected in TINBAO_STEPS
]


# tinbao ends a tip with two messages: the answer (from the handler) and the receipt code (from
# the outbox), in either order; a conversation is over once both are in, or the next one's first
# step would take a late one for its own reply.
TINBAO_ENDING_MESSAGES = 2


def tinbao_done(reply: dict[str, Any]) -> str | None:
    """The receipt code of the last reply of a tip conversation."""
    match = RECEIPT_CODE.search(reply.get("text") or "")
    return match.group(0) if match else None


def echo_done(reply: dict[str, Any]) -> str | None:
    """The echo's last reply only has to be there."""
    return "ok" if (reply.get("text") or "").startswith("pressed") else None


# -- processes ---------------------------------------------------------------------------------


def free_port() -> int:
    """A TCP port nobody listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Processes:
    """Subprocesses this benchmark started; all of them are ended on exit, whatever happens."""

    def __init__(self, log_dir: Path, cwd: Path) -> None:
        self.log_dir = log_dir
        self.cwd = cwd
        self.running: dict[str, subprocess.Popen[bytes]] = {}

    def start(self, name: str, argv: list[str], env: dict[str, str] | None = None) -> int:
        """Start a process in its own session, output to <log_dir>/<name>.log; returns its pid."""
        log = open(self.log_dir / f"{name}.log", "wb")  # noqa: SIM115 - closed with the process
        process = subprocess.Popen(
            argv,
            stdout=log,
            stderr=subprocess.STDOUT,
            env={**os.environ, **(env or {})},
            cwd=self.cwd,
            start_new_session=True,
        )
        log.close()
        self.running[name] = process
        return process.pid

    def check(self, name: str) -> None:
        """Raise, with the end of its log, if a process has died."""
        process = self.running[name]
        if process.poll() is not None:
            raise RuntimeError(f"{name} exited with {process.returncode}:\n{self.tail(name)}")

    def tail(self, name: str, lines: int = 30) -> str:
        """The last lines of a process's log."""
        path = self.log_dir / f"{name}.log"
        if not path.exists():
            return ""
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])

    def log_lines(self, name: str, needle: str) -> list[str]:
        """The lines of a process's log that contain needle."""
        path = self.log_dir / f"{name}.log"
        return [line for line in path.read_text(errors="replace").splitlines() if needle in line]

    def stop(self, name: str, sig: int = signal.SIGTERM) -> None:
        """End one process (its whole session) by its pid; SIGKILL after 10 s."""
        process = self.running.pop(name, None)
        if process is None or process.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, sig)
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait(5)

    def stop_all(self) -> None:
        """End every process still running, newest first."""
        for name in reversed(list(self.running)):
            self.stop(name)


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far (Linux /proc)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (FileNotFoundError, ProcessLookupError):
        return 0.0
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def postgres_cpu_seconds() -> float:
    """CPU time of every PostgreSQL server process so far (they serve the bot under test)."""
    total = 0.0
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError, IndexError, ValueError):
            text = stat.read_text()
            if text.split("(", 1)[1].startswith("postgres"):
                fields = text.rsplit(")", 1)[1].split()
                total += (int(fields[11]) + int(fields[12])) / CLK_TCK
    return total


def machine_busy_seconds() -> float:
    """CPU seconds all cores spent busy so far (Linux /proc/stat; idle and iowait excluded)."""
    fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = fields[3] + fields[4]
    # user nice system idle iowait irq softirq (steal and guest left out: guest is in user)
    return (sum(fields[:7]) - idle) / CLK_TCK


async def wait_for_quiet(percent: float, limit: float = 1800.0) -> None:
    """Wait (up to limit seconds) until all cores together are busy below percent over 5 s."""
    cores = os.cpu_count() or 1
    started = time.monotonic()
    told = -60.0
    while True:
        before = machine_busy_seconds()
        await asyncio.sleep(5)
        busy = (machine_busy_seconds() - before) / 5 / cores * 100
        waited = time.monotonic() - started
        if busy < percent:
            if waited > 6:
                console.print(f"quiet after {waited:.0f} s")
            return
        if waited > limit:
            console.print(f"the machine is still {busy:.0f}% busy; measuring anyway")
            return
        if waited - told >= 60:
            told = waited
            console.print(f"the machine is {busy:.0f}% busy; waiting for it to calm down")


async def wait_until(
    what: str, probe: Callable[[], Awaitable[bool]], timeout: float, alive: Callable[[], None]
) -> None:
    """Poll probe() until it is true; alive() raises when a process died meanwhile."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        alive()
        with contextlib.suppress(httpx.HTTPError, EmulatorError):
            if await probe():
                return
        await asyncio.sleep(0.1)
    raise RuntimeError(f"{what} not ready after {timeout:.0f} s")


async def wait_for_http(name: str, url: str, processes: Processes, timeout: float) -> None:
    """Wait until GET url answers 200, while the process called name keeps running."""
    async with httpx.AsyncClient(timeout=2) as http:

        async def answers() -> bool:
            return (await http.get(url)).status_code == 200

        await wait_until(name, answers, timeout, lambda: processes.check(name))


# -- waiting for replies -----------------------------------------------------------------------


class SseReplies:
    """One /control/events stream, fanned out into a queue per chat of (arrival, bot message)."""

    def __init__(self, url: str, bot: str) -> None:
        self.url = url
        self.bot = bot
        self.queues: dict[int, asyncio.Queue[tuple[float, dict[str, Any]]]] = {}
        self._task: asyncio.Task[None] | None = None
        self._connected = asyncio.Event()
        # A dedicated client: this one connection stays open for the whole run.
        self._http = httpx.AsyncClient(timeout=httpx.Timeout(10, read=None))

    def queue(self, chat_id: int) -> asyncio.Queue[tuple[float, dict[str, Any]]]:
        """The queue of a chat's bot messages."""
        found = self.queues.get(chat_id)
        if found is None:
            found = self.queues[chat_id] = asyncio.Queue()
        return found

    async def start(self) -> None:
        """Open the stream and return once the emulator says it is connected."""
        self._task = asyncio.create_task(self._read())
        async with asyncio.timeout(10):
            await self._connected.wait()

    async def _read(self) -> None:
        params = {"bot": self.bot}
        async with self._http.stream("GET", f"{self.url}/control/events", params=params) as resp:
            resp.raise_for_status()
            async for line in resp.aiter_lines():
                if not line.startswith("data: "):
                    if line.startswith(": connected"):
                        self._connected.set()
                    continue
                now = time.perf_counter()
                event = json.loads(line[6:])
                if event.get("type") not in ("message", "edit"):
                    continue
                message = event["message"]
                if message.get("from_bot"):
                    self.queue(int(event["chat_id"])).put_nowait((now, message))

    async def next_reply(
        self, chat_id: int, after_seq: int, timeout: float
    ) -> tuple[float, dict[str, Any]]:
        """The first bot message of a chat newer than after_seq, and when it arrived."""
        queue = self.queue(chat_id)
        async with asyncio.timeout(timeout):
            while True:
                arrived, message = await queue.get()
                if int(message["seq"]) > after_seq:
                    return arrived, message

    async def aclose(self) -> None:
        """Close the stream."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, httpx.HTTPError):
                await self._task
        await self._http.aclose()


# -- the driver --------------------------------------------------------------------------------


@dataclass
class RunResult:
    """What one bot's run measured."""

    name: str
    citizens: int
    conversations_per_citizen: int
    updates: int = 0
    conversations: int = 0
    seconds: float = 0.0
    latencies: list[float] = field(default_factory=list)
    latencies_by_step: dict[int, list[float]] = field(default_factory=dict)
    errors: Counter[str] = field(default_factory=Counter)
    early_replies: int = 0
    receipts: set[str] = field(default_factory=set)
    cpu: dict[str, float] = field(default_factory=dict)
    bot_cpu_seconds: float = 0.0
    emulator_errors: dict[str, int] = field(default_factory=dict)
    bot_log_errors: list[str] = field(default_factory=list)

    def figures(self) -> dict[str, Any]:
        """The figures as plain data."""
        ordered = sorted(self.latencies)
        seconds = self.seconds or float("nan")
        return {
            "citizens": self.citizens,
            "conversations_per_citizen": self.conversations_per_citizen,
            "updates": self.updates,
            "conversations": self.conversations,
            "seconds": round(self.seconds, 3),
            "updates_per_s": round(self.updates / seconds, 1),
            "conversations_per_s": round(self.conversations / seconds, 2),
            "latency_ms": {
                "p50": percentile_ms(ordered, 0.50),
                "p90": percentile_ms(ordered, 0.90),
                "p99": percentile_ms(ordered, 0.99),
                "max": round(ordered[-1] * 1000, 1) if ordered else None,
                "mean": round(sum(ordered) / len(ordered) * 1000, 1) if ordered else None,
            },
            "latency_ms_by_step": {
                str(step + 1): {
                    "p50": percentile_ms(sorted(values), 0.50),
                    "p99": percentile_ms(sorted(values), 0.99),
                }
                for step, values in sorted(self.latencies_by_step.items())
            },
            "errors": sum(self.errors.values()),
            "errors_by_kind": dict(self.errors),
            "replies_before_injection_returned": self.early_replies,
            "unique_receipts": len(self.receipts),
            "cpu_percent_of_one_core": {k: round(v, 1) for k, v in self.cpu.items()},
            "bot_cpu_ms_per_update": (
                round(self.bot_cpu_seconds / self.updates * 1000, 2) if self.updates else None
            ),
            "emulator_errors_by_code": self.emulator_errors,
            "bot_log_error_lines": len(self.bot_log_errors),
        }


def percentile_ms(ordered: list[float], q: float) -> float | None:
    """Nearest-rank percentile of sorted seconds, in milliseconds."""
    if not ordered:
        return None
    rank = max(1, math.ceil(q * len(ordered)))
    return round(ordered[rank - 1] * 1000, 1)


class CitizenLoop(Generic[UserT]):
    """What every driver shares: pauses, recording a step and an ending, K conversations."""

    result: RunResult
    think: float

    async def conversation(self, user: UserT, record: bool) -> bool:
        """Play one conversation; True when it ended as it should."""
        raise NotImplementedError

    async def pause(self, index: int) -> None:
        """Think before every step but the first (jittered, so citizens do not move in lockstep)."""
        if self.think and index:
            await asyncio.sleep(self.think * random.uniform(0.5, 1.5))

    def record_step(self, index: int, injected: float, arrived: float) -> None:
        """One measured update: its latency, overall and by step."""
        if arrived < injected:
            self.result.early_replies += 1
        latency = max(0.0, arrived - injected)
        self.result.latencies.append(latency)
        self.result.latencies_by_step.setdefault(index, []).append(latency)
        self.result.updates += 1

    def record_end(self, outcome: str) -> None:
        """One measured conversation that ended as it should ("ok", or its receipt code)."""
        self.result.conversations += 1
        if outcome != "ok":
            self.result.receipts.add(outcome)

    async def citizen(self, user: UserT, conversations: int) -> None:
        """One citizen: K conversations in a row; stops at the first failure."""
        if self.think:
            await asyncio.sleep(random.uniform(0, self.think))  # arrivals spread out
        for _ in range(conversations):
            if not await self.conversation(user, record=True):
                return


class Driver(CitizenLoop[User]):
    """Plays citizens against one bot through the control API."""

    def __init__(
        self,
        client: BenchClient,
        replies: SseReplies | None,
        steps: list[Step],
        done: Callable[[dict[str, Any]], str | None],
        result: RunResult,
        *,
        step_timeout: float,
        think: float,
        ending_messages: int = 1,
    ) -> None:
        self.client = client
        self.replies = replies
        self.steps = steps
        self.done = done
        self.result = result
        self.step_timeout = step_timeout
        self.think = think
        self.ending_messages = ending_messages

    async def _reply(self, chat_id: int, after_seq: int) -> tuple[float, dict[str, Any]]:
        if self.replies is not None:
            return await self.replies.next_reply(chat_id, after_seq, self.step_timeout)
        messages = await self.client.wait_bot_messages(chat_id, timeout=self.step_timeout)
        return time.perf_counter(), messages[0]

    async def conversation(self, user: User, record: bool) -> bool:
        """Play one conversation; True when it ended as it should."""
        chat_id = user.id
        previous: dict[str, Any] | None = None
        for index, (kind, value, expected) in enumerate(self.steps):
            await self.pause(index)
            try:
                if kind == "text":
                    sent = await self.client.send_text(user, value)
                    after_seq = int(sent["seq"])
                else:
                    data = button_data(previous, value)
                    assert previous is not None
                    after_seq = await self.client.press_seq(
                        user, chat_id, int(previous["message_id"]), data
                    )
                injected = time.perf_counter()
                arrived, reply = await self._reply(chat_id, after_seq)
                if expected is not None:
                    button_data(reply, expected)  # the reply is the one this step should get
            except (TimeoutError, LookupError, EmulatorError, httpx.HTTPError) as error:
                count_step_error(self.result.errors, index, error, self.step_timeout)
                return False
            if record:
                self.record_step(index, injected, arrived)
            previous = reply
        assert previous is not None
        outcome = self.done(previous)
        # The receipt comes from the outbox in a message of its own, before or after the answer.
        seen = 1
        while outcome is None or seen < self.ending_messages:
            try:
                _arrived, later = await self._reply(chat_id, int(previous["seq"]))
            except (TimeoutError, LookupError, EmulatorError, httpx.HTTPError, KeyError):
                break
            previous, seen = later, seen + 1
            outcome = outcome or self.done(later)
        if outcome is None:
            text = (previous.get("text") or "").replace("\n", " ")[:60]
            self.result.errors[f"last reply is not the expected ending: {text!r}"] += 1
            return False
        if seen < self.ending_messages:
            self.result.errors["the ending came without the answer or without the receipt"] += 1
            return False
        if record:
            self.record_end(outcome)
        return True


def count_step_error(
    errors: Counter[str], index: int, error: BaseException, step_timeout: float
) -> None:
    """Count why a conversation stopped at a step (no reply, a wrong reply, an HTTP error)."""
    if isinstance(error, TimeoutError):
        reason = f"no reply in {step_timeout:.0f} s"
    elif isinstance(error, LookupError):
        reason = str(error)
    else:
        reason = type(error).__name__
    errors[f"step {index + 1}: {reason}"] += 1


def button_data(message: dict[str, Any] | None, label: str) -> str:
    """The callback data of the button whose text contains label."""
    markup = (message or {}).get("reply_markup") or {}
    for row in markup.get("inline_keyboard", []):
        for button in row:
            if label in button.get("text", ""):
                return str(button["callback_data"])
    text = ((message or {}).get("text") or "").replace("\n", " ")
    raise LookupError(f"reply without button {label!r}: {text[:60]!r}")


# -- one bot's run -----------------------------------------------------------------------------


@dataclass
class Options:
    """Command-line options."""

    citizens: int
    conversations: int
    database_url: str | None
    wait: str
    step_timeout: float
    think: float
    profile: Path | None
    logs: Path | None
    echo_pool_size: int
    only: str | None
    repeat: int
    quiet_below: float | None
    as_json: bool
    channel: str = "telegram"


async def start_emulator(processes: Processes, token: str) -> str:
    """Start `tinbao emulator` with limits off; return its URL once it answers."""
    port = free_port()
    processes.start(
        "emulator",
        [
            TINBAO,
            "emulator",
            "--no-limits",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--token",
            token,
        ],
    )
    url = f"http://127.0.0.1:{port}"
    await wait_for_http("emulator", url + "/", processes, 30)
    return url


class BenchClient(EmulatorClient):
    """The sandbox client, plus a press that tells the emulator's seq at the press."""

    async def press_seq(self, user: User, chat_id: int, message_id: int, data: str) -> int:
        """Press a button; return the seq after which the bot's answers come."""
        body = {"user": user.as_json(), "chat_id": chat_id, "message_id": message_id, "data": data}
        result = await self._call("POST", "/control/callbacks", body=body)
        seq = int(result["seq"])
        self._advance(chat_id, seq)  # keeps wait_bot_messages (--wait poll) in step
        return seq


def make_client(url: str, token: str, citizens: int) -> BenchClient:
    """One control-API client whose pool has a connection per citizen (plus spares)."""
    limits = httpx.Limits(max_connections=citizens * 2 + 16, max_keepalive_connections=citizens * 2)
    return BenchClient(
        url, bot=token, timeout=60, transport=httpx.AsyncHTTPTransport(limits=limits)
    )


async def reset_postgres(url: str) -> None:
    """Drop and recreate schema public of the benchmark database, so the run starts empty."""
    from sqlalchemy import text
    from sqlalchemy.engine import make_url
    from sqlalchemy.ext.asyncio import create_async_engine

    name = make_url(url).database
    if not name:
        raise SystemExit("--database-url names no database")
    engine = create_async_engine(url)
    try:
        async with engine.begin() as connection:
            await connection.execute(text("DROP SCHEMA IF EXISTS public CASCADE"))
            await connection.execute(text("CREATE SCHEMA public"))
    finally:
        await engine.dispose()


@dataclass
class CpuMeter:
    """CPU of the watched processes (one is "bot"), of PostgreSQL and of the whole machine."""

    pids: dict[str, int]
    before: dict[str, float] = field(default_factory=dict)
    postgres_before: float = 0.0
    machine_before: float = 0.0

    def start(self) -> None:
        """Take the counters at the start of the measured phase."""
        self.before = {who: cpu_seconds(pid) for who, pid in self.pids.items()}
        self.postgres_before = postgres_cpu_seconds()
        self.machine_before = machine_busy_seconds()

    def finish(self, result: RunResult) -> None:
        """Fill result.cpu (% of one core over result.seconds) and result.bot_cpu_seconds."""
        result.cpu = {
            who: (cpu_seconds(pid) - self.before[who]) / result.seconds * 100
            for who, pid in self.pids.items()
        }
        machine_cpu = (machine_busy_seconds() - self.machine_before) / result.seconds * 100
        postgres = postgres_cpu_seconds() - self.postgres_before
        result.cpu["postgres"] = max(0.0, postgres) / result.seconds * 100
        # Anything else running on the machine meanwhile (py-spy included): noise to report.
        # The bot's own CPU per update does not depend on it much: the robust figure.
        result.bot_cpu_seconds = result.cpu["bot"] / 100 * result.seconds
        result.cpu["other"] = max(0.0, machine_cpu - sum(result.cpu.values()))


async def run_bot(
    name: str,
    options: Options,
    processes: Processes,
    token: str,
    argv: Callable[[str], list[str]],
    env: dict[str, str],
    steps: list[Step],
    done: Callable[[dict[str, Any]], str | None],
    ready_timeout: float,
    ending_messages: int = 1,
) -> RunResult:
    """Emulator + bot, warm-up, then N citizens x K conversations; everything stopped after."""
    result = RunResult(name, options.citizens, options.conversations)
    url = await start_emulator(processes, token)
    client = make_client(url, token, options.citizens)
    replies = SseReplies(url, token) if options.wait == "sse" else None
    try:
        bot_pid = processes.start(name, argv(url), {"TINBAO_TELEGRAM_API_URL": url, **env})

        async def commands_set() -> bool:
            return bool(await client.commands())

        console.print(f"[bold]{name}[/bold]: waiting for the bot to start (pid {bot_pid})")
        await wait_until(name, commands_set, ready_timeout, lambda: processes.check(name))
        if replies is not None:
            await replies.start()
        driver = Driver(
            client,
            replies,
            steps,
            done,
            result,
            step_timeout=options.step_timeout,
            think=options.think,
            ending_messages=ending_messages,
        )
        if not await driver.conversation(User(WARMUP_USER_ID, "Warm"), record=False):
            raise RuntimeError(f"{name}: the warm-up conversation failed: {dict(result.errors)}")
        result.errors.clear()

        users = [
            User(FIRST_USER_ID + i, f"Citizen {i}", language_code="vi")
            for i in range(options.citizens)
        ]
        pids = {"driver": os.getpid(), "emulator": processes.running["emulator"].pid}
        await measured_phase(name, options, driver, users, {**pids, "bot": bot_pid}, len(steps))
        counters = await client.counters()
        result.emulator_errors = dict(counters.get("errors_by_code", {}))
        processes.check(name)
        result.bot_log_errors = processes.log_lines(name, " ERROR ")
    finally:
        if replies is not None:
            await replies.aclose()
        await client.aclose()
        processes.stop(name)
        processes.stop("emulator")
    return result


async def measured_phase(
    name: str,
    options: Options,
    driver: CitizenLoop[UserT],
    users: list[UserT],
    pids: dict[str, int],
    steps: int,
) -> None:
    """Every citizen at once, with the CPU of pids measured (and pids["bot"] sampled if asked)."""
    if options.quiet_below is not None:
        await wait_for_quiet(options.quiet_below)
    spy: subprocess.Popen[bytes] | None = None
    if options.profile is not None:
        options.profile.mkdir(parents=True, exist_ok=True)
        spy = start_py_spy(pids["bot"], options.profile / f"{name}.txt")
    try:
        meter = CpuMeter(pids)
        console.print(
            f"[bold]{name}[/bold]: {options.citizens} citizens x {options.conversations} "
            f"conversations x {steps} updates"
        )
        meter.start()
        started = time.perf_counter()
        await asyncio.gather(*(driver.citizen(user, options.conversations) for user in users))
        driver.result.seconds = time.perf_counter() - started
        meter.finish(driver.result)
    finally:
        if spy is not None:
            stop_py_spy(spy)


def start_py_spy(pid: int, path: Path) -> subprocess.Popen[bytes]:
    """Sample the bot with py-spy until stop_py_spy: raw collapsed stacks of the GIL holder."""
    py_spy = shutil.which("py-spy") or str(VENV_BIN / "py-spy")
    return subprocess.Popen(
        [
            py_spy,
            "record",
            "--pid",
            str(pid),
            "--format",
            "raw",
            "--rate",
            "200",
            "--nonblocking",
            "--output",
            str(path),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )


def stop_py_spy(spy: subprocess.Popen[bytes]) -> None:
    """Stop py-spy (SIGINT makes it write its output)."""
    with contextlib.suppress(ProcessLookupError):
        spy.send_signal(signal.SIGINT)
    try:
        spy.wait(30)
    except subprocess.TimeoutExpired:
        spy.kill()
        spy.wait()


def profile_summary(path: Path, top: int = 25) -> dict[str, list[tuple[str, float]]]:
    """Self and inclusive shares of the samples py-spy took, per frame, from raw output."""
    own: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    total = 0
    for line in path.read_text(errors="replace").splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        frames = stack.split(";")
        total += count
        own[frames[-1]] += count
        for frame in set(frames):
            inclusive[frame] += count
    if not total:
        return {"self": [], "inclusive": []}

    def share(counter: Counter[str]) -> list[tuple[str, float]]:
        return [(frame, round(n / total * 100, 1)) for frame, n in counter.most_common(top)]

    project = Counter(
        {
            frame: n
            for frame, n in inclusive.items()
            if any(part in frame for part in ("/bot/", "/storage/", "/tinbao/"))
        }
    )
    return {"self": share(own), "inclusive": share(inclusive), "project": share(project)}


# -- Zalo OA -----------------------------------------------------------------------------------

ZALO_OA_APP_ID = "4300000000000000001"
ZALO_OA_SECRET_KEY = "bench-oa-secret-key"
ZALO_APP_SECRET = "bench-app-secret"
ZALO_WARMUP_USER = "warm-up"
CHOICE_LINE = re.compile(r"^(\d+)\. (.+)$", re.MULTILINE)
# The same tip on Zalo, which has no buttons: a "press" types the number of the choice line
# that carries the label. The details are numbered per conversation ({n}).
ZALO_STEPS: list[Step] = [
    *TINBAO_STEPS[:6],
    ("text", "Tin báo số {n}: có người bán ma túy ở ngõ 5.", "Xong"),
    *TINBAO_STEPS[7:],
]


@dataclass
class ZaloRunResult(RunResult):
    """A run on the Zalo OA: also how many messages the OA sent and the emulator's counters."""

    oa_messages: int = 0
    oa_counters: dict[str, int] = field(default_factory=dict)

    def figures(self) -> dict[str, Any]:
        """The figures as plain data, the OA's own included."""
        return {
            **super().figures(),
            "oa_messages_per_update": (
                round(self.oa_messages / self.updates, 2) if self.updates else None
            ),
            "oa_counters": self.oa_counters,
        }


def choice_number(messages: list[dict[str, Any]], label: str) -> str:
    """The number of the choice whose label contains label, in the latest message offering it."""
    for message in reversed(messages):
        for number, choice in CHOICE_LINE.findall(message.get("text") or ""):
            if label.lower() in choice.lower():
                return str(number)
    text = (messages[-1].get("text") or "") if messages else ""
    raise LookupError(f"reply without choice {label!r}: {text.replace(chr(10), ' ')[:60]!r}")


def receipt_of(messages: list[dict[str, Any]]) -> str | None:
    """The receipt code in the latest of the messages that has one."""
    return next((code for m in reversed(messages) if (code := tinbao_done(m))), None)


def answers_step(messages: list[dict[str, Any]], expected: str | None) -> bool:
    """Whether the OA's new messages are the answer a step waits for (None: a receipt)."""
    if expected is None:
        return receipt_of(messages) is not None
    try:
        choice_number(messages, expected)
    except LookupError:
        return False
    return True


class ZaloDriver(CitizenLoop[str]):
    """Plays Zalo citizens against tinbao through the OA emulator's control API."""

    result: ZaloRunResult

    def __init__(
        self, http: httpx.AsyncClient, result: ZaloRunResult, *, step_timeout: float, think: float
    ) -> None:
        self.http = http
        self.result = result
        self.step_timeout = step_timeout
        self.think = think
        self.seen: dict[str, int] = {}  # OA messages already read, by chat
        self.tips = itertools.count(1)

    async def send(self, user: str, text: str) -> str:
        """The citizen types a text to the OA; returns the chat's id."""
        body = {"user": user, "display_name": user, "text": text}
        answer = await self.http.post("/control/messages", json=body)
        answer.raise_for_status()
        return str(answer.json()["chat_id"])

    async def wait(self, chat_id: str, count: int, deadline: float) -> list[dict[str, Any]]:
        """Every OA message of a chat once there are count; TimeoutError past deadline."""
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise TimeoutError
        path = f"/control/chats/{chat_id}/wait"
        answer = await self.http.get(path, params={"count": count, "timeout": remaining})
        answer.raise_for_status()
        found = answer.json()
        if not found["ok"]:
            raise TimeoutError
        return list(found["messages"])

    async def answer(
        self, chat_id: str, expected: str | None
    ) -> tuple[float, list[dict[str, Any]]]:
        """When the OA's first new message came, and its new messages up to the expected one."""
        deadline = time.monotonic() + self.step_timeout
        seen = self.seen.get(chat_id, 0)
        messages = await self.wait(chat_id, seen + 1, deadline)
        arrived = time.perf_counter()
        # An immediate answer may come first (the receipt after it): wait for the one expected.
        while not answers_step(messages[seen:], expected):
            try:
                messages = await self.wait(chat_id, len(messages) + 1, deadline)
            except TimeoutError:
                if expected is not None:
                    choice_number(messages[seen:], expected)  # raises, saying what came
                text = (messages[-1].get("text") or "").replace("\n", " ")
                raise LookupError(f"reply without a receipt code: {text[:60]!r}") from None
        self.seen[chat_id] = len(messages)
        return arrived, messages[seen:]

    async def conversation(self, user: str, record: bool) -> bool:
        """Play one tip; True when it ended with a receipt code."""
        number = next(self.tips)
        chat_id = ""
        previous: list[dict[str, Any]] = []
        for index, (kind, value, expected) in enumerate(ZALO_STEPS):
            await self.pause(index)
            try:
                text = choice_number(previous, value) if kind == "press" else value
                chat_id = await self.send(user, text.format(n=number))
                injected = time.perf_counter()
                arrived, previous = await self.answer(chat_id, expected)
            except (TimeoutError, LookupError, EmulatorError, httpx.HTTPError) as error:
                count_step_error(self.result.errors, index, error, self.step_timeout)
                return False
            if record:
                self.record_step(index, injected, arrived)
                self.result.oa_messages += len(previous)
        code = receipt_of(previous)
        if code is None:
            self.result.errors["last reply has no receipt code"] += 1
            return False
        if record:
            self.record_end(code)
        return True


def run_tinbao_command(argv: list[str], env: dict[str, str], cwd: Path) -> None:
    """Run `tinbao ARGV...` to its end; raise with its output if it fails."""
    done = subprocess.run(
        [TINBAO, *argv],
        env={**os.environ, **env},
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=300,
    )
    if done.returncode != 0:
        command = " ".join(argv[:4])  # not the refresh token
        raise RuntimeError(f"tinbao {command} exited with {done.returncode}:\n{done.stdout}")


async def start_zalo_oa_emulator(processes: Processes) -> str:
    """Start bench/zalo_oa_emulator.py (a process of its own); return its URL once it answers."""
    port = free_port()
    processes.start(
        "emulator",
        [
            sys.executable,
            str(ROOT / "bench" / "zalo_oa_emulator.py"),
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--app-id",
            ZALO_OA_APP_ID,
            "--oa-secret-key",
            ZALO_OA_SECRET_KEY,
            "--app-secret",
            ZALO_APP_SECRET,
            "--retry-delay",
            "2.0",
        ],
    )
    url = f"http://127.0.0.1:{port}"
    await wait_for_http("emulator", url + "/control/oa", processes, 30)
    return url


def zalo_oa_env(emulator_url: str, port: int) -> dict[str, str]:
    """The Zalo OA settings of `tinbao serve --port port`, and no Telegram."""
    return {
        "TINBAO_BOT_TOKEN": "",
        "TINBAO_ZALO_OA_APP_ID": ZALO_OA_APP_ID,
        "TINBAO_ZALO_OA_SECRET_KEY": ZALO_OA_SECRET_KEY,
        "TINBAO_ZALO_APP_SECRET": ZALO_APP_SECRET,
        "TINBAO_ZALO_OA_API_URL": emulator_url,
        "TINBAO_ZALO_OAUTH_URL": emulator_url,
        "TINBAO_PUBLIC_URL": f"http://127.0.0.1:{port}",
        "TINBAO_LOG_FORMAT": "text",
    }


async def run_zalo_oa(options: Options, processes: Processes, workdir: Path) -> ZaloRunResult:
    """The OA emulator + `tinbao serve` on a fresh database, warm-up, then N citizens x K tips."""
    result = ZaloRunResult("tinbao", options.citizens, options.conversations)
    database_url = await fresh_database(options, workdir)
    url = await start_zalo_oa_emulator(processes)
    port = free_port()
    env = {**tinbao_env(database_url, workdir), **zalo_oa_env(url, port)}
    limits = httpx.Limits(
        max_connections=options.citizens * 2 + 16, max_keepalive_connections=options.citizens * 2
    )
    http = httpx.AsyncClient(base_url=url, timeout=options.step_timeout + 10, limits=limits)
    try:
        run_tinbao_command(["db", "upgrade"], env, workdir)
        issued = await http.post("/control/tokens", json={})
        issued.raise_for_status()
        run_tinbao_command(
            ["zalo", "oa", "token", "set", issued.json()["refresh_token"]], env, workdir
        )
        serve = ["serve", "--host", "127.0.0.1", "--port", str(port)]
        bot_pid = processes.start("tinbao", [TINBAO, *serve], env)
        console.print(f"[bold]tinbao serve[/bold] (Zalo OA): waiting for /readyz (pid {bot_pid})")
        await wait_for_http("tinbao", f"http://127.0.0.1:{port}/readyz", processes, 180)
        webhook = f"http://127.0.0.1:{port}/zalo/oa/webhook"
        (await http.post("/control/webhook", json={"url": webhook})).raise_for_status()
        driver = ZaloDriver(http, result, step_timeout=options.step_timeout, think=options.think)
        if not await driver.conversation(ZALO_WARMUP_USER, record=False):
            raise RuntimeError(f"tinbao: the warm-up conversation failed: {dict(result.errors)}")
        result.errors.clear()

        users = [f"citizen-{i}" for i in range(options.citizens)]
        pids = {"driver": os.getpid(), "emulator": processes.running["emulator"].pid}
        await measured_phase(
            "tinbao", options, driver, users, {**pids, "bot": bot_pid}, len(ZALO_STEPS)
        )
        oa = (await http.get("/control/oa")).json()
        result.oa_counters = {**oa.get("counters", {}), "pending_events": oa.get("pending_events")}
        processes.check("tinbao")
        result.bot_log_errors = processes.log_lines("tinbao", " ERROR ")
    finally:
        await http.aclose()
        processes.stop("tinbao")
        processes.stop("emulator")
    return result


# -- report ------------------------------------------------------------------------------------


def machine() -> dict[str, Any]:
    """The machine the figures come from."""
    memory = ""
    with contextlib.suppress(OSError):
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                memory = f"{int(line.split()[1]) / 1024 / 1024:.1f} GiB"
    cpu = platform.processor()
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
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


def report(
    echo: RunResult | None, tinbao: RunResult | None, options: Options, database: str
) -> dict[str, Any]:
    """Print the table and the goal checks; return everything as plain data."""
    figures: dict[str, Any] = {
        "machine": machine(),
        "database": database,
        "wait": options.wait,
        "think_ms": options.think * 1000,
    }
    where = ""
    if options.channel != "telegram":
        figures["channel"] = options.channel
        where = " on Zalo OA"
    runs = [run for run in (echo, tinbao) if run is not None]
    for run in runs:
        figures[run.name] = run.figures()
    out = Console()
    table = Table(
        title=f"Intake{where}: {options.citizens} citizens x {options.conversations} "
        f"conversations x 9 updates ({database})"
    )
    table.add_column("")
    for run in runs:
        table.add_column(run.name, justify="right")

    def row(label: str, *path: str) -> None:
        cells = []
        for run in runs:
            value: Any = figures[run.name]
            for key in path:
                value = value[key]
            cells.append("-" if value is None else str(value))
        table.add_row(label, *cells)

    row("updates", "updates")
    row("conversations", "conversations")
    row("wall time, s", "seconds")
    row("updates/s", "updates_per_s")
    row("conversations/s", "conversations_per_s")
    for key in ("p50", "p90", "p99", "max"):
        row(f"{key} update latency, ms", "latency_ms", key)
    row("errors", "errors")
    for who in ("driver", "emulator", "bot", "postgres", "other"):
        row(f"CPU {who}, % of one core", "cpu_percent_of_one_core", who)
    row("bot CPU per update, ms", "bot_cpu_ms_per_update")
    out.print(table)
    for run in runs:
        if run.errors:
            out.print(f"{run.name} errors: {dict(run.errors)}")
        if run.emulator_errors:
            out.print(f"{run.name} Bot API errors: {run.emulator_errors}")
        if run.bot_log_errors:
            out.print(f"{run.name} log has {len(run.bot_log_errors)} ERROR lines, first ones:")
            for line in run.bot_log_errors[:5]:
                out.print(f"  {line}", markup=False, highlight=False)
    if tinbao is not None:
        steps = figures["tinbao"]["latency_ms_by_step"]
        out.print(
            "tinbao p50/p99 per step, ms: "
            + "  ".join(f"{n}:{v['p50']}/{v['p99']}" for n, v in steps.items())
        )
    if echo is not None and tinbao is not None:
        ratio = figures["tinbao"]["updates_per_s"] / figures["echo"]["updates_per_s"]
        p99 = figures["tinbao"]["latency_ms"]["p99"]
        goals = {
            "ratio": round(ratio, 2),
            "ratio_goal": GOAL_RATIO,
            "ratio_pass": ratio >= GOAL_RATIO,
            "p99_ms": p99,
            "p99_goal_ms": GOAL_P99_MS,
            "p99_pass": p99 is not None and p99 < GOAL_P99_MS,
        }
        echo_ms = figures["echo"]["bot_cpu_ms_per_update"]
        tinbao_ms = figures["tinbao"]["bot_cpu_ms_per_update"]
        if echo_ms and tinbao_ms:
            goals["cpu_ratio"] = round(echo_ms / tinbao_ms, 2)
        figures["goals"] = goals
        verdict = {True: "[green]PASS[/green]", False: "[red]FAIL[/red]"}
        # Each goal is judged where it means something. Throughput is a capacity: only a
        # closed loop (no think time) saturates the bots. Latency at "200 concurrent citizens"
        # is about people, who pause between steps: in a closed loop every citizen queues at
        # the bot, and the mean latency is citizens / throughput (Little's law) for any bot.
        goals["judged"] = ["p99"] if options.think else ["ratio"]
        if options.think:
            out.print(
                f"tinbao p99 update latency: {p99} ms at {options.citizens} citizens pausing "
                f"{options.think * 1000:.0f} ms on average (goal < {GOAL_P99_MS:.0f} ms) "
                f"{verdict[goals['p99_pass']]}"
            )
            out.print(
                f"tinbao/echo updates/s: {ratio:.2f} - not judged: with --think-ms the citizens "
                "set the pace, so this compares offered loads, not capacities"
            )
        else:
            out.print(
                f"tinbao/echo updates/s: {ratio:.2f} (goal >= {GOAL_RATIO}) "
                f"{verdict[goals['ratio_pass']]}"
            )
            queued = options.citizens / max(figures["tinbao"]["updates_per_s"], 1e-9)
            out.print(
                f"tinbao p99 update latency: {p99} ms - not judged in a closed loop: "
                f"{options.citizens} citizens with no pause queue at the bot (mean latency = "
                f"citizens / updates/s = {queued:.2f} s); judge it at human pace with --think-ms"
            )
        if "cpu_ratio" in goals:
            out.print(
                f"same ratio from the bots' CPU per update (robust to other load on the "
                f"machine): {goals['cpu_ratio']:.2f}"
            )
        note_other_load(out, runs)
    if isinstance(tinbao, ZaloRunResult):
        figures["goals"] = report_zalo_oa(out, tinbao, figures["tinbao"], options)
        note_other_load(out, runs)
    driver_cpu = [run.cpu.get("driver", 0) for run in runs]
    if driver_cpu and max(driver_cpu) > 80:
        out.print(
            "[yellow]note:[/yellow] the driver used over 80% of a core; on this machine it "
            "competes with the bot and the emulator, so the figures are a lower bound."
        )
    for run in runs:
        path = options.profile / f"{run.name}.txt" if options.profile else None
        if path is None or not path.exists():
            continue
        summary = profile_summary(path)
        figures[run.name]["profile"] = summary
        for kind in ("self", "project"):
            if summary.get(kind):
                out.print(f"[bold]py-spy {run.name}: top frames, {kind} share of samples[/bold]")
            for frame, share in summary.get(kind, [])[:20]:
                out.print(f"  {share:5.1f}%  {frame}")
    return figures


def note_other_load(out: Console, runs: list[RunResult]) -> None:
    """Warn when other processes on the machine took a fair share of CPU during the runs."""
    other = max(run.cpu.get("other", 0) for run in runs)
    if other > 20:
        out.print(
            f"[yellow]note:[/yellow] other processes used up to {other:.0f}% of a core "
            "during the runs: throughput and latency are disturbed; CPU per update less so."
        )


def report_zalo_oa(
    out: Console, run: ZaloRunResult, figures: dict[str, Any], options: Options
) -> dict[str, Any]:
    """The Zalo OA run's own lines (no echo baseline there); returns its goal check."""
    out.print(
        f"Zalo OA: {figures['oa_messages_per_update']} OA messages per update; "
        f"emulator counters: {run.oa_counters}"
    )
    out.print(
        "no baseline on Zalo OA: there is no Zalo echo bot, so no tinbao/echo ratio is "
        "measured or judged; the figures stand alone"
    )
    p99 = figures["latency_ms"]["p99"]
    goals: dict[str, Any] = {
        "p99_ms": p99,
        "p99_goal_ms": GOAL_P99_MS,
        "p99_pass": p99 is not None and p99 < GOAL_P99_MS,
        "judged": ["p99"] if options.think else [],
    }
    verdict = {True: "[green]PASS[/green]", False: "[red]FAIL[/red]"}
    if options.think:
        out.print(
            f"tinbao p99 update latency on Zalo OA: {p99} ms at {options.citizens} citizens "
            f"pausing {options.think * 1000:.0f} ms on average (goal < {GOAL_P99_MS:.0f} ms) "
            f"{verdict[goals['p99_pass']]}"
        )
    else:
        queued = options.citizens / max(figures["updates_per_s"], 1e-9)
        out.print(
            f"tinbao p99 update latency on Zalo OA: {p99} ms - not judged in a closed loop: "
            f"{options.citizens} citizens with no pause queue at the bot (mean latency = "
            f"citizens / updates/s = {queued:.2f} s); judge it at human pace with --think-ms"
        )
    return goals


# -- main --------------------------------------------------------------------------------------


async def run_echo(options: Options, processes: Processes) -> RunResult:
    """One run of the echo bot."""
    python = sys.executable
    return await run_bot(
        "echo",
        options,
        processes,
        ECHO_TOKEN,
        lambda url: [
            python,
            str(ROOT / "bench" / "echo_bot.py"),
            "--api-url",
            url,
            "--token",
            ECHO_TOKEN,
            "--connection-pool-size",
            str(options.echo_pool_size),
        ],
        {},
        ECHO_STEPS,
        echo_done,
        ready_timeout=60,
    )


async def fresh_database(options: Options, workdir: Path) -> str:
    """An empty database for one tinbao run: a new SQLite file, or --database-url reset."""
    if options.database_url and not options.database_url.startswith("sqlite"):
        console.print("resetting schema public of the benchmark database")
        await reset_postgres(options.database_url)
        return options.database_url
    return f"sqlite+aiosqlite:///{tempfile.mkdtemp(dir=workdir)}/bench.db"


def tinbao_env(database_url: str, workdir: Path) -> dict[str, str]:
    """What every tinbao run of the bench is given: dev mode, the database, flood limits off."""
    return {
        "TINBAO_DATABASE_URL": database_url,
        "TINBAO_SECRET_KEY": secrets.token_urlsafe(48),
        "TINBAO_MODE": "dev",
        "TINBAO_DATA_DIR": str(workdir / "data"),
        "TINBAO_MESSAGES_PER_MINUTE": "1000000",
        "TINBAO_TIPS_PER_HOUR": "1000000",
    }


async def run_tinbao(options: Options, processes: Processes, workdir: Path) -> RunResult:
    """One run of tinbao on a fresh database."""
    database_url = await fresh_database(options, workdir)
    env = {
        "TINBAO_BOT_TOKEN": TINBAO_TOKEN,
        **tinbao_env(database_url, workdir),
        "TINBAO_BOT_MAX_RATE": "0",
    }
    return await run_bot(
        "tinbao",
        options,
        processes,
        TINBAO_TOKEN,
        lambda url: [TINBAO, "run"],
        env,
        TINBAO_STEPS,
        tinbao_done,
        ready_timeout=180,
        ending_messages=TINBAO_ENDING_MESSAGES,
    )


def quietest_run(runs: list[RunResult]) -> RunResult | None:
    """The run that other processes on the machine disturbed least."""
    return min(runs, key=lambda run: run.cpu.get("other", 0.0), default=None)


async def benchmark(options: Options, processes: Processes, workdir: Path) -> dict[str, Any]:
    """Echo and tinbao runs, alternating when repeated (Zalo OA: tinbao only), then the report."""
    echoes: list[RunResult] = []
    tinbaos: list[RunResult] = []
    for repeat in range(options.repeat):
        if options.repeat > 1:
            console.print(f"[bold]round {repeat + 1} of {options.repeat}[/bold]")
        if options.channel == "zalo_oa":
            tinbaos.append(await run_zalo_oa(options, processes, workdir))
            continue
        if options.only in (None, "echo"):
            echoes.append(await run_echo(options, processes))
        if options.only in (None, "tinbao"):
            tinbaos.append(await run_tinbao(options, processes, workdir))
    if options.only == "echo":
        database = "-"
    elif options.database_url:
        database = options.database_url.split("://", 1)[0]
    else:
        database = "sqlite+aiosqlite (temporary file)"
    figures = report(quietest_run(echoes), quietest_run(tinbaos), options, database)
    if options.repeat > 1:
        figures["all_runs"] = {
            "echo": [run.figures() for run in echoes],
            "tinbao": [run.figures() for run in tinbaos],
        }
        out = Console()
        for name, runs in (("echo", echoes), ("tinbao", tinbaos)):
            if runs:
                rates = ", ".join(f"{run.updates / run.seconds:.1f}" for run in runs)
                others = ", ".join(f"{run.cpu.get('other', 0):.0f}%" for run in runs)
                out.print(f"{name} updates/s of each round: {rates} (other CPU: {others})")
        out.print("the table shows each bot's quietest round (least CPU used by others)")
    return figures


def parse_args(argv: list[str] | None = None) -> Options:
    """Read the command line."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--citizens", type=int, default=200, help="concurrent citizens (200)")
    parser.add_argument(
        "--conversations-per-citizen", type=int, default=3, help="tips each citizen sends (3)"
    )
    parser.add_argument(
        "--database-url",
        help="tinbao's database; PostgreSQL: schema public is dropped and recreated first "
        "(default: a temporary SQLite file)",
    )
    parser.add_argument(
        "--channel",
        choices=("telegram", "zalo_oa"),
        default="telegram",
        help="telegram (default: `tinbao run` against the echo bot) or zalo_oa (`tinbao serve` "
        "with the Zalo OA emulator, no baseline)",
    )
    parser.add_argument(
        "--wait",
        choices=("sse", "poll"),
        help="see replies on the emulator's event stream (default) or by long-polling "
        "/control/chats/{id}/wait once per update (zalo_oa: always poll)",
    )
    parser.add_argument("--step-timeout", type=float, default=60.0, help="seconds per reply (60)")
    parser.add_argument(
        "--think-ms",
        type=float,
        default=0.0,
        help="mean pause of each citizen between steps, jittered +-50%%, first step spread "
        "over one pause (0: a closed loop, each citizen sends as soon as it got its reply)",
    )
    parser.add_argument(
        "--profile",
        type=Path,
        metavar="DIR",
        help="sample each bot with py-spy during the measured phase; raw stacks go to "
        "DIR/echo.txt and DIR/tinbao.txt",
    )
    parser.add_argument(
        "--logs", type=Path, metavar="DIR", help="keep the emulator's and bots' logs in DIR"
    )
    parser.add_argument(
        "--echo-pool-size",
        type=int,
        default=128,
        help="the echo bot's HTTP connection pool (128, as tinbao; for experiments)",
    )
    parser.add_argument("--only", choices=("echo", "tinbao"), help="run one bot only")
    parser.add_argument(
        "--repeat",
        type=int,
        default=1,
        help="rounds of echo then tinbao; the table shows each bot's quietest round (1)",
    )
    parser.add_argument(
        "--quiet-below",
        type=float,
        metavar="PERCENT",
        help="on a shared machine: before each measured phase, wait (up to 30 min) until "
        "all cores together are busy less than PERCENT over 5 s",
    )
    parser.add_argument("--json", action="store_true", help="also print the figures as JSON")
    args = parser.parse_args(argv)
    if args.channel == "zalo_oa":
        if args.wait == "sse":
            parser.error("--channel zalo_oa: the OA emulator has no event stream (--wait poll)")
        if args.only == "echo":
            parser.error("--channel zalo_oa: there is no Zalo echo bot")
    return Options(
        citizens=args.citizens,
        conversations=args.conversations_per_citizen,
        database_url=args.database_url,
        wait=args.wait or ("poll" if args.channel == "zalo_oa" else "sse"),
        step_timeout=args.step_timeout,
        think=args.think_ms / 1000,
        profile=args.profile.resolve() if args.profile else None,
        logs=args.logs.resolve() if args.logs else None,
        echo_pool_size=args.echo_pool_size,
        only=args.only,
        repeat=max(1, args.repeat),
        quiet_below=args.quiet_below,
        as_json=args.json,
        channel=args.channel,
    )


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark; subprocesses are ended on any exit (errors and Ctrl+C included)."""
    options = parse_args(argv)

    def terminate(signum: int, _frame: object) -> None:
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGTERM, terminate)
    with tempfile.TemporaryDirectory(prefix="tinbao-bench-") as tmp:
        workdir = Path(tmp)
        if options.logs is not None:
            options.logs.mkdir(parents=True, exist_ok=True)
        processes = Processes(options.logs or workdir, workdir)
        try:
            figures = asyncio.run(benchmark(options, processes, workdir))
        except KeyboardInterrupt:
            console.print("interrupted")
            return 130
        finally:
            processes.stop_all()
    if options.as_json:
        print(json.dumps(figures, ensure_ascii=False, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
