"""Citizen private chat: turn Telegram updates into intake events and render the answers."""

from __future__ import annotations

import asyncio
import contextlib
import logging

from telegram import Message, Update
from telegram.error import BadRequest, TelegramError

from bot.context import CustomContext
from bot.handlers.render import decode_callback, send_outcome
from bot.services.events import (
    Command,
    EditedText,
    Event,
    Location,
    Media,
    Pick,
    Start,
    Text,
    Unsupported,
)
from bot.services.media import MediaRejected, sanitize

CHANNEL = "telegram"
log = logging.getLogger(__name__)


async def on_message(update: Update, context: CustomContext) -> None:
    """Any message in a private chat: commands, text, files, locations and the rest."""
    message = update.effective_message
    user = update.effective_user
    if message is None or user is None:
        return
    event = await event_from_message(message, context)
    await _run(update, context, event)


async def on_edited_message(update: Update, context: CustomContext) -> None:
    """An edited message in a private chat."""
    message = update.edited_message
    if message is None or update.effective_user is None:
        return
    text = message.text or message.caption or ""
    await _run(update, context, EditedText(text=text, message_id=message.message_id))


async def on_button(update: Update, context: CustomContext) -> None:
    """A button press in a private chat; stale or forged data is refused by the service."""
    query = update.callback_query
    if query is None or update.effective_user is None:
        return
    decoded = decode_callback(query.data)
    # Unknown data still goes to the service with an impossible token so the citizen gets the
    # "no longer valid" notice plus the current step, never silence.
    event = Pick(token=decoded[0], value=decoded[1]) if decoded else Pick(token=-1, value="?")
    services = context.services
    outcome = await services.intake.handle(
        channel=CHANNEL,
        user_id=update.effective_user.id,
        chat_id=query.message.chat.id if query.message else update.effective_user.id,
        event=event,
        locale=services.settings.default_locale,
    )
    notice, outcome.notice = outcome.notice, None
    with contextlib.suppress(BadRequest):
        await query.answer(text=notice)
    chat_id = query.message.chat.id if query.message else update.effective_user.id
    await send_outcome(context.bot, chat_id, outcome)


async def on_answer_button(update: Update, context: CustomContext) -> None:
    """The tipster's "Answer" button under a police message: "a:<tip id>"."""
    query = update.callback_query
    user = update.effective_user
    if query is None or user is None:
        return
    _prefix, _sep, raw_id = (query.data or "").partition(":")
    services = context.services
    with contextlib.suppress(BadRequest):
        await query.answer()
    if not raw_id.isdigit():
        return
    chat_id = query.message.chat.id if query.message else user.id
    outcome = await services.intake.begin_reply(
        channel=CHANNEL,
        user_id=user.id,
        chat_id=chat_id,
        tip_id=int(raw_id),
        locale=services.settings.default_locale,
    )
    await send_outcome(context.bot, chat_id, outcome)


async def _run(update: Update, context: CustomContext, event: Event) -> None:
    """Hand an event to the intake service and send what it answers."""
    user = update.effective_user
    chat = update.effective_chat
    assert user is not None and chat is not None
    services = context.services
    outcome = await services.intake.handle(
        channel=CHANNEL,
        user_id=user.id,
        chat_id=chat.id,
        event=event,
        locale=services.settings.default_locale,
    )
    await send_outcome(context.bot, chat.id, outcome)


async def event_from_message(message: Message, context: CustomContext) -> Event:
    """Translate a Telegram message into the event the service understands."""
    if message.text is not None:
        text = message.text
        if text.startswith("/"):
            head, _, argument = text[1:].partition(" ")
            name = head.split("@", 1)[0].lower()
            if name == "start":
                return Start(payload=argument.strip() or None)
            return Command(name=name, argument=argument.strip())
        return Text(text=text, message_id=message.message_id)
    if message.location is not None:
        return Location(message.location.latitude, message.location.longitude)
    if message.venue is not None:
        return Location(message.venue.location.latitude, message.venue.location.longitude)
    media = await _media_from_message(message, context)
    if media is not None:
        return media
    return Unsupported(kind=_unsupported_kind(message))


def _unsupported_kind(message: Message) -> str:
    """Name what was sent, for the polite refusal."""
    for kind in ("sticker", "poll", "contact", "dice", "game", "story", "invoice"):
        if getattr(message, kind, None) is not None:
            return kind
    return "other"


async def _media_from_message(message: Message, context: CustomContext) -> Event | None:
    """Download and sanitize a file the citizen sent; None when the message has no file."""
    found = _file_of(message)
    if found is None:
        return None
    kind, file_id, size, mime_type, filename = found
    if size is not None and size > context.services.settings.max_file_bytes:
        return Unsupported(kind="too_big")
    try:
        telegram_file = await context.bot.get_file(file_id)
        data = bytes(await telegram_file.download_as_bytearray())
    except BadRequest as error:
        if "too big" in str(error).lower():
            return Unsupported(kind="too_big")
        raise
    except TelegramError:
        log.warning("downloading a %s failed", kind)
        raise
    try:
        # Re-encoding is CPU work: keep it off the event loop so other citizens are not held up.
        clean = await asyncio.to_thread(
            sanitize, data, kind=kind, mime_type=mime_type, filename=filename
        )
    except MediaRejected:
        return Unsupported(kind="media_rejected")
    return Media(
        kind=clean.kind,
        data=clean.data,
        mime_type=clean.mime_type,
        filename=clean.filename,
        caption=message.caption,
        media_group_id=message.media_group_id,
        message_id=message.message_id,
        note=clean.note,
    )


def _file_of(message: Message) -> tuple[str, str, int | None, str | None, str | None] | None:
    """(kind, file_id, size, mime type, file name) of a message's file, if it carries one."""
    if message.photo:
        largest = message.photo[-1]
        return "photo", largest.file_id, largest.file_size, "image/jpeg", None
    if message.document is not None:
        doc = message.document
        return "document", doc.file_id, doc.file_size, doc.mime_type, doc.file_name
    if message.video is not None:
        video = message.video
        return "video", video.file_id, video.file_size, video.mime_type, video.file_name
    if message.voice is not None:
        voice = message.voice
        return "voice", voice.file_id, voice.file_size, voice.mime_type, None
    if message.audio is not None:
        audio = message.audio
        return "audio", audio.file_id, audio.file_size, audio.mime_type, audio.file_name
    if message.animation is not None:
        anim = message.animation
        return "animation", anim.file_id, anim.file_size, anim.mime_type, anim.file_name
    if message.video_note is not None:
        note = message.video_note
        return "video", note.file_id, note.file_size, "video/mp4", None
    return None
