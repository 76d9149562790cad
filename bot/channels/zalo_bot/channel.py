"""Zalo Bot Platform on `tinbao serve`: `POST /zalo/bot/webhook`, or getUpdates without one.

With `TINBAO_ZALO_BOT_WEBHOOK_SECRET` set the platform posts updates to the webhook, which
checks `X-Bot-Api-Secret-Token` in constant time (403 otherwise, nothing read), answers 200 at
once and handles the update after, in the citizen's order. Without it (an install with no public
URL) the channel long-polls getUpdates instead; run one instance then.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Sequence

import httpx
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from bot.channels.conversation import CitizenConversation
from bot.channels.webhooks import guarded_body, refuse
from bot.channels.zalo_bot import inbound
from bot.channels.zalo_bot.client import ZaloBotApiError, ZaloBotClient
from bot.channels.zalo_bot.outbound import CHANNEL, ZaloBotOutbound
from bot.context import Services
from bot.i18n import _, translator
from bot.services import repeats
from bot.services.steps import Reply
from tinbao import metrics
from tinbao.serve.component import Health

log = logging.getLogger(__name__)

PATH = "/zalo/bot/webhook"
SECRET_HEADER = "X-Bot-Api-Secret-Token"
POLL_TIMEOUT = 30
POLL_RETRY_SECONDS = 5.0
DRAIN_SECONDS = 25.0


class ZaloBotChannel:
    """The Zalo Bot channel as a `tinbao serve` component."""

    name = CHANNEL

    def __init__(self, services: Services, *, http: httpx.AsyncClient | None = None) -> None:
        settings = services.settings
        self.services = services
        self._secret = settings.zalo_bot_webhook_secret.get_secret_value().encode()
        self._http = http or httpx.AsyncClient(timeout=httpx.Timeout(15.0))
        self.client = ZaloBotClient(
            settings.zalo_bot_token.get_secret_value(),
            base_url=settings.zalo_bot_api_url,
            http=self._http,
        )
        t = translator(settings.default_locale, settings.timezone)
        self.outbound = ZaloBotOutbound(self.client, t)
        self.conversation = CitizenConversation(services, CHANNEL, self.outbound.send_replies)
        self._accepting = False
        self._stop = asyncio.Event()
        self._poller: asyncio.Task[None] | None = None
        self.poll_error = ""

    @property
    def webhook_mode(self) -> bool:
        """Updates come by webhook (a secret is set) rather than by getUpdates."""
        return bool(self._secret)

    @property
    def routes(self) -> Sequence[BaseRoute]:
        """The webhook route (only when a secret is set: an open endpoint would take forgeries)."""
        return [Route(PATH, self.receive, methods=["POST"])] if self.webhook_mode else []

    async def start(self) -> None:
        """Take updates: by webhook from now on, or by polling in the background."""
        self._accepting = True
        if not self.webhook_mode:
            self._poller = asyncio.create_task(self._poll(), name="zalo-bot-poll")

    async def drain(self) -> None:
        """Stop polling; the webhook keeps taking updates until the server stops listening."""
        self._stop.set()

    async def stop(self) -> None:
        """Handle every update already taken, then release the HTTP client."""
        self._accepting = False
        self._stop.set()
        if self._poller is not None:
            self._poller.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._poller
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.conversation.runner.join(), DRAIN_SECONDS)
        await self._http.aclose()

    def health(self) -> Health:
        """Ready unless the poller died."""
        detail: dict[str, object] = {
            "mode": "webhook" if self.webhook_mode else "polling",
            "queued_updates": self.conversation.runner.pending,
        }
        if self._poller is not None:
            if self._poller.done() and not self._stop.is_set():
                return Health(False, detail, "the getUpdates poller stopped")
            if self.poll_error:
                detail["poll_error"] = self.poll_error
        return Health(True, detail)

    def leaders(self) -> dict[str, bool]:
        """No duty of its own to elect."""
        return {}

    async def receive(self, request: Request) -> Response:
        """Check the secret, take the update, answer at once."""
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
            update = inbound.unwrap(json.loads(body))
        except ValueError:
            update = None
        if update is None:
            return refuse(CHANNEL, "malformed", 400)
        self.take(update)
        return JSONResponse({"ok": True})

    def take(self, update: dict[str, object]) -> None:
        """Queue an update behind its chat's earlier ones."""
        parsed = inbound.parse(update)
        if parsed is None:
            return
        self.conversation.runner.submit(parsed.chat_id, lambda: self._handle(parsed))

    async def _handle(self, parsed: inbound.ParsedUpdate) -> None:
        """One update: drop a repeat, refuse groups, else the citizen flow."""
        services = self.services
        key = services.keyring.inbound_key(CHANNEL, parsed.message_id)
        if parsed.message_id and not await repeats.first_delivery(
            services.db, key, services.intake.clock()
        ):
            metrics.WEBHOOK_REJECTED.labels(channel=CHANNEL, reason="repeat").inc()
            return
        if not parsed.private:
            await self._group_pointer(parsed.chat_id)
            return
        if parsed.event_name == inbound.IMAGE:
            # Downloading and re-encoding a photo takes a moment: show "typing…" meanwhile.
            with contextlib.suppress(ZaloBotApiError, httpx.HTTPError):
                await self.client.send_chat_action(parsed.chat_id, "typing")
        event = await inbound.to_inbound(parsed, self.client, self.services.settings.max_file_bytes)
        await self.conversation.handle(event)

    async def _group_pointer(self, chat_id: str) -> None:
        """A tip must never be written where others read it: point to the private chat."""
        t = translator(self.services.settings.default_locale)
        text = t.gettext(
            _("To send a tip safely, please write to me in a private chat, not in a group.")
        )
        with contextlib.suppress(ZaloBotApiError, httpx.HTTPError):
            await self.outbound.send_replies(chat_id, [Reply(text)])

    async def _poll(self) -> None:
        """getUpdates until stopped; platform or network trouble is waited out."""
        while not self._stop.is_set():
            try:
                updates = await self.client.get_updates(timeout=POLL_TIMEOUT)
            except asyncio.CancelledError:
                raise
            except (ZaloBotApiError, httpx.HTTPError, OSError) as error:
                if isinstance(error, ZaloBotApiError) and error.code == 408:
                    continue  # the long poll ended with nothing new
                self.poll_error = type(error).__name__
                log.warning("Zalo Bot getUpdates failed (%s); retrying", self.poll_error)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._stop.wait(), POLL_RETRY_SECONDS)
                continue
            self.poll_error = ""
            for update in updates:
                unwrapped = inbound.unwrap(update)
                if unwrapped is not None:
                    self.take(unwrapped)
