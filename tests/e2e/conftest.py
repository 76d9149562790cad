"""E2E fixtures: the emulator (one per session), the real bot (one per test), citizens."""

from __future__ import annotations

import itertools
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

import pytest
from pydantic import SecretStr

from sandbox.client import EmulatorClient, User
from sandbox.emulator import Emulator, EmulatorLimits
from tests.conftest import FakeClock
from tests.e2e.harness import TOKEN, BotUnderTest, Citizen
from tinbao.settings import Settings

_user_ids = itertools.count(5_000_001)


@pytest.fixture(scope="session")
def emulator_url() -> Iterator[str]:
    """The Bot API emulator, in its own thread, limits off (they have their own tests)."""
    emulator = Emulator(limits=EmulatorLimits.off())
    emulator.add_bot(token=TOKEN, username="tinbao_test_bot", first_name="tinbao")
    running = emulator.start_in_thread(host="127.0.0.1", port=0)
    yield running.url
    running.stop()


@pytest.fixture
async def client(emulator_url: str) -> AsyncIterator[EmulatorClient]:
    """A control-API client on a freshly reset emulator."""
    async with EmulatorClient(emulator_url) as emulator_client:
        await emulator_client.reset()
        yield emulator_client


@pytest.fixture
def settings(database_url: str, emulator_url: str, tmp_path: Path) -> Settings:
    """Settings of the bot under test."""
    return Settings(
        mode="dev",
        bot_token=SecretStr(TOKEN),
        database_url=database_url,
        telegram_api_url=emulator_url,
        secret_key=SecretStr("e2e-secret-key-0123456789-abcdefghijklmnopqrstuvwxyz"),
        data_dir=tmp_path / "data",
        _env_file=None,  # type: ignore[call-arg]
    )


@pytest.fixture
async def bot(
    settings: Settings, clock: FakeClock, client: EmulatorClient
) -> AsyncIterator[BotUnderTest]:
    """The real application, polling the emulator."""
    under_test = BotUnderTest(settings, clock)
    await under_test.start()
    yield under_test
    await under_test.stop()


@pytest.fixture
def new_citizen(client: EmulatorClient, bot: BotUnderTest) -> Callable[..., Citizen]:
    """Make citizens with distinct Telegram accounts (names and usernames the scan looks for)."""

    def make(first_name: str = "Nguyễn Văn", username: str | None = None) -> Citizen:
        user_id = next(_user_ids)
        user = User(id=user_id, first_name=first_name, username=username or f"citizen{user_id}")
        return Citizen(client, bot, user)

    return make


@pytest.fixture
def citizen(new_citizen: Callable[..., Citizen]) -> Citizen:
    """One citizen."""
    return new_citizen()
