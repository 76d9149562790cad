"""Real `tinbao run` and `tinbao sender` processes, driven through the emulator like people."""

from __future__ import annotations

import asyncio
import itertools
import os
import re
import signal
import sqlite3
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy.engine import make_url
from sqlmodel import col, select

from bot.services.enrollment import create_invite
from sandbox.client import EmulatorClient, User
from storage.db import Database, is_sqlite
from storage.models import OutboxMessage, Tip
from storage.types import utcnow

TOKEN = "123456:FAULT-TEST-TOKEN"
SECRET = "fault-tests-secret-key-0123456789-abcdefghijklmnopqrstuvwxyz"
TINBAO = str(Path(sys.executable).parent / "tinbao")
KHA_CUU = 8635
PHU_THO = 25
KHA_CUU_LABEL = "Xã Khả Cửu (Phú Thọ)"
SHORT_ID = re.compile(r"\bT-[0-9A-Z]{6}\b")
RECEIPT_CODE = re.compile(r"\b[0-9A-Z]{4}-[0-9A-Z]{4}-[0-9A-Z]{4}\b")
CARD_MARK = "Lĩnh vực"  # every tip card has this line; other inbox messages do not
# Generous: processes start, SQLite waits out locks; a healthy run takes a fraction of this.
TIMEOUT = 60.0
POLL = 0.05

_user_ids = itertools.count(6_000_001)
_group_ids = itertools.count(-1_000_000_101, -1)


async def eventually(
    what: str,
    check: Callable[[], Awaitable[bool]],
    *,
    timeout: float = TIMEOUT,
    alive: Callable[[], None] | None = None,
) -> None:
    """Poll `check` until it is true; `alive` raises as soon as a needed process died."""
    deadline = time.monotonic() + timeout
    while True:
        if alive is not None:
            alive()
        if await check():
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for: {what}")
        await asyncio.sleep(POLL)


class Processes:
    """Subprocesses of one test: output kept in files, every one killed at the end."""

    def __init__(self, log_dir: Path, env: dict[str, str]) -> None:
        self.log_dir = log_dir
        self.env = env
        self.running: dict[str, subprocess.Popen[bytes]] = {}
        self.logs: dict[str, Path] = {}
        self._serial = itertools.count(1)

    def start(self, role: str, *argv: str, **env: str) -> str:
        """Start `tinbao <argv>` with the test's environment; return its name (role-N)."""
        name = f"{role}-{next(self._serial)}"
        path = self.log_dir / f"{name}.log"
        with path.open("wb") as log:
            # The process writes to its own copy of the descriptor.
            self.running[name] = subprocess.Popen(
                [TINBAO, *argv],
                stdout=log,
                stderr=subprocess.STDOUT,
                env={**os.environ, **self.env, **env},
                # No .env of the developer's may leak in: Settings reads one from the cwd.
                cwd=self.log_dir,
            )
        self.logs[name] = path
        return name

    def alive(self, name: str) -> bool:
        """Tell whether a process still runs."""
        return self.running[name].poll() is None

    def require_alive(self, *names: str) -> Callable[[], None]:
        """A check that raises, with the log's tail, once one of these processes exited."""

        def check() -> None:
            for name in names:
                if not self.alive(name):
                    code = self.running[name].returncode
                    raise AssertionError(f"{name} exited ({code}):\n{self.tail(name)}")

        return check

    def kill(self, name: str) -> None:
        """SIGKILL one process by its pid and reap it."""
        process = self.running[name]
        if process.poll() is None:
            process.send_signal(signal.SIGKILL)
        process.wait(10)

    def pause(self, name: str) -> None:
        """Freeze a process (SIGSTOP): it keeps its connections but does nothing."""
        self.running[name].send_signal(signal.SIGSTOP)

    def resume(self, name: str) -> None:
        """Undo `pause` (SIGCONT)."""
        self.running[name].send_signal(signal.SIGCONT)

    def kill_all(self) -> None:
        """SIGKILL every process still running (teardown: a test must leave nothing behind)."""
        for name in self.running:
            self.kill(name)

    def log(self, name: str) -> str:
        """A process's whole output so far."""
        return self.logs[name].read_text(encoding="utf-8", errors="replace")

    def tail(self, name: str, lines: int = 60) -> str:
        """The end of a process's output."""
        return "\n".join(self.log(name).splitlines()[-lines:])

    def report(self) -> str:
        """Every process's output tail, for a failed test's report."""
        parts = []
        for name in self.logs:
            state = "running" if self.alive(name) else f"exit {self.running[name].returncode}"
            parts.append(f"===== {name} ({state}) =====\n{self.tail(name)}")
        return "\n".join(parts)


@dataclass
class Inboxes:
    """The inbox groups of the police in these tests."""

    officer: User
    supervisor: User
    commune_chat: int
    province_chat: int


class TipLine:
    """The tip line seen from outside: people acting through the emulator, rows in the DB."""

    def __init__(self, client: EmulatorClient, db: Database) -> None:
        self.client = client
        self.db = db

    # -- talking to the bot ---------------------------------------------------------------

    async def reply(self, chat_id: int, wanted: Callable[[dict[str, Any]], bool]) -> dict[str, Any]:
        """The next bot message (new or edited) of a chat that is what `wanted` looks for."""
        deadline = time.monotonic() + TIMEOUT
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise AssertionError(f"no expected reply in chat {chat_id}")
            # The client's cursor moves past what it returns, so nothing is seen twice.
            for message in await self.client.wait_bot_messages(chat_id, timeout=remaining):
                if wanted(message):
                    return message

    async def enroll(self, role: str, name: str, **scope: int) -> User:
        """Invite (as the operator's CLI does) and /join through the bot."""
        async with self.db.session() as session:
            invite = await create_invite(
                session,
                role=role,
                commune_code=scope.get("commune"),
                province_code=scope.get("province"),
                now=utcnow(),
            )
        user = User(next(_user_ids), name)
        await self.client.send_text(user, f"/join {invite.code}")
        await self.reply(user.id, lambda m: "đã được ghi danh" in _text(m))
        return user

    async def link_inbox(self, staff: User, title: str) -> int:
        """Add the bot to a new group and /link it as the staff member's inbox."""
        chat_id = next(_group_ids)
        await self.client.add_bot_to_group(staff, chat_id, title)
        await self.client.send_text(staff, "/link", chat_id=chat_id)
        await self.reply(chat_id, lambda m: "Từ nay nhóm này là hộp thư" in _text(m))
        return chat_id

    async def police(self) -> Inboxes:
        """An officer of Xã Khả Cửu and a supervisor of Phú Thọ, each with a linked inbox."""
        officer, supervisor = await asyncio.gather(
            self.enroll("officer", "Hoàng Minh Khôi", commune=KHA_CUU),
            self.enroll("supervisor", "Vũ Thanh Bình", province=PHU_THO),
        )
        commune, province = await asyncio.gather(
            self.link_inbox(officer, "Công an xã Khả Cửu"),
            self.link_inbox(supervisor, "Công an tỉnh Phú Thọ"),
        )
        return Inboxes(officer, supervisor, commune, province)

    async def send_tip(self, number: int, user: User | None = None) -> str:
        """A new citizen (or `user`) sends one whole tip with the buttons; returns its short id."""
        user = user or User(next(_user_ids), "Nguyễn Văn", username=f"citizen{number}")
        chat = user.id
        await self.client.send_text(user, "/start")
        for label in ("Gửi tin báo", "Ma túy", "Không"):
            await self._press(user, await self.reply(chat, _has_button(label)), label)
        await self.reply(chat, _any)
        await self.client.send_text(user, "kha cuu")
        menu = await self.reply(chat, _has_button(KHA_CUU_LABEL))
        await self._press(user, menu, KHA_CUU_LABEL)
        await self.reply(chat, _any)
        await self.client.send_text(user, f"Tin báo số {number}: có người bán ma túy ở ngõ 5.")
        await self._press(user, await self.reply(chat, _has_button("Xong")), "Xong")
        await self._press(user, await self.reply(chat, _has_button("📨")), "📨")
        # "Received" comes from the bot at once; the receipt code from the outbox sender
        # (which some tests start only later), in a message of its own.
        received = await self.reply(chat, lambda m: "tiếp nhận" in _text(m))
        short_id = SHORT_ID.search(_text(received))
        assert short_id, _text(received)
        return short_id.group(0)

    async def subscribe(self, user: User) -> None:
        """A citizen subscribes to Khả Cửu's outreach news, every topic."""
        chat = user.id
        await self.client.send_text(user, "/subscribe")
        await self.reply(chat, _any)
        await self.client.send_text(user, "kha cuu")
        menu = await self.reply(chat, _has_button(KHA_CUU_LABEL))
        await self._press(user, menu, KHA_CUU_LABEL)
        await self._press(user, await self.reply(chat, _has_button("Xong")), "Xong")
        await self.reply(chat, lambda m: "Xã Khả Cửu" in _text(m))

    async def send_tips(self, count: int) -> list[str]:
        """`count` citizens each send a tip, all at once; returns the short ids."""
        return list(await asyncio.gather(*(self.send_tip(n) for n in range(1, count + 1))))

    async def _press(self, user: User, message: dict[str, Any], label: str) -> None:
        await self.client.press(user, user.id, message["message_id"], _button(message, label))

    # -- what the inboxes show ------------------------------------------------------------

    async def cards(self, inboxes: Inboxes) -> Counter[str]:
        """How many tip cards each short id has across both inboxes."""
        found: Counter[str] = Counter()
        for chat_id in (inboxes.commune_chat, inboxes.province_chat):
            for message in await self.client.bot_messages(chat_id):
                text = _text(message)
                match = SHORT_ID.search(text)
                if match and CARD_MARK in text:
                    found[match.group(0)] += 1
        return found

    async def held_now(self) -> int:
        """How many Bot API calls an emulator hold keeps waiting right now."""
        return int((await self.client.counters())["faults"]["held_now"])

    # -- what the database holds ----------------------------------------------------------

    async def tip_ids(self) -> list[str]:
        """Short ids of every confirmed tip (a tip row exists only once confirmed)."""
        async with self.db.session() as session:
            return list((await session.exec(select(Tip.short_id))).all())

    async def card_rows(self) -> list[OutboxMessage]:
        """The outbox rows of tip cards, oldest first."""
        async with self.db.session() as session:
            statement = (
                select(OutboxMessage)
                .where(OutboxMessage.kind == "card")
                .order_by(col(OutboxMessage.id))
            )
            return list((await session.exec(statement)).all())

    async def card_states(self) -> dict[str, OutboxMessage]:
        """Each tip's newest card row, by the tip's short id."""
        async with self.db.session() as session:
            statement = (
                select(Tip.short_id, OutboxMessage)
                .join(OutboxMessage, col(OutboxMessage.tip_id) == col(Tip.id))
                .where(OutboxMessage.kind == "card")
                .order_by(col(OutboxMessage.id))
            )
            return {short_id: row for short_id, row in (await session.exec(statement)).all()}

    async def statuses(self) -> Counter[str]:
        """Card rows per status."""
        return Counter(row.status for row in await self.card_rows())


def _text(message: dict[str, Any]) -> str:
    return str(message.get("text") or message.get("caption") or "")


def _any(message: dict[str, Any]) -> bool:
    return True


def _button(message: dict[str, Any], label: str) -> str:
    for row in (message.get("reply_markup") or {}).get("inline_keyboard", []):
        for button in row:
            if label in button.get("text", ""):
                return str(button["callback_data"])
    raise LookupError(label)


def _has_button(label: str) -> Callable[[dict[str, Any]], bool]:
    def check(message: dict[str, Any]) -> bool:
        try:
            _button(message, label)
        except LookupError:
            return False
        return True

    return check


# -- senders ----------------------------------------------------------------------------------


async def start_sender(processes: Processes, client: EmulatorClient, **env: str) -> str:
    """Start `tinbao sender`; return once it has called the Bot API (getMe) and so is up."""
    before = (await client.counters())["calls_by_method"].get("getMe", 0)
    name = processes.start("sender", "sender", **env)

    async def called() -> bool:
        return bool((await client.counters())["calls_by_method"].get("getMe", 0) > before)

    await eventually(f"{name} starts", called, alive=processes.require_alive(name))
    return name


async def pause_outside_transactions(processes: Processes, name: str, database_url: str) -> None:
    """SIGSTOP a sender at a moment it holds no SQLite write lock (it would block the bot)."""
    while True:
        processes.pause(name)
        if not is_sqlite(database_url) or _writable(make_url(database_url).database or ""):
            return
        processes.resume(name)
        await asyncio.sleep(POLL)


def _writable(path: str) -> bool:
    connection = sqlite3.connect(path, timeout=0.2, isolation_level=None)
    try:
        connection.execute("BEGIN IMMEDIATE")
        connection.execute("ROLLBACK")
    except sqlite3.OperationalError:
        return False
    finally:
        connection.close()
    return True


async def all_delivered(
    tipline: TipLine, inboxes: Inboxes, processes: Processes, *senders: str
) -> Counter[str]:
    """Wait until every confirmed tip has a card and every card row is sent; the cards."""

    async def done() -> bool:
        tips = await tipline.tip_ids()
        cards = await tipline.cards(inboxes)
        statuses = await tipline.statuses()
        return all(cards[tip] for tip in tips) and set(statuses) == {"sent"}

    await eventually("every card delivered", done, alive=processes.require_alive(*senders))
    return await tipline.cards(inboxes)


async def settled(
    tipline: TipLine, inboxes: Inboxes, processes: Processes, *senders: str
) -> Counter[str]:
    """Wait until no card row is pending or sending (sent or given up); the cards."""

    async def done() -> bool:
        statuses = await tipline.statuses()
        return not statuses["pending"] and not statuses["sending"]

    await eventually("every card row settled", done, alive=processes.require_alive(*senders))
    return await tipline.cards(inboxes)


def assert_each_once(cards: Counter[str], tips: list[str]) -> None:
    """Every tip's card is there exactly once, and there is no card of anything else."""
    assert cards == Counter(dict.fromkeys(tips, 1)), cards
