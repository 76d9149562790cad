"""Bot API methods that send, copy, edit or delete messages and answer button presses."""

from __future__ import annotations

from typing import Any

from sandbox.errors import ApiError, bad_request, forbidden, too_many_requests
from sandbox.files import MAX_UPLOAD, StoredFile, file_object
from sandbox.limits import RateLimiter
from sandbox.params import Params
from sandbox.state import BotState, Chat, StoredMessage
from sandbox.validation import (
    MAX_CALLBACK_ANSWER,
    FormattedText,
    check_reply_markup,
    format_text,
)

NOT_MODIFIED = (
    "message is not modified: specified new message content and reply markup are exactly "
    "the same as a current content and reply markup of the message"
)
QUERY_TOO_OLD = "query is too old and response timeout expired or query ID is invalid"
CHAT_ACTIONS = frozenset(
    {
        "typing",
        "upload_photo",
        "record_video",
        "upload_video",
        "record_voice",
        "upload_voice",
        "upload_document",
        "choose_sticker",
        "find_location",
        "record_video_note",
        "upload_video_note",
    }
)
# Fields a copy carries over; everything else (ids, sender, service data) is the original's.
_COPYABLE = (
    "text",
    "entities",
    "photo",
    "document",
    "video",
    "voice",
    "audio",
    "animation",
    "sticker",
    "video_note",
    "location",
    "venue",
    "contact",
    "poll",
    "dice",
    "caption",
    "caption_entities",
    "has_media_spoiler",
)
# Per-kind parameters of send* methods copied into the file object.
_MEDIA_META = {
    "video": ("width", "height", "duration"),
    "voice": ("duration",),
    "audio": ("duration", "performer", "title"),
    "animation": ("width", "height", "duration"),
    "video_note": ("duration",),
}


class Sender:
    """Implements the message-producing Bot API methods for any bot."""

    def __init__(self, limiter: RateLimiter, *, strict_html: bool = True) -> None:
        self.limiter = limiter
        self.strict_html = strict_html

    # -- shared checks ----------------------------------------------------------------

    def find_chat(self, bot: BotState, params: Params, name: str = "chat_id") -> Chat:
        """Resolve chat_id to a known chat or fail with "chat not found"."""
        ref = params.chat_id(name)
        chat: Chat | None = None
        if isinstance(ref, int):
            chat = bot.chats.get(ref)
        else:
            wanted = ref[1:].lower()
            chat = next(
                (c for c in bot.chats.values() if (c.username or "").lower() == wanted), None
            )
        if chat is None:
            raise bad_request("chat not found")
        return chat

    def writable_chat(self, bot: BotState, params: Params) -> Chat:
        """Resolve the target chat and refuse it when the bot may not write there."""
        chat = self.find_chat(bot, params)
        if chat.blocked:
            raise forbidden("bot was blocked by the user")
        if chat.is_group and not chat.bot_member:
            if chat.kind == "supergroup":
                raise forbidden("bot was kicked from the supergroup chat")
            raise forbidden("bot was kicked from the group chat")
        return chat

    def charge(self, bot: BotState, chat: Chat) -> None:
        """Take one send from the flood limits or answer 429 (and count the refusal)."""
        refusal = self.limiter.acquire(bot.bot_id, chat.id, is_group=chat.is_group)
        if refusal is None:
            return
        counters = bot.counters
        counters.refused_429_total += 1
        counters.refused_429_by_chat[chat.id] = counters.refused_429_by_chat.get(chat.id, 0) + 1
        counters.refused_429_by_scope[refusal.scope] = (
            counters.refused_429_by_scope.get(refusal.scope, 0) + 1
        )
        raise too_many_requests(refusal.retry_after)

    def _reply_target(self, chat: Chat, params: Params) -> dict[str, Any] | None:
        """Return the message being replied to (reply_parameters or reply_to_message_id)."""
        reply = params.obj("reply_parameters", "reply parameters")
        allow_missing = params.flag("allow_sending_without_reply")
        if isinstance(reply, dict):
            message_id = reply.get("message_id")
            allow_missing = bool(reply.get("allow_sending_without_reply", allow_missing))
            if reply.get("chat_id") not in (None, chat.id):
                # Replies across chats quote another chat; the emulator keeps them local.
                return None
        else:
            message_id = params.integer("reply_to_message_id")
        if message_id is None:
            return None
        stored = chat.messages.get(int(message_id))
        if stored is None:
            if allow_missing:
                return None
            raise bad_request("message to be replied not found")
        replied = dict(stored.message)
        replied.pop("reply_to_message", None)
        return replied

    def _markup(self, params: Params) -> dict[str, Any] | None:
        return check_reply_markup(params.obj("reply_markup", "reply keyboard markup"))

    def _format(self, params: Params, *, caption: bool) -> FormattedText:
        if caption:
            return format_text(
                params.text("caption"),
                params.text("parse_mode"),
                params.obj("caption_entities"),
                caption=True,
                strict_entities=self.strict_html,
            )
        return format_text(
            params.text("text"),
            params.text("parse_mode"),
            params.obj("entities"),
            strict_entities=self.strict_html,
        )

    def _new_message(
        self, bot: BotState, chat: Chat, reply: dict[str, Any] | None
    ) -> dict[str, Any]:
        message: dict[str, Any] = {
            "message_id": chat.take_message_id(),
            "from": bot.user,
            "chat": chat.info(),
            "date": bot.now(),
        }
        if reply is not None:
            message["reply_to_message"] = reply
        return message

    def _store(
        self,
        bot: BotState,
        chat: Chat,
        message: dict[str, Any],
        markup: dict[str, Any] | None,
        html_source: str,
    ) -> StoredMessage:
        if markup is not None and "inline_keyboard" in markup:
            # Only inline keyboards belong to the message; reply keyboards belong to the chat.
            message["reply_markup"] = markup
        if markup is not None and "keyboard" in markup:
            chat.keyboard = markup
        elif markup is not None and markup.get("remove_keyboard"):
            chat.keyboard = None
        return bot.add_message(chat, message, from_bot=True, html=html_source, markup=markup)

    # -- sending ------------------------------------------------------------------------

    async def send_message(self, bot: BotState, params: Params) -> Any:
        """sendMessage."""
        chat = self.writable_chat(bot, params)
        formatted = self._format(params, caption=False)
        markup = self._markup(params)
        reply = self._reply_target(chat, params)
        self.charge(bot, chat)
        message = self._new_message(bot, chat, reply)
        message["text"] = formatted.text
        if formatted.entities:
            message["entities"] = formatted.entities
        return self._store(bot, chat, message, markup, formatted.html).message

    async def send_photo(self, bot: BotState, params: Params) -> Any:
        """sendPhoto."""
        return self._send_media(bot, params, "photo")

    async def send_document(self, bot: BotState, params: Params) -> Any:
        """sendDocument."""
        return self._send_media(bot, params, "document")

    async def send_video(self, bot: BotState, params: Params) -> Any:
        """sendVideo."""
        return self._send_media(bot, params, "video")

    async def send_voice(self, bot: BotState, params: Params) -> Any:
        """sendVoice."""
        return self._send_media(bot, params, "voice")

    async def send_audio(self, bot: BotState, params: Params) -> Any:
        """sendAudio."""
        return self._send_media(bot, params, "audio")

    async def send_animation(self, bot: BotState, params: Params) -> Any:
        """sendAnimation."""
        return self._send_media(bot, params, "animation")

    async def send_sticker(self, bot: BotState, params: Params) -> Any:
        """sendSticker."""
        return self._send_media(bot, params, "sticker")

    def _send_media(self, bot: BotState, params: Params, kind: str) -> Any:
        chat = self.writable_chat(bot, params)
        formatted = self._format(params, caption=True)
        markup = self._markup(params)
        reply = self._reply_target(chat, params)
        meta = {key: params.values.get(key) for key in _MEDIA_META.get(kind, ())}
        stored_file = self.resolve_file(bot, params, kind, params.text(kind), meta)
        self.charge(bot, chat)
        message = self._new_message(bot, chat, reply)
        message[kind] = _media_object(stored_file, kind, meta)
        self._put_caption(message, formatted)
        return self._store(bot, chat, message, markup, formatted.html).message

    @staticmethod
    def _put_caption(message: dict[str, Any], formatted: FormattedText) -> None:
        if formatted.text:
            message["caption"] = formatted.text
            if formatted.entities:
                message["caption_entities"] = formatted.entities

    def resolve_file(
        self,
        bot: BotState,
        params: Params,
        kind: str,
        value: str | None,
        meta: dict[str, Any],
        field: str | None = None,
    ) -> StoredFile:
        """Turn a media parameter (upload, attach://name, file_id or URL) into a stored file."""
        field = field or kind
        upload = params.files.get(field)
        if upload is None and value and value.startswith("attach://"):
            upload = params.files.get(value[len("attach://") :])
            if upload is None:
                raise bad_request("wrong file identifier/HTTP URL specified")
        if upload is not None:
            if len(upload.data) > MAX_UPLOAD:
                raise ApiError(413, "Request Entity Too Large")
            return bot.files.add(
                kind,
                upload.data,
                file_name=upload.filename if kind != "photo" else None,
                mime_type=upload.content_type if kind not in ("photo", "sticker") else None,
                width=_int_or_none(meta.get("width")),
                height=_int_or_none(meta.get("height")),
                duration=_int_or_none(meta.get("duration")) or 0,
            )
        if not value:
            raise bad_request(f"there is no {field} in the request")
        if value.startswith(("http://", "https://")):
            # Telegram would download the URL; offline, the emulator keeps a placeholder.
            name = value.rsplit("/", 1)[-1] or None
            return bot.files.add(kind, None, size=0, file_name=name)
        existing = bot.files.require(value)
        if (existing.kind == "photo") != (kind == "photo"):
            raise bad_request("type of file mismatch")
        return existing

    async def send_location(self, bot: BotState, params: Params) -> Any:
        """sendLocation."""
        chat = self.writable_chat(bot, params)
        latitude = params.number("latitude")
        longitude = params.number("longitude")
        if latitude is None or longitude is None or abs(latitude) > 90 or abs(longitude) > 180:
            raise bad_request("wrong latitude or longitude specified")
        markup = self._markup(params)
        reply = self._reply_target(chat, params)
        self.charge(bot, chat)
        message = self._new_message(bot, chat, reply)
        message["location"] = {"latitude": latitude, "longitude": longitude}
        return self._store(bot, chat, message, markup, "").message

    async def send_media_group(self, bot: BotState, params: Params) -> Any:
        """sendMediaGroup: 2-10 items, one message each, sharing a media_group_id."""
        chat = self.writable_chat(bot, params)
        media = params.obj("media", "media")
        if not isinstance(media, list) or not 2 <= len(media) <= 10:
            raise bad_request("wrong number of media in the group")
        kinds = [item.get("type") if isinstance(item, dict) else None for item in media]
        if any(kind not in ("photo", "video", "document", "audio") for kind in kinds):
            raise bad_request("wrong media type in the group")
        if len(set(kinds)) > 1 and not set(kinds) <= {"photo", "video"}:
            raise bad_request("documents and audio can't be mixed with other media types")
        reply = self._reply_target(chat, params)
        prepared: list[tuple[str, StoredFile, FormattedText, dict[str, Any]]] = []
        for item in media:
            kind = str(item["type"])
            formatted = format_text(
                item.get("caption"),
                item.get("parse_mode"),
                item.get("caption_entities"),
                caption=True,
                strict_entities=self.strict_html,
            )
            meta = {key: item.get(key) for key in _MEDIA_META.get(kind, ())}
            value = item.get("media")
            stored_file = self.resolve_file(
                bot, params, kind, value if isinstance(value, str) else None, meta, "media"
            )
            prepared.append((kind, stored_file, formatted, meta))
        # Telegram counts an album against the flood limits as one send.
        self.charge(bot, chat)
        group_id = f"{bot.seq + 1}{chat.next_message_id:06d}"
        messages: list[dict[str, Any]] = []
        for kind, stored_file, formatted, meta in prepared:
            message = self._new_message(bot, chat, reply)
            message["media_group_id"] = group_id
            message[kind] = _media_object(stored_file, kind, meta)
            self._put_caption(message, formatted)
            messages.append(self._store(bot, chat, message, None, formatted.html).message)
        return messages

    async def copy_message(self, bot: BotState, params: Params) -> Any:
        """copyMessage: returns only the new MessageId."""
        message = self._copy(bot, params, forward=False)
        return {"message_id": message["message_id"]}

    async def forward_message(self, bot: BotState, params: Params) -> Any:
        """forwardMessage."""
        return self._copy(bot, params, forward=True)

    def _copy(self, bot: BotState, params: Params, *, forward: bool) -> dict[str, Any]:
        source_chat = self.find_chat(bot, params, "from_chat_id")
        source = source_chat.messages.get(params.required_int("message_id"))
        if source is None:
            raise bad_request(f"message to {'forward' if forward else 'copy'} not found")
        content = {key: source.message[key] for key in _COPYABLE if key in source.message}
        if not content:
            raise bad_request("message can't be copied")
        chat = self.writable_chat(bot, params)
        html_source = source.html
        markup: dict[str, Any] | None = None
        reply: dict[str, Any] | None = None
        if not forward:
            if params.has("caption"):
                formatted = self._format(params, caption=True)
                content.pop("caption", None)
                content.pop("caption_entities", None)
                self._put_caption(content, formatted)
                html_source = formatted.html
            markup = self._markup(params)
            reply = self._reply_target(chat, params)
        self.charge(bot, chat)
        message = self._new_message(bot, chat, reply)
        if forward:
            message["forward_origin"] = _origin(source.message)
        message.update(content)
        return self._store(bot, chat, message, markup, html_source).message

    # -- editing and deleting -----------------------------------------------------------

    def _editable(self, bot: BotState, params: Params) -> tuple[Chat, StoredMessage]:
        if params.has("inline_message_id"):
            raise bad_request("message to edit not found")
        chat = self.writable_chat(bot, params)
        stored = chat.messages.get(params.required_int("message_id"))
        if stored is None:
            raise bad_request("message to edit not found")
        if not stored.from_bot:
            raise bad_request("message can't be edited")
        return chat, stored

    def _inline_markup(self, params: Params) -> dict[str, Any] | None:
        markup = self._markup(params)
        if markup is not None and "inline_keyboard" not in markup:
            raise bad_request("inline keyboard expected")
        return markup

    async def edit_message_text(self, bot: BotState, params: Params) -> Any:
        """editMessageText (a missing reply_markup removes the inline keyboard)."""
        chat, stored = self._editable(bot, params)
        message = stored.message
        if "text" not in message:
            raise bad_request("there is no text in the message to edit")
        formatted = self._format(params, caption=False)
        markup = self._inline_markup(params)
        if (
            formatted.text == message["text"]
            and formatted.entities == message.get("entities", [])
            and markup == message.get("reply_markup")
        ):
            raise bad_request(NOT_MODIFIED)
        message["text"] = formatted.text
        _set_or_drop(message, "entities", formatted.entities or None)
        return self._finish_edit(bot, chat, stored, markup, formatted.html)

    async def edit_message_caption(self, bot: BotState, params: Params) -> Any:
        """editMessageCaption."""
        chat, stored = self._editable(bot, params)
        message = stored.message
        if "text" in message:
            raise bad_request("there is no caption in the message to edit")
        formatted = self._format(params, caption=True)
        markup = self._inline_markup(params)
        if (
            formatted.text == message.get("caption", "")
            and formatted.entities == message.get("caption_entities", [])
            and markup == message.get("reply_markup")
        ):
            raise bad_request(NOT_MODIFIED)
        _set_or_drop(message, "caption", formatted.text or None)
        _set_or_drop(message, "caption_entities", formatted.entities or None)
        return self._finish_edit(bot, chat, stored, markup, formatted.html)

    async def edit_message_reply_markup(self, bot: BotState, params: Params) -> Any:
        """editMessageReplyMarkup."""
        chat, stored = self._editable(bot, params)
        markup = self._inline_markup(params)
        if markup == stored.message.get("reply_markup"):
            raise bad_request(NOT_MODIFIED)
        return self._finish_edit(bot, chat, stored, markup, stored.html)

    def _finish_edit(
        self,
        bot: BotState,
        chat: Chat,
        stored: StoredMessage,
        markup: dict[str, Any] | None,
        html_source: str,
    ) -> dict[str, Any]:
        message = stored.message
        _set_or_drop(message, "reply_markup", markup)
        message["edit_date"] = bot.now()
        stored.html = html_source
        stored.markup = markup
        bot.mark_edited(chat, stored)
        return message

    async def delete_message(self, bot: BotState, params: Params) -> Any:
        """deleteMessage."""
        chat = self.find_chat(bot, params)
        message_id = params.required_int("message_id")
        if message_id not in chat.messages:
            raise bad_request("message to delete not found")
        bot.remove_message(chat, message_id)
        return True

    # -- other ---------------------------------------------------------------------------

    async def answer_callback_query(self, bot: BotState, params: Params) -> Any:
        """answerCallbackQuery: records the answer for the control API."""
        query_id = params.text("callback_query_id")
        record = bot.callbacks.get(query_id or "")
        if record is None or record.answer is not None:
            raise bad_request(QUERY_TOO_OLD)
        text = params.text("text")
        if text is not None and len(text) > MAX_CALLBACK_ANSWER:
            raise bad_request("MESSAGE_TOO_LONG")
        record.answer = {
            "callback_query_id": record.query_id,
            "text": text,
            "show_alert": params.flag("show_alert"),
            "url": params.text("url"),
            "cache_time": params.integer("cache_time", 0),
        }
        if record.waiter is not None:
            record.waiter.set()
            record.waiter = None
        bot.events.publish(
            {
                "type": "callback_answer",
                "bot": bot.username,
                "chat_id": record.chat_id,
                "message_id": record.message_id,
                "seq": bot.seq,
                "answer": record.answer,
            }
        )
        return True

    async def send_chat_action(self, bot: BotState, params: Params) -> Any:
        """sendChatAction."""
        self.writable_chat(bot, params)
        if params.text("action") not in CHAT_ACTIONS:
            raise bad_request("wrong parameter action in request")
        return True


def _media_object(stored: StoredFile, kind: str, meta: dict[str, Any]) -> Any:
    obj = file_object(stored, kind)
    if isinstance(obj, dict):
        for key in ("performer", "title"):
            if meta.get(key):
                obj[key] = meta[key]
    return obj


def _origin(message: dict[str, Any]) -> dict[str, Any]:
    sender = message.get("from") or {}
    return {"type": "user", "sender_user": sender, "date": message.get("date", 0)}


def _set_or_drop(message: dict[str, Any], key: str, value: Any) -> None:
    if value is None:
        message.pop(key, None)
    else:
        message[key] = value


def _int_or_none(value: Any) -> int | None:
    try:
        return int(value) if value is not None else None
    except (TypeError, ValueError):
        return None
