"""Fault-test fixtures: an emulator, the bot and sender as real processes, police with inboxes."""

from __future__ import annotations

from collections.abc import AsyncIterator, Generator, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from sandbox.client import EmulatorClient
from sandbox.emulator import Emulator, EmulatorLimits
from storage.db import Database
from tests.faults.tipline import (
    SECRET,
    TOKEN,
    Inboxes,
    Processes,
    TipLine,
    eventually,
)

LEASE_SECONDS = "2"  # short, so a killed sender's rows come back within the test
PROCESSES = pytest.StashKey[Processes]()


def pytest_configure(config: pytest.Config) -> None:
    """Register the marker, so `-m "not faults"` can skip these slower tests when iterating."""
    config.addinivalue_line(
        "markers", "faults: real bot and sender processes under injected failures (tests/faults)"
    )


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    """Attach the processes' output to the report of a failed test."""
    report = yield
    processes = item.stash.get(PROCESSES, None)
    if report.failed and processes is not None:
        report.sections.append(("tinbao processes", processes.report()))
    return report


@pytest.fixture
def emulator_url() -> Iterator[str]:
    """A fresh emulator for one test, in a thread, flood limits off."""
    emulator = Emulator(limits=EmulatorLimits.off())
    emulator.add_bot(token=TOKEN, username="tinbao_fault_bot", first_name="tinbao")
    running = emulator.start_in_thread(host="127.0.0.1", port=0)
    yield running.url
    running.stop()


@pytest.fixture
def processes(
    request: pytest.FixtureRequest, tmp_path: Path, database_url: str, emulator_url: str
) -> Iterator[Processes]:
    """Where the test's processes run; all are SIGKILLed at teardown, whatever happened."""
    log_dir = tmp_path / "processes"
    log_dir.mkdir()
    env = {
        "TINBAO_MODE": "dev",
        "TINBAO_BOT_TOKEN": TOKEN,
        "TINBAO_DATABASE_URL": database_url,
        "TINBAO_TELEGRAM_API_URL": emulator_url,
        "TINBAO_SECRET_KEY": SECRET,
        "TINBAO_DATA_DIR": str(tmp_path / "data"),
        "TINBAO_OUTBOX_LEASE_SECONDS": LEASE_SECONDS,
    }
    found = Processes(log_dir, env)
    request.node.stash[PROCESSES] = found
    try:
        yield found
    finally:
        found.kill_all()


@pytest.fixture
async def client(emulator_url: str) -> AsyncIterator[EmulatorClient]:
    """The control-API client."""
    async with EmulatorClient(emulator_url) as emulator_client:
        yield emulator_client


@pytest.fixture
async def tipline(client: EmulatorClient, database_url: str) -> AsyncIterator[TipLine]:
    """People and database rows of the tip line."""
    db = Database(database_url)
    yield TipLine(client, db)
    await db.dispose()


@dataclass
class Running:
    """The bot process (updates in, tips and outbox rows committed; it sends no outbox row)."""

    bot: str
    inboxes: Inboxes


@pytest.fixture
async def running(processes: Processes, tipline: TipLine, client: EmulatorClient) -> Running:
    """`tinbao run` without its sender, polling the emulator, with police and their inboxes."""
    bot = processes.start("bot", "run", TINBAO_RUN_SENDER="false")

    async def polling() -> bool:
        counters = await client.counters()
        return bool(counters["calls_by_method"].get("getUpdates"))

    await eventually("the bot polls", polling, alive=processes.require_alive(bot))
    return Running(bot, await tipline.police())
