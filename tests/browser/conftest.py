"""Browser fixtures: `tinbao demo` in a subprocess, headless Chromium, screenshots."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from tests.browser.support import DemoProcess

CHROMIUM = Path(os.environ.get("TINBAO_TEST_CHROMIUM", "/usr/bin/chromium"))
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "browser"
START_TIMEOUT = 90.0
STOP_TIMEOUT = 15.0
_PAGE_URL = re.compile(r"(http://\S+/web/)")


def _require_browser() -> None:
    """Skip with a clear reason when Playwright or Chromium is missing."""
    pytest.importorskip("playwright.sync_api", reason="Python package playwright not installed")
    if not CHROMIUM.exists():
        pytest.skip(
            f"{CHROMIUM} not found: install Debian's chromium (apt-get install -y chromium) "
            "or set TINBAO_TEST_CHROMIUM"
        )


@pytest.fixture(scope="session")
def artifacts() -> Path:
    """Where screenshots and the demo's log go (git-ignored)."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    return ARTIFACTS


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory, artifacts: Path) -> Iterator[DemoProcess]:
    """`tinbao demo` on a fresh data directory and a free port, as a user starts it."""
    _require_browser()
    data_dir = tmp_path_factory.mktemp("demo-data")
    command = [
        sys.executable,
        "-c",
        "from tinbao.cli import app; app()",
        "demo",
        "--port",
        "0",
        "--data-dir",
        str(data_dir),
    ]
    # Quiet hours an hour wide, three hours from now: the broadcast test may send "now" at
    # any time of day without an urgent flag (which the demo's outreach staff may not set).
    hour = (datetime.now(ZoneInfo("Asia/Ho_Chi_Minh")).hour + 3) % 24
    quiet = {"TINBAO_QUIET_START": str(hour), "TINBAO_QUIET_END": str((hour + 1) % 24)}
    env = {**os.environ, **quiet, "COLUMNS": "200", "PYTHONUNBUFFERED": "1"}
    started = time.monotonic()
    process = subprocess.Popen(
        command,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=env,
        cwd=data_dir,  # no .env file of the developer's leaks in
    )
    running = DemoProcess(process)
    ready = threading.Event()

    def drain() -> None:
        assert process.stdout is not None
        for line in process.stdout:
            running.output.append(line)
            match = _PAGE_URL.search(line)
            if match and not ready.is_set():
                running.url = match.group(1)
                running.ready_seconds = time.monotonic() - started
                ready.set()

    reader = threading.Thread(target=drain, daemon=True)
    reader.start()
    try:
        if not ready.wait(START_TIMEOUT):
            raise AssertionError("tinbao demo printed no URL:\n" + "".join(running.output))
        (artifacts / "startup.txt").write_text(
            f"tinbao demo ready (URL printed) {running.ready_seconds:.2f} s after the process "
            "started, on a fresh data directory\n",
            encoding="utf-8",
        )
        yield running
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        reader.join(5)
        (artifacts / "demo.log").write_text("".join(running.output), encoding="utf-8")


@pytest.fixture(scope="module")
def browser(demo: DemoProcess) -> Iterator[Any]:
    """Headless Debian Chromium driven by Playwright."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


@pytest.fixture
def page(browser: Any, demo: DemoProcess) -> Iterator[Any]:
    """The demo page, loaded and listening to live updates, three phones wide."""
    context = browser.new_context(viewport={"width": 1500, "height": 980}, locale="vi-VN")
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.goto(demo.url)
    page.wait_for_selector("body[data-ready='true'][data-live='true']")
    yield page
    context.close()
    assert not errors, f"JavaScript errors on the page: {errors}"
