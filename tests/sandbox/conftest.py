"""Fixtures: an emulator with one bot, reached in-process or over a real socket."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest

from sandbox.client import EmulatorClient
from sandbox.emulator import Emulator, EmulatorLimits
from tests.sandbox.support import TOKEN, BotApiClient, FakeClock


@pytest.fixture
def clock() -> FakeClock:
    """A hand-driven monotonic clock."""
    return FakeClock()


@pytest.fixture
def emulator(clock: FakeClock) -> Emulator:
    """An emulator with limits off and one bot."""
    emu = Emulator(limits=EmulatorLimits.off(), clock=clock)
    emu.add_bot(token=TOKEN, username="tinbao_bot", first_name="tinbao")
    return emu


@pytest.fixture
async def http(emulator: Emulator) -> AsyncIterator[httpx.AsyncClient]:
    """An HTTP client wired straight to the ASGI app (no socket)."""
    transport = httpx.ASGITransport(app=emulator.app)
    async with httpx.AsyncClient(transport=transport, base_url="http://emulator") as client:
        yield client


@pytest.fixture
def api(http: httpx.AsyncClient) -> BotApiClient:
    """The Bot API, as the bot sees it."""
    return BotApiClient(http)


@pytest.fixture
async def users(emulator: Emulator) -> AsyncIterator[EmulatorClient]:
    """The control API client, in-process."""
    transport = httpx.ASGITransport(app=emulator.app)
    async with EmulatorClient("http://emulator", transport=transport) as client:
        yield client
