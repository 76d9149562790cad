"""Zalo through the real `tinbao serve`: the Zalo emulators in threads, serve as a process."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import httpx
import pytest

from sandbox.zalo_bot import ZaloBotEmulator
from sandbox.zalo_client import ZaloCitizen
from sandbox.zalo_oa import ZaloOaEmulator
from tests.faults.conftest import client, emulator_url, processes, tipline
from tests.faults.tipline import Processes, eventually
from tests.serve.conftest import (
    WEBHOOK_SECRET,
    Instance,
    free_port,
    pytest_configure,
    pytest_runtest_makereport,
    tinbao_cli,
)

# The serving tests' fixtures and hooks (processes' output on failure, the "faults" marker).
__all__ = [
    "client",
    "emulator_url",
    "processes",
    "pytest_configure",
    "pytest_runtest_makereport",
    "tipline",
]

ZALO_BOT_TOKEN = "2468013579:zalo-bot-test-token"
ZALO_BOT_SECRET = "zalo-bot-webhook-secret-0123456789"


@pytest.fixture
def zalo_bot() -> Iterator[ZaloBotEmulator]:
    """A Zalo Bot Platform emulator with one bot; webhook retries after 0.5 s."""
    emulator = ZaloBotEmulator(retry_delay=0.5)
    emulator.add_bot(ZALO_BOT_TOKEN)
    running = emulator.start_in_thread()
    yield emulator
    running.stop()


@pytest.fixture
async def zalo_http(zalo_bot: ZaloBotEmulator) -> AsyncIterator[httpx.AsyncClient]:
    """An HTTP client on the Zalo Bot emulator (Bot API and control API)."""
    async with httpx.AsyncClient(base_url=zalo_bot.url, timeout=30) as http:
        yield http


@pytest.fixture
def zalo_citizen(zalo_http: httpx.AsyncClient) -> Callable[..., ZaloCitizen]:
    """Make a Zalo citizen by name."""

    def make(user: str, display_name: str = "") -> ZaloCitizen:
        return ZaloCitizen(zalo_http, user, display_name)

    return make


@pytest.fixture
def start_zalo_serve(processes: Processes, zalo_bot: ZaloBotEmulator) -> Callable[..., Any]:
    """Start `tinbao serve` with the Zalo bot (and Telegram only if asked); wait until ready."""

    async def start(*, telegram: bool = False, webhook: bool = True, **env: str) -> Instance:
        port = free_port()
        settings = {
            "TINBAO_PUBLIC_URL": f"http://127.0.0.1:{port}",
            "TINBAO_LOG_FORMAT": "json",
            "TINBAO_ZALO_BOT_TOKEN": ZALO_BOT_TOKEN,
            "TINBAO_ZALO_BOT_API_URL": zalo_bot.url,
            "TINBAO_ZALO_BOT_WEBHOOK_SECRET": ZALO_BOT_SECRET if webhook else "",
            **({"TINBAO_WEBHOOK_SECRET": WEBHOOK_SECRET} if telegram else {"TINBAO_BOT_TOKEN": ""}),
            **env,
        }
        name = processes.start("serve", "serve", "--port", str(port), **settings)
        instance = Instance(processes, name, port)
        await eventually("/readyz says ready", instance.ready, alive=instance.alive())
        if webhook:
            done = tinbao_cli(processes, "zalo", "bot", "webhook", "set", **settings)
            assert done.returncode == 0, done.stdout + done.stderr
        if telegram:
            done = tinbao_cli(processes, "webhook", "set", **settings)
            assert done.returncode == 0, done.stdout + done.stderr
        return instance

    return start


ZALO_OA_APP_ID = "1234567890123456789"
ZALO_OA_SECRET_KEY = "oa-secret-key-for-webhooks"
ZALO_APP_SECRET = "app-secret-for-token-refresh"


@pytest.fixture
def zalo_oa() -> Iterator[ZaloOaEmulator]:
    """A Zalo OA emulator; webhook retries after 0.5 s."""
    emulator = ZaloOaEmulator(
        app_id=ZALO_OA_APP_ID,
        oa_secret_key=ZALO_OA_SECRET_KEY,
        app_secret=ZALO_APP_SECRET,
        retry_delay=0.5,
    )
    running = emulator.start_in_thread()
    yield emulator
    running.stop()


@pytest.fixture
async def oa_http(zalo_oa: ZaloOaEmulator) -> AsyncIterator[httpx.AsyncClient]:
    """An HTTP client on the OA emulator."""
    async with httpx.AsyncClient(base_url=zalo_oa.url, timeout=30) as http:
        yield http


@pytest.fixture
def oa_citizen(oa_http: httpx.AsyncClient) -> Callable[..., ZaloCitizen]:
    """Make an OA citizen by name."""

    def make(user: str, display_name: str = "") -> ZaloCitizen:
        return ZaloCitizen(oa_http, user, display_name)

    return make


def oa_settings(zalo_oa: ZaloOaEmulator) -> dict[str, str]:
    """The environment of an instance with the OA configured."""
    return {
        "TINBAO_ZALO_OA_APP_ID": ZALO_OA_APP_ID,
        "TINBAO_ZALO_OA_SECRET_KEY": ZALO_OA_SECRET_KEY,
        "TINBAO_ZALO_APP_SECRET": ZALO_APP_SECRET,
        "TINBAO_ZALO_OA_API_URL": zalo_oa.url,
        "TINBAO_ZALO_OAUTH_URL": zalo_oa.url,
    }


@pytest.fixture
def start_oa_serve(
    processes: Processes, zalo_oa: ZaloOaEmulator, oa_http: httpx.AsyncClient
) -> Callable[..., Any]:
    """Start `tinbao serve` with the OA (Telegram only if asked), token set, webhook pointed."""

    async def start(
        *, telegram: bool = False, set_token: bool = True, point_webhook: bool = True, **env: str
    ) -> Instance:
        port = free_port()
        settings = {
            "TINBAO_PUBLIC_URL": f"http://127.0.0.1:{port}",
            "TINBAO_LOG_FORMAT": "json",
            **oa_settings(zalo_oa),
            **({"TINBAO_WEBHOOK_SECRET": WEBHOOK_SECRET} if telegram else {"TINBAO_BOT_TOKEN": ""}),
            **env,
        }
        if set_token:
            issued = (await oa_http.post("/control/tokens", json={})).json()["refresh_token"]
            done = tinbao_cli(processes, "zalo", "oa", "token", "set", issued, **settings)
            assert done.returncode == 0, done.stdout + done.stderr
        name = processes.start("serve", "serve", "--port", str(port), **settings)
        instance = Instance(processes, name, port)
        await eventually("/readyz says ready", instance.ready, alive=instance.alive())
        if point_webhook:
            url = instance.url + "/zalo/oa/webhook"
            assert (await oa_http.post("/control/webhook", json={"url": url})).json()["ok"]
        if telegram:
            done = tinbao_cli(processes, "webhook", "set", **settings)
            assert done.returncode == 0, done.stdout + done.stderr
        return instance

    return start
