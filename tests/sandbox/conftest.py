"""Fixtures: an emulator with one bot, reached in-process or over a real socket."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from sandbox.client import EmulatorClient, User
from sandbox.emulator import Emulator, EmulatorLimits

TOKEN = "123456:TEST"
ANN = User(1001, "Ann", "ann")
BEN = User(1002, "Ben", last_name="Tran")


class FakeClock:
    """A monotonic clock the tests move by hand, so limits never depend on wall time."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        """Move time forward."""
        self.now += seconds


class BotApiClient:
    """Calls Bot API methods the way a bot library does; returns the whole JSON answer."""

    def __init__(self, http: httpx.AsyncClient, token: str = TOKEN) -> None:
        self.http = http
        self.token = token

    async def call(self, method: str, **params: Any) -> dict[str, Any]:
        """POST a JSON-bodied call and return the decoded answer, errors included."""
        response = await self.http.post(f"/bot{self.token}/{method}", json=params)
        body: dict[str, Any] = response.json()
        if not body["ok"]:
            assert response.status_code == body["error_code"]
        return body

    async def ok(self, method: str, **params: Any) -> Any:
        """Call and insist on success; return the result."""
        body = await self.call(method, **params)
        assert body["ok"], body
        return body["result"]


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
