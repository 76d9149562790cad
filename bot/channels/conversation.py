"""The citizen side of a webhook channel: events in chat order, answers back, never silence.

Telegram has PTB's Application for this; the Zalo channels share this runner. A webhook is
answered at once and its event handled after: one citizen's events one after another (an album's
photos before "Xong"), different citizens at the same time, bounded. When handling fails the
citizen gets an apology instead of silence, and the failure is logged without ids.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass
from typing import Any

from bot.channels.keywords import AnswerRequest
from bot.context import Services
from bot.i18n import _, translator
from bot.services.events import Event
from bot.services.steps import Outcome, Reply
from tinbao import metrics

# What a citizen reads when handling their message failed. A confirmed tip is committed with
# its receipt queued in the outbox, so the words must never invite sending it a second time.
APOLOGY = _(
    "Sorry, something went wrong. If you had just sent your tip, it is saved: its receipt code "
    "will reach you here, so do not send it again. Otherwise please send your last message "
    "again, or press /start."
)
log = logging.getLogger("tinbao.updates")

# Replies to one event, in order: the channel renders and sends them.
ReplySender = Callable[[str, list[Reply]], Awaitable[None]]


@dataclass(frozen=True)
class Inbound:
    """One citizen event from a channel: who (in memory only), where, what."""

    user_id: str
    chat_id: str
    event: Event | AnswerRequest
    kind: str  # a fixed vocabulary for metrics and logs ("text", "image", ...)


class ChatOrderedRunner:
    """Runs jobs concurrently across chats and in arrival order within one chat."""

    def __init__(self, max_concurrent: int = 256) -> None:
        self._slots = asyncio.Semaphore(max_concurrent)
        self._tails: dict[str, asyncio.Task[None]] = {}
        self._tasks: set[asyncio.Task[None]] = set()

    def submit(self, chat: str, job: Callable[[], Coroutine[Any, Any, None]]) -> None:
        """Queue a job behind the chat's earlier ones."""
        before = self._tails.get(chat)
        task = asyncio.create_task(self._after(before, job))
        self._tails[chat] = task
        self._tasks.add(task)
        task.add_done_callback(lambda done: self._forget(chat, done))

    async def _after(
        self, before: asyncio.Task[None] | None, job: Callable[[], Coroutine[Any, Any, None]]
    ) -> None:
        if before is not None:
            await asyncio.wait([before])
        async with self._slots:
            await job()

    def _forget(self, chat: str, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        if self._tails.get(chat) is task:
            del self._tails[chat]

    @property
    def pending(self) -> int:
        """Jobs queued or running."""
        return len(self._tasks)

    async def join(self) -> None:
        """Wait until every queued job has run."""
        while self._tasks:
            await asyncio.wait(list(self._tasks))


class CitizenConversation:
    """Hands a channel's citizen events to the intake service and sends what it answers."""

    def __init__(self, services: Services, channel: str, send: ReplySender) -> None:
        self.services = services
        self.channel = channel
        self.send = send
        self.runner = ChatOrderedRunner()

    def submit(self, inbound: Inbound) -> None:
        """Handle an event after the webhook has been answered, in its chat's order."""
        self.runner.submit(inbound.chat_id, lambda: self.handle(inbound))

    async def handle(self, inbound: Inbound) -> None:
        """Handle one event now; a failure is logged and apologised for."""
        metrics.UPDATES.labels(channel=self.channel, kind=inbound.kind).inc()
        started = time.perf_counter()
        try:
            outcome = await self._outcome(inbound)
            replies = list(outcome.replies)
            if outcome.notice:
                replies.insert(0, Reply(outcome.notice))
            await self.send(inbound.chat_id, replies)
        except Exception:
            metrics.HANDLER_ERRORS.labels(channel=self.channel).inc()
            log.exception("%s event failed", self.channel)
            await self._apologise(inbound.chat_id)
        finally:
            duration = time.perf_counter() - started
            metrics.UPDATE_SECONDS.labels(channel=self.channel).observe(duration)
            log.info(
                "update handled",
                extra={
                    "channel": self.channel,
                    "kind": inbound.kind,
                    "duration_ms": round(duration * 1000, 1),
                },
            )

    async def _outcome(self, inbound: Inbound) -> Outcome:
        """What the intake service answers to the event."""
        intake = self.services.intake
        locale = self.services.settings.default_locale
        if isinstance(inbound.event, AnswerRequest):
            return await intake.begin_reply(
                channel=self.channel,
                user_id=inbound.user_id,
                chat_id=inbound.chat_id,
                tip_id=inbound.event.tip_id,
                locale=locale,
            )
        return await intake.handle(
            channel=self.channel,
            user_id=inbound.user_id,
            chat_id=inbound.chat_id,
            event=inbound.event,
            locale=locale,
        )

    async def _apologise(self, chat_id: str) -> None:
        """Never leave the citizen without an answer."""
        t = translator(self.services.settings.default_locale)
        text = t.gettext(APOLOGY)
        try:
            await self.send(chat_id, [Reply(text)])
        except Exception:
            log.warning("could not send the apology on %s", self.channel)
