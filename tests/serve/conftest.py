"""`tinbao serve` as real processes, Telegram reaching it by webhook through the emulator."""

from __future__ import annotations

import socket
import subprocess
from collections.abc import Callable, Generator
from typing import Any

import httpx
import pytest

# The fault tests' processes, emulator and people: the same machinery, other processes.
from tests.faults.conftest import client, emulator_url, processes, tipline
from tests.faults.tipline import TINBAO, TOKEN, Processes, eventually

__all__ = ["client", "emulator_url", "processes", "tipline"]

WEBHOOK_SECRET = "serve-tests-webhook-secret_0123456789"
PROCESSES = pytest.StashKey[Processes]()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    """Attach the processes' output to the report of a failed test."""
    report = yield
    found = item.funcargs.get("processes") if hasattr(item, "funcargs") else None
    if report.failed and isinstance(found, Processes):
        report.sections.append(("tinbao processes", found.report()))
    return report


def pytest_configure(config: pytest.Config) -> None:
    """Register the marker these tests share with tests/faults (real processes, slower)."""
    config.addinivalue_line("markers", "faults: real tinbao processes (tests/faults, tests/serve)")


def free_port() -> int:
    """A port nobody listens on right now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class Instance:
    """One `tinbao serve` process and its address."""

    def __init__(self, processes: Processes, name: str, port: int) -> None:
        self.processes = processes
        self.name = name
        self.port = port
        self.url = f"http://127.0.0.1:{port}"

    async def get(self, path: str) -> httpx.Response:
        """GET a path of this instance."""
        async with httpx.AsyncClient(timeout=10) as http:
            return await http.get(self.url + path)

    async def post_update(self, update: dict[str, Any], secret: str | None) -> httpx.Response:
        """POST an update to the Telegram webhook as Telegram would (or a forger)."""
        headers = {} if secret is None else {"X-Telegram-Bot-Api-Secret-Token": secret}
        async with httpx.AsyncClient(timeout=10) as http:
            return await http.post(self.url + "/telegram/webhook", json=update, headers=headers)

    async def ready(self) -> bool:
        """Whether /readyz answers 200."""
        try:
            return (await self.get("/readyz")).status_code == 200
        except httpx.HTTPError:
            return False

    def alive(self) -> Callable[[], None]:
        """A check that raises once the process died."""
        return self.processes.require_alive(self.name)


@pytest.fixture
def start_serve(processes: Processes, emulator_url: str) -> Callable[..., Any]:
    """Start `tinbao serve` on a free port and wait until it is ready."""

    async def start(*args: str, wait_ready: bool = True, **env: str) -> Instance:
        port = free_port()
        settings = {
            "TINBAO_WEBHOOK_SECRET": WEBHOOK_SECRET,
            "TINBAO_PUBLIC_URL": f"http://127.0.0.1:{port}",
            "TINBAO_LOG_FORMAT": "json",
            **env,
        }
        name = processes.start("serve", "serve", "--port", str(port), *args, **settings)
        instance = Instance(processes, name, port)
        if wait_ready:
            await eventually("/readyz says ready", instance.ready, alive=instance.alive())
        return instance

    return start


def tinbao_cli(processes: Processes, *argv: str, **env: str) -> subprocess.CompletedProcess[str]:
    """Run a `tinbao` command with the test's environment and return its output."""
    import os

    return subprocess.run(
        [TINBAO, *argv],
        env={**os.environ, **processes.env, **env},
        cwd=processes.log_dir,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


async def set_webhook_raw(
    emulator_url: str, url: str, secret: str | None, *, drop_pending: bool = False
) -> None:
    """setWebhook straight on the Bot API (to register a wrong or missing secret)."""
    params: dict[str, Any] = {"url": url, "drop_pending_updates": drop_pending}
    if secret is not None:
        params["secret_token"] = secret
    async with httpx.AsyncClient(timeout=10) as http:
        answer = await http.post(f"{emulator_url}/bot{TOKEN}/setWebhook", json=params)
    assert answer.json()["ok"], answer.text
