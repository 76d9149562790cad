"""Zalo OA's sending side: consultation messages (`/v3.0/oa/message/cs`), plain text.

A consultation text message takes no buttons (only the paid transaction and promotion
templates do), so choices are numbered lines here too. An access token Zalo refuses is
refreshed once and the message sent again; -230 means the citizen has been silent for over 7
days: the row waits for them to write again instead of being retried.
"""

from __future__ import annotations

import asyncio
from collections import defaultdict
from collections.abc import Mapping
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import httpx

from bot.channels import outbound as out
from bot.channels.markup import to_plain
from bot.channels.plain import PlainTextOutbound
from bot.channels.zalo_oa import client as api
from bot.channels.zalo_oa.client import ZaloOaApiError, ZaloOaClient
from bot.channels.zalo_oa.tokens import TokenStore, TokenUnavailableError
from bot.i18n import Translator

CHANNEL = "zalo_oa"
VIETNAM = ZoneInfo("Asia/Ho_Chi_Minh")
MORNING_HOUR = 6  # broadcasts are refused from 22:00 to 06:00
HEADER_LIMIT = 100
QUOTA_WAIT_SECONDS = 3600.0  # a spent quota is checked again after an hour
RATE_WAIT_SECONDS = 5.0
TOKEN_WAIT_SECONDS = 60.0


def classify(error: Exception) -> out.SendOutcome | None:
    """What an OA API error means for the message that caused it."""
    if isinstance(error, ZaloOaApiError):
        if error.code == api.WINDOW_CLOSED:
            return out.WindowClosed(str(error))
        if error.code == api.NIGHT:
            return out.RetryAfter(seconds_until_morning(), "no broadcasts at night")
        if error.code in api.QUOTA:
            return out.Quota(QUOTA_WAIT_SECONDS, str(error))
        if error.code in (429, -429):
            return out.RetryAfter(RATE_WAIT_SECONDS, "429 rate limited")
        if error.code in api.NOT_FOLLOWER:
            return out.Unreachable(str(error))
        if error.code in api.TOKEN_INVALID:
            return out.Transient(str(error))
        if error.code <= -500 or error.code == -1:
            return out.Transient(str(error))
        return out.Broken(str(error))
    if isinstance(error, TokenUnavailableError):
        # No token until an operator acts (or the refresh endpoint answers again): wait, and
        # do not use up the row's attempts meanwhile.
        return out.RetryAfter(TOKEN_WAIT_SECONDS, f"no OA token: {error}")
    if isinstance(error, httpx.HTTPError | OSError):
        return out.Transient(str(error) or type(error).__name__)
    return None


def seconds_until_morning(now: datetime | None = None) -> float:
    """Seconds until the next 06:00 in Vietnam (when OA broadcasts are taken again)."""
    local = (now or datetime.now(VIETNAM)).astimezone(VIETNAM)
    morning = local.replace(hour=MORNING_HOUR, minute=0, second=0, microsecond=0)
    if morning <= local:
        morning += timedelta(days=1)
    return (morning - local).total_seconds()


class ZaloOaOutbound(PlainTextOutbound):
    """Sends outbox rows and direct answers as the Official Account."""

    name = CHANNEL
    limit = api.MESSAGE_LIMIT

    def __init__(
        self,
        client: ZaloOaClient,
        tokens: TokenStore,
        t: Translator,
        *,
        owned_http: httpx.AsyncClient | None = None,
    ) -> None:
        super().__init__(t, owned_http=owned_http)
        self.client = client
        self.tokens = tokens
        self._banners: dict[int, str] = {}
        self._upload_locks: dict[int, asyncio.Lock] = defaultdict(asyncio.Lock)

    async def send_broadcast(
        self, chat_id: str, text: str, photo: bytes | None, broadcast_id: int
    ) -> out.SendOutcome:
        """A "tin truyền thông": the promotion template (header, text, the photo as banner)."""
        plain = to_plain(text).strip()
        header, _, body = plain.partition("\n")
        elements: list[dict[str, object]] = []
        try:
            if photo is not None:
                banner = await self._banner(broadcast_id, photo)
                elements.append({"type": "banner", "attachment_id": banner})
            elements.append({"type": "header", "content": header[:HEADER_LIMIT]})
            if body.strip():
                elements.append({"type": "text", "align": "left", "content": body.strip()})
            message = {
                "attachment": {
                    "type": "template",
                    "payload": {
                        "template_type": "promotion",
                        "language": "VI",
                        "elements": elements,
                    },
                }
            }
            await self.send_message(chat_id, message, kind="promotion")
        except Exception as error:
            outcome = self.classify(error)
            if outcome is None:
                raise
            return outcome
        return out.Sent(None)

    async def _banner(self, broadcast_id: int, photo: bytes) -> str:
        """Upload a broadcast's photo once; its attachment id serves every subscriber."""
        async with self._upload_locks[broadcast_id]:
            found = self._banners.get(broadcast_id)
            if found is None:
                token = await self.tokens.access_token()
                found = await self.client.upload_image(
                    token, photo, f"broadcast-{broadcast_id}.jpg"
                )
                self._banners[broadcast_id] = found
        return found

    async def send_text(self, chat_id: str, text: str) -> str | None:
        """A consultation text, refreshing the access token once if Zalo refuses it."""
        return await self.send_message(chat_id, {"text": text})

    async def send_message(
        self, chat_id: str, message: Mapping[str, object], *, kind: str = "cs"
    ) -> str | None:
        """POST one message (cs or promotion) with a valid access token."""
        token = await self.tokens.access_token()
        try:
            sent = await self.client.send_message(token, chat_id, dict(message), kind=kind)
        except ZaloOaApiError as error:
            if error.code not in api.TOKEN_INVALID:
                raise
            self.tokens.forget(token)
            token = await self.tokens.refresh_if_due(force_if=token)
            sent = await self.client.send_message(token, chat_id, dict(message), kind=kind)
        return str(sent.get("message_id") or "") or None

    def classify(self, error: Exception) -> out.SendOutcome | None:
        """The OA API's errors."""
        return classify(error)
