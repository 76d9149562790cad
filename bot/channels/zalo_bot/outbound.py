"""Zalo Bot Platform's sending side: plain text of at most 2,000 characters, no buttons.

The services' markup is flattened to plain text; choices become numbered lines (typed back as a
number or a label), outbox buttons the words that do the same. A long text is cut on word
boundaries into several messages.
"""

from __future__ import annotations

import asyncio
import logging

import httpx

from bot.channels import outbound as out
from bot.channels.markup import numbered, plain_messages, split_text
from bot.channels.zalo_bot.client import MESSAGE_LIMIT, ZaloBotApiError, ZaloBotClient
from bot.i18n import Translator, _
from bot.services.steps import Reply

log = logging.getLogger(__name__)

CHANNEL = "zalo_bot"
DEFAULT_RETRY_SECONDS = 30.0
# Direct answers to a citizen wait out this many 429s before giving up (each ≤ MAX_DIRECT_WAIT).
DIRECT_RETRIES = 3
MAX_DIRECT_WAIT = 10.0


def classify(error: Exception) -> out.SendOutcome:
    """What a Zalo Bot API error means for the message that caused it."""
    if isinstance(error, ZaloBotApiError):
        if error.code == 429:
            return out.RetryAfter(error.retry_after or DEFAULT_RETRY_SECONDS, "429 quota")
        if error.code == 403 or "block" in error.description.lower():
            return out.Unreachable(str(error))
        if error.code in (400, 404, 413):
            return out.Broken(str(error))
        return out.Transient(str(error))
    return out.Transient(str(error) or type(error).__name__)


class ZaloBotOutbound:
    """Sends outbox rows and direct answers through one Zalo bot."""

    name = CHANNEL

    def __init__(self, client: ZaloBotClient, t: Translator) -> None:
        self.client = client
        self.t = t

    def texts(self, message: out.OutboundMessage) -> list[str]:
        """The plain messages an outbox row becomes."""
        if message.kind == "location":
            text = f"📍 {message.latitude:.6f}, {message.longitude:.6f}"
            return [text]
        send_words = self.t.gettext(_("send “{words}”"))
        return plain_messages(
            message.text, message.buttons, limit=MESSAGE_LIMIT, send_words=send_words
        )

    async def send(self, message: out.OutboundMessage) -> out.SendOutcome:
        """Send one outbox row (several messages when it is long)."""
        if message.kind in ("file", "edit"):
            # Files and card edits only go to police chats, which are not on Zalo Bot.
            return out.Broken(f"{message.kind} messages are not sent on {CHANNEL}")
        last: str | None = None
        try:
            for text in self.texts(message):
                sent = await self.client.send_message(message.chat_id, text)
                last = str(sent.get("message_id") or "") or None
        except (ZaloBotApiError, httpx.HTTPError, OSError) as error:
            return classify(error)
        return out.Sent(last)

    async def send_replies(self, chat_id: str, replies: list[Reply]) -> None:
        """Answer a citizen directly (the step they are in), waiting out short 429s."""
        hint = self.t.gettext(_("Reply with the number of your choice."))
        for reply in replies:
            for text in split_text(numbered(reply, hint), MESSAGE_LIMIT):
                await self._send_direct(chat_id, text)

    async def _send_direct(self, chat_id: str, text: str) -> None:
        """One direct message; a citizen who blocked the bot is not an error."""
        for _attempt in range(DIRECT_RETRIES + 1):
            try:
                await self.client.send_message(chat_id, text)
                return
            except ZaloBotApiError as error:
                outcome = classify(error)
                if isinstance(outcome, out.RetryAfter) and outcome.seconds <= MAX_DIRECT_WAIT:
                    await asyncio.sleep(outcome.seconds)
                    continue
                if isinstance(outcome, out.Unreachable):
                    log.info("a citizen blocked the Zalo bot; reply dropped")
                    return
                raise
        raise ZaloBotApiError(429, "still rate limited")
