"""What one emulated bot knows: chats, messages, files, updates, callbacks, counters."""

from __future__ import annotations

import asyncio
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from sandbox.events import EventHub
from sandbox.files import MEDIA_KINDS, FileStore
from sandbox.updates import UpdateQueue
from sandbox.webhook import WebhookDispatcher

# Message fields that describe what a message shows, in the order a reader looks for them.
_CONTENT_KINDS = (
    *sorted(MEDIA_KINDS),
    "location",
    "venue",
    "contact",
    "poll",
    "dice",
    "game",
)
_GIFT_TYPES = {
    "unlimited_gifts": False,
    "limited_gifts": False,
    "unique_gifts": False,
    "premium_subscription": False,
    "gifts_from_channels": False,
}


@dataclass(slots=True)
class StoredMessage:
    """A message as it now stands, plus what the user sees of it."""

    message: dict[str, Any]  # the Bot API Message object (what the bot receives)
    from_bot: bool
    html: str  # formatted source, for display
    markup: dict[str, Any] | None  # any reply_markup, as the user sees it
    created_seq: int
    seq: int
    edited: bool = False

    @property
    def message_id(self) -> int:
        """Return the message's id within its chat."""
        return int(self.message["message_id"])

    def view(self) -> dict[str, Any]:
        """Return the transcript entry for this message."""
        message = self.message
        reply = message.get("reply_to_message")
        return {
            "message_id": message["message_id"],
            "chat_id": message["chat"]["id"],
            "seq": self.seq,
            "from_bot": self.from_bot,
            "from": message.get("from"),
            "date": message.get("date"),
            "text": message.get("text"),
            "caption": message.get("caption"),
            "html": self.html,
            "entities": message.get("entities") or message.get("caption_entities") or [],
            "reply_markup": self.markup,
            "media": media_view(message),
            "media_group_id": message.get("media_group_id"),
            "reply_to": reply.get("message_id") if isinstance(reply, dict) else None,
            "edited": self.edited,
            "message": message,
        }


def media_view(message: dict[str, Any]) -> dict[str, Any] | None:
    """Summarise the media or other non-text content of a message (None if text only)."""
    for kind in _CONTENT_KINDS:
        value = message.get(kind)
        if value is None:
            continue
        if kind == "photo" and isinstance(value, list) and value:
            return {"kind": kind, **value[-1]}
        if isinstance(value, dict):
            return {"kind": kind, **value}
        return {"kind": kind, "value": value}
    return None


class Chat:
    """A private chat (id = the user's id) or a group (negative id)."""

    __slots__ = (
        "blocked",
        "bot_member",
        "changes",
        "first_name",
        "id",
        "keyboard",
        "kind",
        "last_name",
        "messages",
        "next_message_id",
        "seq_by_id",
        "title",
        "username",
        "waiter",
    )

    def __init__(
        self,
        chat_id: int,
        kind: str,
        *,
        title: str | None = None,
        first_name: str | None = None,
        last_name: str | None = None,
        username: str | None = None,
    ) -> None:
        self.id = chat_id
        self.kind = kind  # "private", "group" or "supergroup"
        self.title = title
        self.first_name = first_name
        self.last_name = last_name
        self.username = username
        self.messages: dict[int, StoredMessage] = {}
        # message id -> the seq at which it was created, kept after deletion so a wait can
        # still start "after" a deleted message.
        self.seq_by_id: dict[int, int] = {}
        # message id -> seq of its last change, most recent last: waits scan it backwards.
        self.changes: OrderedDict[int, int] = OrderedDict()
        self.next_message_id = 1
        self.blocked = False  # private chats: the user blocked the bot
        self.bot_member = True  # groups: the bot is still in the group
        self.keyboard: dict[str, Any] | None = None  # reply keyboard the user now sees
        self.waiter: asyncio.Event | None = None

    @property
    def is_group(self) -> bool:
        """Tell whether this is a group or supergroup."""
        return self.kind != "private"

    def take_message_id(self) -> int:
        """Take the next message id of this chat."""
        message_id = self.next_message_id
        self.next_message_id += 1
        return message_id

    def info(self) -> dict[str, Any]:
        """Return the Bot API Chat object."""
        chat: dict[str, Any] = {"id": self.id, "type": self.kind}
        if self.is_group:
            chat["title"] = self.title or str(self.id)
            if self.username:  # a public supergroup: anyone can find and read it
                chat["username"] = self.username
        else:
            chat["first_name"] = self.first_name or str(self.id)
            if self.last_name:
                chat["last_name"] = self.last_name
            if self.username:
                chat["username"] = self.username
        return chat

    def full_info(self) -> dict[str, Any]:
        """Return getChat's ChatFullInfo object."""
        return {
            **self.info(),
            "accent_color_id": 0,
            "max_reaction_count": 11,
            "accepted_gift_types": dict(_GIFT_TYPES),
        }

    def wake(self) -> None:
        """Wake whoever waits for activity in this chat."""
        if self.waiter is not None:
            self.waiter.set()
            self.waiter = None


@dataclass(slots=True)
class CallbackRecord:
    """A button press and, once the bot answered it, the answer."""

    query_id: str
    chat_id: int
    message_id: int
    data: str
    user_id: int
    answer: dict[str, Any] | None = None
    waiter: asyncio.Event | None = None


@dataclass(slots=True)
class Counters:
    """What the bot did, for tests and benchmarks."""

    sent_total: int = 0
    sent_by_chat: dict[int, int] = field(default_factory=dict)
    edited_total: int = 0
    deleted_total: int = 0
    refused_429_total: int = 0
    refused_429_by_chat: dict[int, int] = field(default_factory=dict)
    refused_429_by_scope: dict[str, int] = field(default_factory=dict)
    errors_by_code: dict[int, int] = field(default_factory=dict)
    calls_by_method: dict[str, int] = field(default_factory=dict)

    def as_dict(self, updates_total: int, updates_pending: int) -> dict[str, Any]:
        """Return the counters as JSON-ready data (chat ids become string keys)."""
        return {
            "sent_total": self.sent_total,
            "sent_by_chat": {str(k): v for k, v in self.sent_by_chat.items()},
            "edited_total": self.edited_total,
            "deleted_total": self.deleted_total,
            "refused_429_total": self.refused_429_total,
            "refused_429_by_chat": {str(k): v for k, v in self.refused_429_by_chat.items()},
            "refused_429_by_scope": dict(self.refused_429_by_scope),
            "errors_by_code": {str(k): v for k, v in self.errors_by_code.items()},
            "calls_by_method": dict(self.calls_by_method),
            "updates_total": updates_total,
            "updates_pending": updates_pending,
        }


class BotState:
    """Everything the emulator keeps for one bot token."""

    def __init__(
        self,
        token: str,
        bot_id: int,
        username: str,
        first_name: str,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        self.token = token
        self.user: dict[str, Any] = {
            "id": bot_id,
            "is_bot": True,
            "first_name": first_name,
            "username": username,
        }
        self.wall_clock = wall_clock
        self.chats: dict[int, Chat] = {}
        self.files = FileStore()
        self.updates = UpdateQueue()
        self.webhook: WebhookDispatcher | None = None
        self.commands: dict[str, list[dict[str, str]]] = {}
        self.callbacks: dict[str, CallbackRecord] = {}
        self.counters = Counters()
        self.events = EventHub()
        self.seq = 0  # rises with every chat change; never reset, so client cursors stay valid
        self.closing = False
        self._callback_serial = 0

    @property
    def bot_id(self) -> int:
        """Return the bot's user id."""
        return int(self.user["id"])

    @property
    def username(self) -> str:
        """Return the bot's username."""
        return str(self.user["username"])

    def now(self) -> int:
        """Return the Unix time used for message dates."""
        return int(self.wall_clock())

    def reset(self) -> None:
        """Forget chats, files, pending updates, callbacks, commands and counters."""
        for chat in self.chats.values():
            chat.wake()
        self.chats.clear()
        self.files.clear()
        self.updates.clear()
        if self.webhook is not None:
            self.webhook.clear()
        self.commands.clear()
        for record in self.callbacks.values():
            if record.waiter is not None:
                record.waiter.set()
        self.callbacks.clear()
        self.counters = Counters()
        self.events.publish({"type": "reset", "seq": self.seq})

    def reopen(self) -> None:
        """Accept waiters again (the server is starting)."""
        self.closing = False
        self.updates.closing = False

    def wake_all(self) -> None:
        """Release every waiter (the server is stopping)."""
        self.closing = True
        self.updates.wake_all()
        for chat in self.chats.values():
            chat.wake()
        for record in self.callbacks.values():
            if record.waiter is not None:
                record.waiter.set()
        self.events.close_all()

    def pending_updates(self) -> int:
        """Return how many updates wait for delivery."""
        if self.webhook is not None:
            return self.webhook.pending()
        return len(self.updates)

    def enqueue(self, kind: str, body: dict[str, Any]) -> dict[str, Any] | None:
        """Create an update and route it to getUpdates or the webhook; None if filtered out."""
        if kind not in self.updates.allowed:
            return None
        update = {"update_id": self.updates.next_id(), kind: body}
        if self.webhook is not None:
            self.webhook.put(update)
            self.updates.total += 1
        else:
            self.updates.push(update)
        return update

    def next_callback_id(self) -> str:
        """Return a fresh callback query id (Telegram's are long decimal strings)."""
        self._callback_serial += 1
        return f"{self.bot_id % 100000}{self._callback_serial:012d}"

    # -- chat activity ---------------------------------------------------------------

    def add_message(
        self,
        chat: Chat,
        message: dict[str, Any],
        *,
        from_bot: bool,
        html: str,
        markup: dict[str, Any] | None,
    ) -> StoredMessage:
        """Store a new message of a chat and announce it."""
        self.seq += 1
        stored = StoredMessage(message, from_bot, html, markup, self.seq, self.seq)
        message_id = stored.message_id
        chat.messages[message_id] = stored
        chat.seq_by_id[message_id] = self.seq
        chat.changes[message_id] = self.seq
        if from_bot:
            counters = self.counters
            counters.sent_total += 1
            counters.sent_by_chat[chat.id] = counters.sent_by_chat.get(chat.id, 0) + 1
        self._announce(chat, "message", stored)
        return stored

    def mark_edited(self, chat: Chat, stored: StoredMessage) -> None:
        """Record that a stored message was edited in place and announce it."""
        self.seq += 1
        stored.seq = self.seq
        stored.edited = True
        chat.changes[stored.message_id] = self.seq
        chat.changes.move_to_end(stored.message_id)
        if stored.from_bot:
            self.counters.edited_total += 1
        self._announce(chat, "edit", stored)

    def remove_message(self, chat: Chat, message_id: int) -> None:
        """Delete a message from a chat and announce it."""
        chat.messages.pop(message_id, None)
        chat.changes.pop(message_id, None)
        self.seq += 1
        self.counters.deleted_total += 1
        chat.wake()
        self.events.publish(
            {
                "type": "delete",
                "bot": self.username,
                "chat_id": chat.id,
                "message_id": message_id,
                "seq": self.seq,
            }
        )

    def _announce(self, chat: Chat, kind: str, stored: StoredMessage) -> None:
        chat.wake()
        if self.events.subscriber_count:
            self.events.publish(
                {
                    "type": kind,
                    "bot": self.username,
                    "chat_id": chat.id,
                    "seq": stored.seq,
                    "message": stored.view(),
                }
            )

    def bot_changes_after(self, chat: Chat, after_seq: int) -> list[StoredMessage]:
        """Return bot messages created or edited after after_seq, oldest change first."""
        found: list[StoredMessage] = []
        # Most recent changes sit at the end, so the scan stops at the first old one.
        for message_id, seq in reversed(chat.changes.items()):
            if seq <= after_seq:
                break
            stored = chat.messages.get(message_id)
            if stored is not None and stored.from_bot:
                found.append(stored)
        found.reverse()
        return found

    async def wait_bot_messages(
        self, chat: Chat, after_seq: int, count: int, timeout: float
    ) -> tuple[list[StoredMessage], bool]:
        """Wait until at least count bot messages changed after after_seq; (found, timed_out)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            found = self.bot_changes_after(chat, after_seq)
            if len(found) >= count:
                return found, False
            remaining = deadline - loop.time()
            if remaining <= 0 or self.closing or self.chats.get(chat.id) is not chat:
                return found, True
            if chat.waiter is None:
                chat.waiter = asyncio.Event()
            try:
                await asyncio.wait_for(chat.waiter.wait(), remaining)
            except TimeoutError:
                return self.bot_changes_after(chat, after_seq), True
