"""Drive the real PTB Application over HTTP through the Bot API emulator."""

from __future__ import annotations

import asyncio
from typing import Any

from sqlmodel import col, func, select

from bot.app import (
    TinbaoApplication,
    build_application,
    build_services,
    start_polling,
    stop_polling,
)
from bot.context import Services
from sandbox.client import EmulatorClient, EmulatorError, User
from storage.models import OutboxMessage
from tests.conftest import FakeClock
from tinbao.settings import Settings

TOKEN = "123456:E2E-TEST-TOKEN"
SETTLE_TIMEOUT = 20.0


class BotUnderTest:
    """The real bot process (Application, updater, handlers) started against the emulator."""

    def __init__(self, settings: Settings, clock: FakeClock) -> None:
        self.settings = settings
        self.clock = clock
        self.services: Services | None = None
        self.application: TinbaoApplication | None = None

    async def start(self) -> None:
        """Build and start the application with long polling, as `tinbao run` does."""
        self.services = build_services(self.settings, clock=self.clock)
        self.application = build_application(self.settings, self.services)
        await start_polling(self.application, timeout=1)

    async def stop(self) -> None:
        """Stop polling and shut the application down (as a process exit would)."""
        if self.application is None:
            return
        await stop_polling(self.application)
        self.application = None

    async def restart(self) -> None:
        """A new process on the same database: nothing in memory survives."""
        await self.stop()
        await self.start()

    def idle(self) -> bool:
        """No update is queued or being handled inside the application."""
        app = self.application
        if app is None:
            return True
        return app.update_queue.empty() and app.update_processor.current_concurrent_updates == 0

    async def describe(self) -> str:
        """Outbox rows not yet sent, for a failing test's message."""
        if self.services is None:
            return "not running"
        async with self.services.db.session() as session:
            rows = (
                await session.exec(select(OutboxMessage).where(OutboxMessage.status != "sent"))
            ).all()
        return f"idle={self.idle()} outbox=" + "; ".join(
            f"{r.id}:{r.kind}:{r.status}:{r.attempts}:{r.next_attempt_at}:{r.last_error}"
            for r in rows
        )

    async def outbox_idle(self) -> bool:
        """No outbox row is due or in flight (rows waiting for a later retry do not count)."""
        if self.services is None:
            return True
        async with self.services.db.session() as session:
            statement = (
                select(func.count())
                .select_from(OutboxMessage)
                .where(
                    col(OutboxMessage.status).in_(("pending", "sending")),
                    col(OutboxMessage.next_attempt_at) <= self.clock.now,
                )
            )
            return (await session.exec(statement)).one() == 0


class Citizen:
    """A person in a private chat with the bot, who reads what the bot answers."""

    def __init__(
        self, client: EmulatorClient, bot: BotUnderTest, user: User, chat_id: int | None = None
    ) -> None:
        self.client = client
        self.bot = bot
        self.user = user
        self.chat_id = chat_id if chat_id is not None else user.id
        self.last_query_id = ""

    async def settle(self) -> None:
        """Wait until the emulator delivered every update and the bot handled them all."""
        quiet_checks = 0
        try:
            await self._wait_quiet(quiet_checks)
        except TimeoutError:
            raise AssertionError(f"the bot did not settle: {await self.bot.describe()}") from None

    async def _wait_quiet(self, quiet_checks: int) -> None:
        """Poll until three consecutive quiet checks."""
        async with asyncio.timeout(SETTLE_TIMEOUT):
            while quiet_checks < 3:
                await asyncio.sleep(0.01)
                counters = await self.client.counters()
                quiet = counters.get("updates_pending", 0) == 0 and self.bot.idle()
                if quiet and await self.bot.outbox_idle():
                    quiet_checks += 1
                else:
                    quiet_checks = 0

    async def _replies_after(self, action: Any) -> list[dict[str, Any]]:
        """Run an injecting action and return the bot messages that answer it."""
        before = await self._last_message_id()
        await action
        await self.settle()
        return [
            m
            for m in await self.client.transcript(self.chat_id)
            if m.get("from_bot") and m["message_id"] > before
        ]

    async def _last_message_id(self) -> int:
        """The newest message id in the chat (0 when empty)."""
        try:
            transcript = await self.client.transcript(self.chat_id)
        except EmulatorError:  # the chat does not exist until its first message
            return 0
        return max((m["message_id"] for m in transcript), default=0)

    def in_chat(self, chat_id: int) -> Citizen:
        """The same person acting in another chat (an inbox group)."""
        return Citizen(self.client, self.bot, self.user, chat_id)

    async def say(self, text: str, **extra: Any) -> list[dict[str, Any]]:
        """Send a text in this chat; return the bot's answers."""
        if self.chat_id != self.user.id:
            extra.setdefault("chat_id", self.chat_id)
        return await self._replies_after(self.client.send_text(self.user, text, **extra))

    async def messages(self) -> list[dict[str, Any]]:
        """Everything the bot has said in this chat."""
        try:
            return [m for m in await self.client.transcript(self.chat_id) if m.get("from_bot")]
        except EmulatorError:
            return []

    async def send(self, coroutine: Any) -> list[dict[str, Any]]:
        """Run any client injection (photo, album, location...) and return the answers."""
        return await self._replies_after(coroutine)

    async def press(
        self, label: str, *, message: dict[str, Any] | None = None
    ) -> list[dict[str, Any]]:
        """Press the button whose text contains `label` on the newest message that has it."""
        target, data = await self.find_button(label, message=message)
        return await self.press_data(target["message_id"], data)

    async def press_data(
        self, message_id: int, data: str, *, forged: bool = False
    ) -> list[dict[str, Any]]:
        """Press a button by its callback data; `forged` sends data no button carries."""
        before = await self._last_message_id()
        self.last_query_id = await self.client.press(
            self.user, self.chat_id, message_id, data, force=forged
        )
        await self.settle()
        return [
            m
            for m in await self.client.transcript(self.chat_id)
            if m.get("from_bot") and m["message_id"] > before
        ]

    async def find_button(
        self, label: str, *, message: dict[str, Any] | None = None
    ) -> tuple[dict[str, Any], str]:
        """Find (message, callback_data) of a button by (part of) its text."""
        candidates = (
            [message] if message else list(reversed(await self.client.transcript(self.chat_id)))
        )
        for candidate in candidates:
            markup = candidate.get("reply_markup") or {}
            for row in markup.get("inline_keyboard", []):
                for button in row:
                    if label in button.get("text", ""):
                        return candidate, button["callback_data"]
        raise AssertionError(f"no button {label!r} in the chat")


def text_of(messages: list[dict[str, Any]]) -> str:
    """All texts and captions of messages, joined."""
    return "\n".join((m.get("text") or m.get("caption") or "") for m in messages)


def buttons_of(message: dict[str, Any]) -> list[str]:
    """The labels of a message's inline buttons."""
    markup = message.get("reply_markup") or {}
    return [button["text"] for row in markup.get("inline_keyboard", []) for button in row]
