"""A sender killed mid-broadcast: after a restart everyone has the message, repeats <= slots."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from bot.services import broadcasts as svc
from bot.services.anonymity import Keyring
from sandbox.client import EmulatorClient
from sandbox.emulator import Emulator, EmulatorLimits
from storage.db import Database
from storage.types import utcnow
from tests.scheduler.conftest import (
    SECRET,
    TOKEN,
    TZ,
    NewSubscriber,
    add_subscribers,
    open_chats,
    spec,
)

SUBSCRIBERS = 2000
SLOTS = 8
KILL_AFTER = 600
# Telegram's per-chat limits stay on, so a chat sent to in a burst would be refused; the bot-wide
# limit is raised so the test takes seconds (30/s would take a minute).
LIMITS = EmulatorLimits(bot_per_second=5000.0, bot_burst=500)


@pytest.fixture(scope="module")
def limited_emulator() -> Iterator[str]:
    """An emulator with per-chat limits on, in a thread of the test process."""
    emulator = Emulator(limits=LIMITS)
    emulator.add_bot(token=TOKEN, username="tinbao_crash_bot", first_name="tinbao")
    running = emulator.start_in_thread(host="127.0.0.1", port=0)
    yield running.url
    running.stop()


def sender_process(
    database_url: str, emulator_url: str, broadcast_id: int, tmp_path: Path, name: str
) -> subprocess.Popen[bytes]:
    """`tinbao broadcast send ID --wait` in a process of its own."""
    env = {
        **os.environ,
        "TINBAO_DATABASE_URL": database_url,
        "TINBAO_SECRET_KEY": SECRET,
        "TINBAO_BOT_TOKEN": TOKEN,
        "TINBAO_TELEGRAM_API_URL": emulator_url,
        "TINBAO_DATA_DIR": str(tmp_path / "data"),
    }
    command = [
        sys.executable,
        "-c",
        "from tinbao.cli_broadcast import broadcast_app; broadcast_app(prog_name='broadcast')",
        "send",
        str(broadcast_id),
        "--wait",
        "--rate",
        "400",
        "--slots",
        str(SLOTS),
        "--lanes",
        "2",
    ]
    log = (tmp_path / f"{name}.log").open("wb")
    # cwd: no stray .env of the developer's is read.
    return subprocess.Popen(command, env=env, cwd=tmp_path, stdout=log, stderr=subprocess.STDOUT)


async def test_killed_sender_resumes_without_losses_and_few_repeats(
    db: Database, database_url: str, limited_emulator: str, tmp_path: Path
) -> None:
    keyring = Keyring(SECRET)
    made = await add_subscribers(db, keyring, [NewSubscriber()] * SUBSCRIBERS)
    async with EmulatorClient(limited_emulator) as users:
        await users.reset()
        await open_chats(users, [user for _, user in made])
        async with db.session() as session:
            # Urgent: the test runs on the real clock, which may be in quiet hours.
            broadcast = await svc.create_broadcast(
                session, spec=spec(urgent=True), staff_id=None, now=utcnow(), tz=TZ
            )
        assert broadcast.id is not None

        first = sender_process(database_url, limited_emulator, broadcast.id, tmp_path, "first")
        try:
            async with asyncio.timeout(120):
                while (await users.counters())["sent_total"] < KILL_AFTER:
                    assert first.poll() is None, (tmp_path / "first.log").read_text()
                    await asyncio.sleep(0.01)
        finally:
            first.send_signal(signal.SIGKILL)
            first.wait()
        at_kill = (await users.counters())["sent_total"]
        assert at_kill < SUBSCRIBERS, "the sender finished before it could be killed"

        second = sender_process(database_url, limited_emulator, broadcast.id, tmp_path, "second")
        try:
            returncode = await asyncio.to_thread(second.wait, 120)
        finally:
            if second.poll() is None:
                second.kill()
        assert returncode == 0, (tmp_path / "second.log").read_text()

        counters = await users.counters()
    per_chat = counters["sent_by_chat"]
    assert all(per_chat.get(str(user), 0) >= 1 for _, user in made)
    repeats = sum(count - 1 for count in per_chat.values() if count > 1)
    assert repeats <= SLOTS, (repeats, at_kill)
    assert counters["sent_total"] == SUBSCRIBERS + repeats
    assert counters["refused_429_total"] == 0
    async with db.session() as session:
        found = await svc.reach(session, broadcast.id)
    assert (found.planned, found.sent, found.pending, found.failed) == (
        SUBSCRIBERS,
        SUBSCRIBERS,
        0,
        0,
    )
