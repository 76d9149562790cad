"""Telegram on `tinbao serve`: `POST /telegram/webhook` feeding the PTB Application.

Telegram retries an update that is not answered quickly, so the endpoint only checks the
secret, parses the update and puts it on the Application's queue; handlers run after the 200.
The secret is compared in constant time, before the body is read: a wrong or missing secret
gets 403 and nothing is parsed or processed.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Sequence
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route
from telegram import Bot, Update
from telegram.error import TelegramError

from bot.app import (
    ALLOWED_UPDATES,
    TinbaoApplication,
    build_application,
    start_application,
    stop_application,
)
from bot.channels.webhooks import guarded_body, refuse
from bot.context import Services
from tinbao.serve.component import Health

log = logging.getLogger(__name__)

SECRET_HEADER = "X-Telegram-Bot-Api-Secret-Token"
PATH = "/telegram/webhook"
CHANNEL = "telegram"
START_RETRY_SECONDS = 10.0


class TelegramWebhook:
    """The Telegram channel as a `tinbao serve` component."""

    name = CHANNEL

    def __init__(self, services: Services) -> None:
        settings = services.settings
        secret = settings.webhook_secret.get_secret_value()
        if not secret:
            raise ValueError(
                "TINBAO_WEBHOOK_SECRET must be set when Telegram runs under `tinbao serve`: "
                "it is how the webhook tells Telegram's requests from anyone else's"
            )
        self._secret = secret.encode()
        self.services = services
        self.application: TinbaoApplication = build_application(settings, services, webhook=True)
        self._accepting = False
        self._starting: asyncio.Task[None] | None = None
        self.start_error = ""

    @property
    def routes(self) -> Sequence[BaseRoute]:
        """The webhook route."""
        return [Route(PATH, self.receive, methods=["POST"])]

    async def start(self) -> None:
        """Start the Application in the background, retrying while Telegram is unreachable.

        Telegram being away (blocked networks, an outage) must not keep the other channels and
        the console from starting: until it is up, its webhook answers 503 and Telegram retries.
        """
        self._starting = asyncio.create_task(self._start_until_up(), name="telegram-start")

    async def _start_until_up(self) -> None:
        """Initialise (getMe, setMyCommands) and start; retry every START_RETRY_SECONDS."""
        while True:
            try:
                await start_application(self.application)
            except (TelegramError, OSError) as error:
                self.start_error = type(error).__name__
                log.warning("Telegram is not reachable (%s); retrying", self.start_error)
                with contextlib.suppress(Exception):
                    await self.application.shutdown()
                await asyncio.sleep(START_RETRY_SECONDS)
                continue
            self.start_error = ""
            self._accepting = True
            return

    async def drain(self) -> None:
        """Nothing to refuse yet: until the server closes its socket, updates are still taken.

        Refusing them now would make Telegram wait and retry; once uvicorn stops listening,
        the proxy's retry sends them to another instance instead.
        """

    async def stop(self) -> None:
        """Handle every queued update, then stop the Application and its senders."""
        # From here on an update put on the queue would land behind PTB's stop signal and never
        # be handled: answer 503 so Telegram sends it again (to whichever instance is up).
        self._accepting = False
        if self._starting is not None and not self._starting.done():
            self._starting.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._starting
        if self.application.running:
            await stop_application(self.application)

    def running_bot(self) -> Bot | None:
        """The Application's bot once it runs (the outbox sender waits until then)."""
        return self.application.bot if self.application.running else None

    def health(self) -> Health:
        """Ready while the Application runs (or while it keeps trying to start)."""
        detail: dict[str, object] = {
            "running": self.application.running,
            "queued_updates": self.application.update_queue.qsize(),
        }
        if not self.application.running:
            # Still starting (Telegram unreachable): the other channels are fine, so the
            # instance stays ready; the webhook answers 503 until then.
            detail["starting"] = self.start_error or True
        return Health(True, detail)

    def leaders(self) -> dict[str, bool]:
        """No duty of its own (the host elects outreach for every channel)."""
        return {}

    async def receive(self, request: Request) -> Response:
        """Check the secret, queue the update, answer at once."""
        body = await guarded_body(
            request,
            channel=CHANNEL,
            header=SECRET_HEADER,
            secret=self._secret,
            accepting=self._accepting,
        )
        if isinstance(body, Response):
            return body
        try:
            data = json.loads(body)
            update = Update.de_json(data, self.application.bot)
        except (ValueError, TypeError, KeyError, TelegramError):
            # Not an update Telegram would send: a 4xx tells Telegram not to retry it.
            return refuse(CHANNEL, "malformed", 400)
        await self.application.update_queue.put(update)
        return Response(status_code=200)


async def set_webhook(application: TinbaoApplication, url: str, secret: str) -> bool:
    """Register the webhook with Telegram (all update types, the secret in every request)."""
    async with application.bot:
        return await application.bot.set_webhook(
            url, secret_token=secret, allowed_updates=ALLOWED_UPDATES, max_connections=40
        )


async def delete_webhook(application: TinbaoApplication) -> bool:
    """Remove the webhook (long polling works again)."""
    async with application.bot:
        return await application.bot.delete_webhook()


async def webhook_info(application: TinbaoApplication) -> dict[str, Any]:
    """Telegram's view of the webhook: URL, pending updates, last error."""
    async with application.bot:
        info = await application.bot.get_webhook_info()
    return info.to_dict()
