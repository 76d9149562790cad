"""Sending on channels that show plain text only (both Zalo channels).

The services' markup is flattened to plain text; a step's choices become numbered lines (typed
back as a number or a label), an outbox row's buttons the words that do the same, and a long
text is cut on word boundaries into the platform's message size. A channel supplies how to
send one text and what its platform's errors mean.
"""

from __future__ import annotations

import asyncio
import logging
from abc import ABC, abstractmethod

import httpx

from bot.channels import outbound as out
from bot.channels.markup import numbered, plain_messages, split_text, to_plain
from bot.i18n import Translator, _
from bot.services.steps import Reply

log = logging.getLogger(__name__)

# Direct answers to a citizen wait out this many rate limits before giving up, each at most
# MAX_DIRECT_WAIT seconds: the citizen is waiting for them.
DIRECT_RETRIES = 3
MAX_DIRECT_WAIT = 10.0


class PlainTextOutbound(ABC):
    """Outbox rows and direct answers as plain texts of at most `limit` characters."""

    name: str
    limit: int
    broadcast_rate: float = 10.0

    def __init__(self, t: Translator, *, owned_http: httpx.AsyncClient | None = None) -> None:
        self.t = t
        self._owned_http = owned_http  # closed with the broadcasts (a registry-built sender)

    @abstractmethod
    async def send_text(self, chat_id: str, text: str) -> str | None:
        """Send one text; return the platform's message id; raise the platform's errors."""

    @abstractmethod
    def classify(self, error: Exception) -> out.SendOutcome | None:
        """What an error raised by send_text means; None when it is not the platform's."""

    def texts(self, message: out.OutboundMessage) -> list[str]:
        """The plain messages an outbox row becomes."""
        if message.kind == "location":
            return [f"📍 {message.latitude:.6f}, {message.longitude:.6f}"]
        send_words = self.t.gettext(_("send “{words}”"))
        return plain_messages(
            message.text, message.buttons, limit=self.limit, send_words=send_words
        )

    async def send(self, message: out.OutboundMessage) -> out.SendOutcome:
        """Send one outbox row (several messages when it is long)."""
        if message.kind in ("file", "edit"):
            # Files and card edits only go to police chats, which are not on Zalo.
            return out.Broken(f"{message.kind} messages are not sent on {self.name}")
        last: str | None = None
        try:
            for text in self.texts(message):
                last = await self.send_text(message.chat_id, text)
        except Exception as error:
            outcome = self.classify(error)
            if outcome is None:
                raise
            return outcome
        return out.Sent(last)

    async def send_replies(self, chat_id: str, replies: list[Reply]) -> None:
        """Answer a citizen directly (the step they are in), waiting out short rate limits."""
        hint = self.t.gettext(_("Reply with the number of your choice."))
        for reply in replies:
            for text in split_text(numbered(reply, hint), self.limit):
                await self._send_direct(chat_id, text)

    async def _send_direct(self, chat_id: str, text: str) -> None:
        """One direct message; a citizen who blocked or left is not an error."""
        for _attempt in range(DIRECT_RETRIES + 1):
            try:
                await self.send_text(chat_id, text)
                return
            except Exception as error:
                outcome = self.classify(error)
                wait = outcome.seconds if isinstance(outcome, out.RetryAfter) else None
                if wait is not None and wait <= MAX_DIRECT_WAIT:
                    await asyncio.sleep(wait)
                    continue
                if isinstance(outcome, out.Unreachable):
                    log.info("a citizen left %s; reply dropped", self.name)
                    return
                raise
        raise RuntimeError(f"{self.name} still rate limited after {DIRECT_RETRIES} waits")

    async def start_broadcasts(self) -> None:  # noqa: B027 (a hook: nothing to do by default)
        """Nothing to prepare: HTTP connections open on first use."""

    async def close_broadcasts(self) -> None:
        """Close the connections this outbound was given to own."""
        if self._owned_http is not None:
            await self._owned_http.aclose()

    async def send_broadcast(
        self, chat_id: str, text: str, photo: bytes | None, broadcast_id: int
    ) -> out.SendOutcome:
        """A broadcast as plain text (a photo is not sent: these platforms take photo URLs)."""
        try:
            for piece in split_text(to_plain(text), self.limit):
                await self.send_text(chat_id, piece)
        except Exception as error:
            outcome = self.classify(error)
            if outcome is None:
                raise
            return outcome
        return out.Sent(None)
