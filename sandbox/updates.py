"""The queue of updates one bot has not confirmed yet, with getUpdates long polling."""

from __future__ import annotations

import asyncio
import itertools
import time
from collections import deque
from typing import Any

from sandbox.errors import conflict

# Update kinds Telegram sends when allowed_updates was never set (or set to []).
DEFAULT_UPDATE_KINDS = frozenset(
    {
        "message",
        "edited_message",
        "channel_post",
        "edited_channel_post",
        "business_connection",
        "business_message",
        "edited_business_message",
        "deleted_business_messages",
        "inline_query",
        "chosen_inline_result",
        "callback_query",
        "shipping_query",
        "pre_checkout_query",
        "purchased_paid_media",
        "poll",
        "poll_answer",
        "my_chat_member",
        "chat_join_request",
        "chat_boost",
        "removed_chat_boost",
    }
)


def update_kind(update: dict[str, Any]) -> str:
    """Return the kind of an update (its one key besides update_id)."""
    for key in update:
        if key != "update_id":
            return key
    return ""


def update_chat_id(update: dict[str, Any]) -> int:
    """Return the chat an update belongs to, for per-chat ordering (0 if none)."""
    body = update.get(update_kind(update))
    if not isinstance(body, dict):
        return 0
    if "chat" in body:
        return int(body["chat"]["id"])
    message = body.get("message")
    if isinstance(message, dict) and "chat" in message:
        return int(message["chat"]["id"])
    sender = body.get("from")
    return int(sender["id"]) if isinstance(sender, dict) else 0


class UpdateQueue:
    """Pending updates in update_id order; getUpdates reads them, offsets confirm them."""

    def __init__(self) -> None:
        self._items: deque[dict[str, Any]] = deque()
        # Telegram's update ids keep rising across restarts; so do ours across resets, so a
        # bot that confirmed offset N never silently drops a fresh update numbered below N.
        self._next_id = 1
        self._wakeup: asyncio.Event | None = None
        self._generation = 0
        self._epoch = 0
        self.closing = False
        self.allowed: frozenset[str] = DEFAULT_UPDATE_KINDS
        self.total = 0

    def __len__(self) -> int:
        return len(self._items)

    def next_id(self) -> int:
        """Take the next update_id."""
        update_id = self._next_id
        self._next_id += 1
        return update_id

    def set_allowed(self, kinds: list[str] | None) -> None:
        """Remember allowed_updates; like Telegram it applies to updates created later."""
        if kinds is None:
            return
        self.allowed = frozenset(kinds) if kinds else DEFAULT_UPDATE_KINDS

    def push(self, update: dict[str, Any]) -> None:
        """Queue an update and wake a waiting getUpdates."""
        self._items.append(update)
        self.total += 1
        self._wake()

    def push_front(self, updates: list[dict[str, Any]]) -> None:
        """Put updates back at the head of the queue (when a webhook is deleted)."""
        self._items.extendleft(reversed(updates))
        self._wake()

    def drain(self) -> list[dict[str, Any]]:
        """Remove and return every pending update."""
        items = list(self._items)
        self._items.clear()
        return items

    def clear(self) -> None:
        """Drop every pending update."""
        self._items.clear()

    def confirm(self, offset: int) -> None:
        """Apply getUpdates' offset: forget updates below it (negative counts from the end)."""
        items = self._items
        if offset < 0:
            keep = -offset
            while len(items) > keep:
                items.popleft()
            return
        while items and items[0]["update_id"] < offset:
            items.popleft()

    def wake_all(self) -> None:
        """Release every waiting getUpdates with no updates (used when the server stops)."""
        self.closing = True
        self._epoch += 1
        self._wake()

    def _wake(self) -> None:
        if self._wakeup is not None:
            self._wakeup.set()
            self._wakeup = None

    async def get(self, offset: int | None, limit: int, timeout: float) -> list[dict[str, Any]]:
        """Answer getUpdates: confirm by offset, then wait up to timeout for updates."""
        if offset is not None:
            self.confirm(offset)
        # A newer getUpdates ends an older one still waiting, as Telegram does with a 409.
        self._generation += 1
        generation = self._generation
        epoch = self._epoch
        self._wake()
        deadline = time.monotonic() + timeout
        while not self._items:
            remaining = deadline - time.monotonic()
            if remaining <= 0 or self.closing:
                return []
            if self._wakeup is None:
                self._wakeup = asyncio.Event()
            event = self._wakeup
            try:
                await asyncio.wait_for(event.wait(), remaining)
            except TimeoutError:
                return []
            if generation != self._generation:
                raise conflict(
                    "terminated by other getUpdates request; make sure that only one bot "
                    "instance is running"
                )
            if epoch != self._epoch:
                return []
        return list(itertools.islice(self._items, limit))
