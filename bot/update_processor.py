"""Concurrent update processing that keeps each chat's updates in order."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable
from typing import Any

from telegram import Update
from telegram.ext import BaseUpdateProcessor

from bot.handlers.traced import CURRENT
from tinbao import metrics

log = logging.getLogger("tinbao.updates")
CHANNEL = "telegram"


def update_kind(update: object) -> str:
    """The update's type ("message", "callback_query", ...), a fixed vocabulary for labels."""
    if isinstance(update, Update):
        for kind in Update.ALL_TYPES:
            if getattr(update, kind, None) is not None:
                return kind
        return "other"
    return type(update).__name__


class PerChatUpdateProcessor(BaseUpdateProcessor):
    """Run updates of different chats concurrently and those of one chat one after another.

    Many citizens must be served at once, but one citizen's album items, texts and button
    presses must be applied in the order they were sent, or a draft would see "Done" before the
    photo that preceded it.
    """

    def __init__(self, max_concurrent_updates: int = 256) -> None:
        super().__init__(max_concurrent_updates)
        self._locks: dict[int, asyncio.Lock] = {}
        self._waiting: dict[int, int] = {}

    async def do_process_update(self, update: object, coroutine: Awaitable[Any]) -> None:
        """Handle the update in its chat's turn; count, time and log it (ids only)."""
        kind = update_kind(update)
        metrics.UPDATES.labels(channel=CHANNEL, kind=kind).inc()
        trace = {"handler": "none"}
        token = CURRENT.set(trace)
        started = time.perf_counter()
        try:
            await self._in_chat_order(update, coroutine)
        finally:
            CURRENT.reset(token)
            duration = time.perf_counter() - started
            metrics.UPDATE_SECONDS.labels(channel=CHANNEL).observe(duration)
            if log.isEnabledFor(logging.INFO):
                log.info(
                    "update handled",
                    extra={
                        "update_id": update.update_id if isinstance(update, Update) else None,
                        "channel": CHANNEL,
                        "kind": kind,
                        "handler": trace["handler"],
                        "duration_ms": round(duration * 1000, 2),
                    },
                )

    async def _in_chat_order(self, update: object, coroutine: Awaitable[Any]) -> None:
        """Await the update's handlers while holding its chat's lock."""
        chat = update.effective_chat if isinstance(update, Update) else None
        if chat is None:
            await coroutine
            return
        chat_id = chat.id
        lock = self._locks.setdefault(chat_id, asyncio.Lock())
        self._waiting[chat_id] = self._waiting.get(chat_id, 0) + 1
        try:
            async with lock:
                await coroutine
        finally:
            self._waiting[chat_id] -= 1
            if self._waiting[chat_id] == 0:  # forget idle chats so memory stays bounded
                del self._waiting[chat_id]
                del self._locks[chat_id]

    async def initialize(self) -> None:
        """Nothing to set up."""

    async def shutdown(self) -> None:
        """Nothing to tear down."""
