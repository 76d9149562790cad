"""The console through the real `tinbao serve`: browsers (Chromium) and plain HTTP clients."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from tests.browser.conftest import ARTIFACTS, CHROMIUM, CHROMIUM_ARGS
from tests.faults.conftest import client, emulator_url, processes, tipline
from tests.faults.tipline import Processes
from tests.serve.conftest import (
    WEBHOOK_SECRET,
    pytest_configure,
    pytest_runtest_makereport,
    start_serve,
    tinbao_cli,
)
from tests.zalo.conftest import oa_citizen, oa_http, start_oa_serve, zalo_oa

__all__ = [
    "client",
    "emulator_url",
    "oa_citizen",
    "oa_http",
    "processes",
    "pytest_configure",
    "pytest_runtest_makereport",
    "start_oa_serve",
    "start_serve",
    "tipline",
    "zalo_oa",
]

_INVITE = re.compile(r"invite code: (\S+)")


def invite(processes: Processes, role: str, **scope: int) -> str:
    """An invite code made the operator's way (`tinbao invite`)."""
    argv = ["invite", "--role", role]
    for name, value in scope.items():
        argv += [f"--{name}", str(value)]
    done = tinbao_cli(processes, *argv)
    found = _INVITE.search(done.stdout)
    assert done.returncode == 0 and found, done.stdout + done.stderr
    return found.group(1)


def point_telegram_webhook(processes: Processes, url: str) -> None:
    """Register this instance's Telegram webhook (`tinbao webhook set`)."""
    done = tinbao_cli(
        processes, "webhook", "set", TINBAO_PUBLIC_URL=url, TINBAO_WEBHOOK_SECRET=WEBHOOK_SECRET
    )
    assert done.returncode == 0, done.stdout + done.stderr


@pytest.fixture
def artifacts() -> Path:
    """Where screenshots go (git-ignored)."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    return ARTIFACTS


@pytest.fixture
async def chromium() -> AsyncIterator[Any]:
    """Debian's Chromium, headless, driven by Playwright's async API (the tests are async)."""
    pytest.importorskip("playwright.async_api", reason="Python package playwright not installed")
    if not CHROMIUM.exists():
        pytest.skip(f"{CHROMIUM} not found: apt-get install -y chromium")
    from playwright.async_api import async_playwright

    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(
            executable_path=str(CHROMIUM), args=CHROMIUM_ARGS
        )
        yield browser
        await browser.close()
