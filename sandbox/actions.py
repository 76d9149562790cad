"""What users do to a bot: write, upload, edit, press buttons, block it, add it to groups."""

from __future__ import annotations

import html
import itertools
from dataclasses import dataclass
from typing import Any

from sandbox.errors import ControlError
from sandbox.files import MEDIA_KINDS, file_object
from sandbox.state import BotState, CallbackRecord, Chat, StoredMessage
from sandbox.validation import command_entities, inline_callback_data

SUPERGROUP_ID_BELOW = -1_000_000_000_000  # Telegram's supergroup ids start with -100


@dataclass(frozen=True, slots=True)
class Actor:
    """A Telegram user the control API acts as."""

    id: int
    first_name: str
    username: str | None = None
    last_name: str | None = None
    language_code: str | None = None

    @classmethod
    def from_json(cls, data: Any) -> Actor:
        """Build an actor from the control API's `user` object."""
        if not isinstance(data, dict) or not isinstance(data.get("id"), int):
            raise ControlError(400, "user must be an object with an integer id")
        if data["id"] <= 0:
            raise ControlError(400, "user id must be positive")
        return cls(
            id=data["id"],
            first_name=str(data.get("first_name") or f"User {data['id']}"),
            username=data.get("username"),
            last_name=data.get("last_name"),
            language_code=data.get("language_code"),
        )

    def as_user(self) -> dict[str, Any]:
        """Return the Bot API User object."""
        user: dict[str, Any] = {"id": self.id, "is_bot": False, "first_name": self.first_name}
        for key in ("last_name", "username", "language_code"):
            value = getattr(self, key)
            if value:
                user[key] = value
        return user


@dataclass(frozen=True, slots=True)
class MediaSpec:
    """A file a user sends: real bytes, or only a declared size."""

    kind: str
    data: bytes | None
    size: int | None = None
    filename: str | None = None
    mime_type: str | None = None
    duration: int = 0
    width: int | None = None
    height: int | None = None


class UserActions:
    """Turns user actions into stored messages and the updates Telegram would send."""

    def __init__(self) -> None:
        self._media_groups = itertools.count(1)

    # -- chats --------------------------------------------------------------------------

    def chat_for(
        self, bot: BotState, actor: Actor, chat_id: int | None, title: str | None = None
    ) -> Chat:
        """Return the chat the actor writes in (created on first use)."""
        if chat_id is None or chat_id == actor.id:
            chat = bot.chats.get(actor.id)
            if chat is None:
                chat = bot.chats[actor.id] = Chat(actor.id, "private")
            # The private chat mirrors the user's current profile, as in Telegram.
            chat.first_name = actor.first_name
            chat.last_name = actor.last_name
            chat.username = actor.username
            return chat
        if chat_id > 0:
            raise ControlError(400, "a private chat's id is its user's id")
        chat = bot.chats.get(chat_id)
        if chat is None:
            kind = "supergroup" if chat_id < SUPERGROUP_ID_BELOW else "group"
            chat = bot.chats[chat_id] = Chat(chat_id, kind, title=title or f"Group {chat_id}")
        elif title:
            chat.title = title
        return chat

    def find_chat(self, bot: BotState, chat_id: int) -> Chat:
        """Return a known chat or fail with 404."""
        chat = bot.chats.get(chat_id)
        if chat is None:
            raise ControlError(404, f"chat {chat_id} not found")
        return chat

    # -- messages -----------------------------------------------------------------------

    def send(
        self,
        bot: BotState,
        actor: Actor,
        fields: dict[str, Any],
        *,
        chat_id: int | None = None,
        title: str | None = None,
        reply_to: int | None = None,
    ) -> StoredMessage:
        """Post a message with arbitrary Bot API fields as the actor and notify the bot."""
        chat = self.chat_for(bot, actor, chat_id, title)
        if chat.blocked:
            # Writing to a blocked bot means pressing "Restart" first, which unblocks it.
            self.unblock(bot, actor)
        message: dict[str, Any] = {
            "message_id": chat.take_message_id(),
            "from": actor.as_user(),
            "chat": chat.info(),
            "date": bot.now(),
        }
        if reply_to is not None:
            replied = chat.messages.get(reply_to)
            if replied is None:
                raise ControlError(404, f"message {reply_to} not found in chat {chat.id}")
            nested = dict(replied.message)
            nested.pop("reply_to_message", None)
            message["reply_to_message"] = nested
        message.update(fields)
        if chat.keyboard is not None and chat.keyboard.get("one_time_keyboard"):
            chat.keyboard = None  # a one-time keyboard hides once the user has answered
        text = fields.get("text") or fields.get("caption") or ""
        stored = bot.add_message(
            chat, message, from_bot=False, html=html.escape(text, quote=False), markup=None
        )
        if not chat.is_group or chat.bot_member:
            bot.enqueue("message", message)
        return stored

    def send_text(
        self,
        bot: BotState,
        actor: Actor,
        text: str,
        *,
        chat_id: int | None = None,
        title: str | None = None,
        reply_to: int | None = None,
        extra: dict[str, Any] | None = None,
    ) -> StoredMessage:
        """Post a text message; commands get bot_command entities as in Telegram."""
        if not text:
            raise ControlError(400, "text must not be empty")
        fields: dict[str, Any] = {"text": text}
        entities = command_entities(text)
        if entities:
            fields["entities"] = entities
        fields.update(extra or {})
        return self.send(bot, actor, fields, chat_id=chat_id, title=title, reply_to=reply_to)

    def media_fields(self, bot: BotState, spec: MediaSpec, caption: str | None) -> dict[str, Any]:
        """Store an uploaded (or declared) file and return the message fields showing it."""
        if spec.kind not in MEDIA_KINDS:
            raise ControlError(400, f"unknown media kind {spec.kind!r}")
        if spec.data is None and spec.size is None:
            raise ControlError(400, "media needs data or a declared size")
        stored = bot.files.add(
            spec.kind,
            spec.data,
            size=spec.size,
            file_name=spec.filename,
            mime_type=spec.mime_type,
            width=spec.width,
            height=spec.height,
            duration=spec.duration,
        )
        fields: dict[str, Any] = {spec.kind: file_object(stored)}
        if caption:
            fields["caption"] = caption
        return fields

    def send_album(
        self,
        bot: BotState,
        actor: Actor,
        items: list[tuple[MediaSpec, str | None]],
        *,
        caption: str | None = None,
        chat_id: int | None = None,
        title: str | None = None,
    ) -> list[StoredMessage]:
        """Post several media sharing one media_group_id, one update each, as Telegram does."""
        if not 2 <= len(items) <= 10:
            raise ControlError(400, "an album has 2 to 10 items")
        group_id = f"{13_000_000_000_000 + next(self._media_groups)}"
        sent: list[StoredMessage] = []
        for index, (spec, item_caption) in enumerate(items):
            text = item_caption if item_caption is not None else (caption if index == 0 else None)
            fields = self.media_fields(bot, spec, text)
            fields["media_group_id"] = group_id
            sent.append(self.send(bot, actor, fields, chat_id=chat_id, title=title))
        return sent

    def edit_text(
        self, bot: BotState, actor: Actor, chat_id: int, message_id: int, text: str
    ) -> StoredMessage:
        """Edit one of the actor's messages; the bot gets an edited_message update."""
        chat = self.find_chat(bot, chat_id)
        stored = chat.messages.get(message_id)
        if stored is None:
            raise ControlError(404, f"message {message_id} not found in chat {chat_id}")
        if stored.from_bot or stored.message.get("from", {}).get("id") != actor.id:
            raise ControlError(403, "users can only edit their own messages")
        field = "text" if "text" in stored.message else "caption"
        message = stored.message
        message[field] = text
        entities = command_entities(text) if field == "text" else []
        message.pop("entities" if field == "text" else "caption_entities", None)
        if entities:
            message["entities"] = entities
        message["edit_date"] = bot.now()
        stored.html = html.escape(text, quote=False)
        bot.mark_edited(chat, stored)
        if not chat.is_group or chat.bot_member:
            bot.enqueue("edited_message", message)
        return stored

    def press(
        self,
        bot: BotState,
        actor: Actor,
        chat_id: int,
        message_id: int,
        data: str,
        *,
        force: bool = False,
    ) -> CallbackRecord:
        """Press an inline button of a bot message; the bot gets a callback_query update."""
        chat = self.find_chat(bot, chat_id)
        stored = chat.messages.get(message_id)
        if stored is None or not stored.from_bot:
            raise ControlError(404, f"bot message {message_id} not found in chat {chat_id}")
        if not force and data not in inline_callback_data(stored.message.get("reply_markup")):
            raise ControlError(400, f"message {message_id} has no button with data {data!r}")
        record = CallbackRecord(bot.next_callback_id(), chat.id, message_id, data, actor.id)
        bot.callbacks[record.query_id] = record
        bot.enqueue(
            "callback_query",
            {
                "id": record.query_id,
                "from": actor.as_user(),
                "message": stored.message,
                "chat_instance": str(abs(chat.id) * 7919 + bot.bot_id),
                "data": data,
            },
        )
        return record

    # -- membership ---------------------------------------------------------------------

    def _member_update(self, bot: BotState, chat: Chat, actor: Actor, old: str, new: str) -> None:
        def member(status: str) -> dict[str, Any]:
            entry: dict[str, Any] = {"user": bot.user, "status": status}
            if status == "kicked":
                entry["until_date"] = 0
            return entry

        bot.enqueue(
            "my_chat_member",
            {
                "chat": chat.info(),
                "from": actor.as_user(),
                "date": bot.now(),
                "old_chat_member": member(old),
                "new_chat_member": member(new),
            },
        )

    def block(self, bot: BotState, actor: Actor) -> Chat:
        """The user blocks the bot: sends to them now fail with 403."""
        chat = self.chat_for(bot, actor, None)
        if not chat.blocked:
            chat.blocked = True
            self._member_update(bot, chat, actor, "member", "kicked")
        return chat

    def unblock(self, bot: BotState, actor: Actor) -> Chat:
        """The user unblocks the bot."""
        chat = self.chat_for(bot, actor, None)
        if chat.blocked:
            chat.blocked = False
            self._member_update(bot, chat, actor, "kicked", "member")
        return chat

    def add_to_group(
        self, bot: BotState, actor: Actor, chat_id: int, title: str, username: str | None = None
    ) -> Chat:
        """The user adds the bot to a group: my_chat_member plus a new_chat_members message.

        With `username` the group is a public supergroup (Telegram gives only those a username).
        """
        if chat_id >= 0:
            raise ControlError(400, "group chat ids are negative")
        existed = chat_id in bot.chats
        chat = self.chat_for(bot, actor, chat_id, title)
        if username:
            chat.kind, chat.username = "supergroup", username.lstrip("@")
        if existed and chat.bot_member:
            raise ControlError(409, f"the bot is already a member of {chat_id}")
        chat.bot_member = True
        self._member_update(bot, chat, actor, "left", "member")
        self.send(bot, actor, {"new_chat_members": [bot.user]}, chat_id=chat_id)
        return chat

    def remove_from_group(self, bot: BotState, actor: Actor, chat_id: int) -> Chat:
        """The user removes the bot from a group: sends there now fail with 403."""
        chat = self.find_chat(bot, chat_id)
        if not chat.is_group or not chat.bot_member:
            raise ControlError(409, f"the bot is not a member of {chat_id}")
        chat.bot_member = False
        # The bot only learns of its removal; it no longer sees the group's messages.
        # Basic groups report a removed member as "left", supergroups as "kicked".
        status = "kicked" if chat.kind == "supergroup" else "left"
        self._member_update(bot, chat, actor, "member", status)
        self.send(bot, actor, {"left_chat_member": bot.user}, chat_id=chat_id)
        return chat
