"""Zalo Official Account on `tinbao serve`: `POST /zalo/oa/webhook`.

The signature `X-ZEvent-Signature: mac=sha256(app_id + body + timestamp + OA secret key)` is
checked in constant time before anything is stored: a missing or wrong one gets 403. The event
is then answered 200 at once (Zalo sends it again after 2 s, and disables a webhook that keeps
failing) and handled after, one citizen's events in order. A repeat of a `msg_id` is dropped;
the OA's own echo events are ignored. `follow` greets with the menu; `unfollow` ends the
person's outreach subscription. A citizen writing again releases replies held by the 7-day
window. Every few minutes the access token is refreshed if it is close to expiry.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Sequence

import httpx
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from bot.channels.conversation import CitizenConversation, Inbound
from bot.channels.webhooks import guarded_body, refuse
from bot.channels.zalo_oa import inbound
from bot.channels.zalo_oa.client import ZaloOaClient
from bot.channels.zalo_oa.outbound import CHANNEL, ZaloOaOutbound
from bot.channels.zalo_oa.tokens import TokenStore, TokenUnavailableError
from bot.context import Services
from bot.i18n import translator
from bot.services import outbox, repeats, subscriptions
from tinbao import metrics
from tinbao.serve.component import Health

log = logging.getLogger(__name__)

PATH = "/zalo/oa/webhook"
SIGNATURE_HEADER = "X-ZEvent-Signature"
TOKEN_CHECK_SECONDS = 300.0
DRAIN_SECONDS = 25.0


class ZaloOaChannel:
    """The Zalo OA channel as a `tinbao serve` component."""

    name = CHANNEL

    def __init__(self, services: Services, *, http: httpx.AsyncClient | None = None) -> None:
        settings = services.settings
        self.services = services
        self.app_id = settings.zalo_oa_app_id
        self._secret = settings.zalo_oa_secret_key.get_secret_value()
        self._http = http or httpx.AsyncClient(timeout=httpx.Timeout(15.0))
        self.client = ZaloOaClient(
            app_id=self.app_id,
            app_secret=settings.zalo_app_secret.get_secret_value(),
            api_url=settings.zalo_oa_api_url,
            oauth_url=settings.zalo_oauth_url,
            http=self._http,
        )
        self.tokens = TokenStore(
            db=services.db,
            keyring=services.keyring,
            client=self.client,
            clock=services.intake.clock,
        )
        t = translator(settings.default_locale, settings.timezone)
        self.outbound = ZaloOaOutbound(self.client, self.tokens, t)
        self.conversation = CitizenConversation(services, CHANNEL, self.outbound.send_replies)
        self._accepting = False
        self._stop = asyncio.Event()
        self._refresher: asyncio.Task[None] | None = None
        self.token_state = "unknown"

    @property
    def routes(self) -> Sequence[BaseRoute]:
        """The webhook route."""
        return [Route(PATH, self.receive, methods=["POST"])]

    async def start(self) -> None:
        """Take events, and keep the access token fresh in the background."""
        self._accepting = True
        self._refresher = asyncio.create_task(self._keep_token_fresh(), name="zalo-oa-token")

    async def drain(self) -> None:
        """Events are taken until the server stops listening."""

    async def stop(self) -> None:
        """Handle every event already taken, then release the HTTP client."""
        self._accepting = False
        self._stop.set()
        if self._refresher is not None:
            self._refresher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._refresher
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.conversation.runner.join(), DRAIN_SECONDS)
        await self._http.aclose()

    def health(self) -> Health:
        """Ready (other channels must not go down with it); the token's state is reported."""
        detail: dict[str, object] = {
            "token": self.token_state,
            "queued_events": self.conversation.runner.pending,
        }
        return Health(True, detail)

    def leaders(self) -> dict[str, bool]:
        """No duty of its own to elect (the token lease is taken per refresh)."""
        return {}

    async def receive(self, request: Request) -> Response:
        """Check the signature, take the event, answer at once."""
        body = await guarded_body(
            request,
            channel=CHANNEL,
            header=SIGNATURE_HEADER,
            secret=None,  # a signature over the body, checked below
            accepting=self._accepting,
        )
        if isinstance(body, Response):
            return body
        given = request.headers[SIGNATURE_HEADER]
        try:
            event = json.loads(body)
        except ValueError:
            event = None
        if not isinstance(event, dict):
            return refuse(CHANNEL, "signature", 403)  # nothing to verify a signature against
        timestamp = str(event.get("timestamp") or "")
        if not inbound.signature_ok(self.app_id, body, timestamp, self._secret, given):
            return refuse(CHANNEL, "signature", 403)
        if str(event.get("app_id") or "") != self.app_id:
            return refuse(CHANNEL, "app_id", 403)
        self.take(event)
        return Response(status_code=200)

    def take(self, event: dict[str, object]) -> None:
        """Queue an event behind its citizen's earlier ones."""
        parsed = inbound.parse(event)
        if parsed is not None:
            self.conversation.runner.submit(parsed.user_id, lambda: self._handle(parsed))

    async def _handle(self, parsed: inbound.ParsedEvent) -> None:
        """One event: drop a repeat; unfollow ends outreach; anything else is the citizen flow."""
        if not await self._admit(parsed):
            return
        if parsed.event_name == "unfollow":
            metrics.UPDATES.labels(channel=CHANNEL, kind="unfollow").inc()
            return
        services = self.services
        event = await inbound.to_inbound(parsed, self.client, services.settings.max_file_bytes)
        if parsed.event_name == "follow":
            event = Inbound(event.user_id, event.chat_id, event.event, "follow")
        await self.conversation.handle(event)

    async def _admit(self, parsed: inbound.ParsedEvent) -> bool:
        """In one transaction: drop a repeat, end outreach on unfollow, or release held replies.

        False for a repeat. When the citizen writes, the 7-day window is open again for what
        waited; a person who left the OA gets no more broadcasts (Zalo would refuse them).
        """
        services, keyring, user_id = self.services, self.services.keyring, parsed.user_id
        now = services.intake.clock()
        released = 0
        async with services.db.session() as session:
            key = keyring.inbound_key(CHANNEL, parsed.message_id)
            if parsed.message_id and not await repeats.record(session, key, now):
                await session.commit()
                metrics.WEBHOOK_REJECTED.labels(channel=CHANNEL, reason="repeat").inc()
                return False
            if parsed.event_name == "unfollow":
                await subscriptions.unsubscribe(
                    session,
                    subscriptions.subscriber_key(keyring, CHANNEL, user_id),
                    previous_keys=subscriptions.previous_subscriber_keys(keyring, CHANNEL, user_id),
                )
            else:
                released = await outbox.release_held(
                    session, keyring, channel=CHANNEL, chat_id=user_id, now=now
                )
            await session.commit()
        if released:
            services.wake_outbox()
        return True

    async def _keep_token_fresh(self) -> None:
        """Refresh before expiry even when nothing is sent (the refresh token lapses unused)."""
        while not self._stop.is_set():
            try:
                await self.tokens.refresh_if_due()
                self.token_state = "ok"
            except TokenUnavailableError as error:
                self.token_state = f"unavailable: {error}"[:200]
                log.warning("Zalo OA token unavailable: %s", error)
            except Exception:  # the database away: try again next time
                log.exception("checking the Zalo OA token failed")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stop.wait(), TOKEN_CHECK_SECONDS)
