"""Zalo Bot Platform's sending side: plain text of at most 2,000 characters, no buttons."""

from __future__ import annotations

import httpx

from bot.channels import outbound as out
from bot.channels.plain import PlainTextOutbound
from bot.channels.zalo_bot.client import MESSAGE_LIMIT, ZaloBotApiError, ZaloBotClient
from bot.i18n import Translator

CHANNEL = "zalo_bot"
DEFAULT_RETRY_SECONDS = 30.0


def classify(error: Exception) -> out.SendOutcome | None:
    """What a Zalo Bot API error means for the message that caused it."""
    if isinstance(error, ZaloBotApiError):
        if error.code == 429:
            return out.RetryAfter(error.retry_after or DEFAULT_RETRY_SECONDS, "429 quota")
        if error.code == 403 or "block" in error.description.lower():
            return out.Unreachable(str(error))
        if error.code in (400, 404, 413):
            return out.Broken(str(error))
        return out.Transient(str(error))
    if isinstance(error, httpx.HTTPError | OSError):
        return out.Transient(str(error) or type(error).__name__)
    return None


class ZaloBotOutbound(PlainTextOutbound):
    """Sends outbox rows and direct answers through one Zalo bot."""

    name = CHANNEL
    limit = MESSAGE_LIMIT

    def __init__(
        self, client: ZaloBotClient, t: Translator, *, owned_http: httpx.AsyncClient | None = None
    ) -> None:
        super().__init__(t, owned_http=owned_http)
        self.client = client

    async def send_text(self, chat_id: str, text: str) -> str | None:
        """sendMessage."""
        sent = await self.client.send_message(chat_id, text)
        return str(sent.get("message_id") or "") or None

    def classify(self, error: Exception) -> out.SendOutcome | None:
        """The Bot Platform's errors."""
        return classify(error)
