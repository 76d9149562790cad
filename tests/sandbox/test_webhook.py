"""Webhook mode: updates POSTed with the secret header, retries, and the 409 on getUpdates."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from sandbox.client import EmulatorClient
from sandbox.emulator import Emulator, EmulatorLimits, WebhookOptions, bind_socket
from tests.sandbox.support import ANN, BEN, TOKEN, BotApiClient


@dataclass
class Receiver:
    """A local webhook endpoint recording what it is sent; can fail on demand."""

    url: str = ""
    received: asyncio.Queue[tuple[dict[str, str], dict[str, Any]]] = field(
        default_factory=asyncio.Queue
    )
    failures_left: int = 0

    async def endpoint(self, request: Request) -> Response:
        """Record the update, or answer 500 while failures_left > 0."""
        if self.failures_left > 0:
            self.failures_left -= 1
            return Response("boom", status_code=500)
        await self.received.put((dict(request.headers), await request.json()))
        return Response("")

    async def next(self) -> tuple[dict[str, str], dict[str, Any]]:
        """Return the next delivered update (headers, body)."""
        return await asyncio.wait_for(self.received.get(), 5)


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    hook = Receiver()
    app = Starlette(routes=[Route("/hook", hook.endpoint, methods=["POST"])])
    sock = bind_socket("127.0.0.1", 0)
    server = uvicorn.Server(uvicorn.Config(app, log_config=None, log_level="warning"))
    task = asyncio.create_task(server.serve(sockets=[sock]))
    while not server.started:
        await asyncio.sleep(0.005)
    hook.url = f"http://127.0.0.1:{sock.getsockname()[1]}/hook"
    yield hook
    server.should_exit = True
    await task


@pytest.fixture
async def webhook_env() -> AsyncIterator[tuple[Emulator, BotApiClient, EmulatorClient]]:
    emu = Emulator(limits=EmulatorLimits.off(), webhook=WebhookOptions(retry_delay=0.01))
    emu.add_bot(TOKEN, username="tinbao_bot")
    async with (
        emu.serving() as url,
        httpx.AsyncClient(base_url=url) as http,
        EmulatorClient(url) as users,
    ):
        yield emu, BotApiClient(http), users


async def test_delivery_with_secret_header(
    webhook_env: tuple[Emulator, BotApiClient, EmulatorClient], receiver: Receiver
) -> None:
    _, api, users = webhook_env
    assert await api.ok("setWebhook", url=receiver.url, secret_token="s3cr3t-_")
    await users.send_text(ANN, "tip")
    headers, update = await receiver.next()
    assert headers["x-telegram-bot-api-secret-token"] == "s3cr3t-_"
    assert headers["content-type"] == "application/json"
    assert update["message"]["text"] == "tip"
    body = await api.call("getUpdates")
    assert body["error_code"] == 409
    assert body["description"] == (
        "Conflict: can't use getUpdates method while webhook is active; use deleteWebhook to "
        "delete the webhook first"
    )
    info = await api.ok("getWebhookInfo")
    assert info["url"] == receiver.url and info["pending_update_count"] == 0
    assert await api.ok("deleteWebhook")
    await users.send_text(ANN, "polled")
    assert [u["message"]["text"] for u in await api.ok("getUpdates")] == ["polled"]
    assert (await api.ok("getWebhookInfo"))["url"] == ""


async def test_no_secret_header_without_secret(
    webhook_env: tuple[Emulator, BotApiClient, EmulatorClient], receiver: Receiver
) -> None:
    _, api, users = webhook_env
    await api.ok("setWebhook", url=receiver.url)
    await users.send_text(ANN, "x")
    headers, _ = await receiver.next()
    assert "x-telegram-bot-api-secret-token" not in headers
    body = await api.call("setWebhook", url=receiver.url, secret_token="bad token!")
    assert body["description"] == "Bad Request: secret token contains unallowed characters"


async def test_failed_delivery_is_retried_and_reported(
    webhook_env: tuple[Emulator, BotApiClient, EmulatorClient], receiver: Receiver
) -> None:
    _, api, users = webhook_env
    receiver.failures_left = 2
    await api.ok("setWebhook", url=receiver.url)
    await users.send_text(ANN, "eventually")
    _, update = await receiver.next()
    assert update["message"]["text"] == "eventually"
    info = await api.ok("getWebhookInfo")
    expected = "Wrong response from the webhook: 500 Internal Server Error"
    assert info["last_error_message"] == expected


async def test_pending_updates_move_to_the_webhook_unless_dropped(
    webhook_env: tuple[Emulator, BotApiClient, EmulatorClient], receiver: Receiver
) -> None:
    _, api, users = webhook_env
    await users.send_text(ANN, "queued")
    await api.ok("setWebhook", url=receiver.url)
    _, update = await receiver.next()
    assert update["message"]["text"] == "queued"
    await api.ok("deleteWebhook")
    await users.send_text(ANN, "dropped")
    await api.ok("setWebhook", url=receiver.url, drop_pending_updates=True)
    await users.send_text(ANN, "kept")
    _, update = await receiver.next()
    assert update["message"]["text"] == "kept"


async def test_order_is_kept_per_chat(
    webhook_env: tuple[Emulator, BotApiClient, EmulatorClient], receiver: Receiver
) -> None:
    _, api, users = webhook_env
    await api.ok("setWebhook", url=receiver.url, max_connections=8)
    for index in range(20):
        await users.send_text(ANN if index % 2 else BEN, str(index))
    seen: dict[int, list[int]] = {ANN.id: [], BEN.id: []}
    for _ in range(20):
        _, update = await receiver.next()
        seen[update["message"]["chat"]["id"]].append(int(update["message"]["text"]))
    assert seen[ANN.id] == sorted(seen[ANN.id]) and len(seen[ANN.id]) == 10
    assert seen[BEN.id] == sorted(seen[BEN.id]) and len(seen[BEN.id]) == 10
