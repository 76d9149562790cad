"""Fuzz fixtures: the e2e emulator and bot, with flood limits high enough that every update of
a generated burst is answered, and no outgoing pace (the limits have their own tests)."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import SecretStr

from tests.e2e.conftest import bot, client, emulator_url, new_citizen  # noqa: F401 (fixtures)
from tests.e2e.harness import TOKEN
from tinbao.settings import Settings


@pytest.fixture
def settings(database_url: str, emulator_url: str, tmp_path: Path) -> Settings:  # noqa: F811
    """The e2e settings, flood limits out of the way."""
    return Settings(
        mode="dev",
        bot_token=SecretStr(TOKEN),
        database_url=database_url,
        telegram_api_url=emulator_url,
        secret_key=SecretStr("fuzz-secret-key-0123456789-abcdefghijklmnopqrstuvwxyz"),
        data_dir=tmp_path / "data",
        messages_per_minute=1_000_000,
        tips_per_hour=1_000_000,
        # The emulator enforces no flood limits here, and the bot's own 30 msg/s pace would
        # make the burst a test of that pace (which has its own tests), not of the handlers.
        bot_max_rate=0,
        _env_file=None,  # type: ignore[call-arg]
    )
