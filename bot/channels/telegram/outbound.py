"""Telegram's sending side: an OutboundMessage becomes a Bot API call, its answer an outcome.

The services' markup is the HTML subset Telegram takes (<b>, <i>, <code>, <a href>), so the text
goes as it is with parse_mode HTML; button rows become an inline keyboard.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta

from telegram import Bot, InlineKeyboardButton, InlineKeyboardMarkup, InputFile, ReplyParameters
from telegram.constants import ParseMode
from telegram.error import BadRequest, Forbidden, RetryAfter, TelegramError

from bot.channels import outbound as out

CHANNEL = "telegram"
CAPTION_LIMIT = 1024
# Telegram answers these when a chat can no longer receive the bot's messages.
_GONE = (
    "chat not found",
    "bot was kicked",
    "not enough rights",
    "have no rights",
    "chat_write_forbidden",
    "user is deactivated",
    "bot was blocked",
    "peer_id_invalid",
)
# And these when the message itself is wrong: every other recipient would get the same answer.
_BAD_CONTENT = (
    "can't parse entities",
    "message is too long",
    "caption is too long",
    "message text is empty",
    "wrong file identifier",
    "image_process_failed",
    "photo_invalid_dimensions",
    "wrong type of the web page content",
)


def classify(error: Exception) -> out.SendOutcome:
    """What a Bot API error means for the message that caused it."""
    if isinstance(error, RetryAfter):
        wait = error.retry_after
        seconds = wait.total_seconds() if isinstance(wait, timedelta) else float(wait)
        return out.RetryAfter(seconds, f"429 retry after {seconds:.0f}s")
    if isinstance(error, Forbidden):
        return out.Unreachable(str(error))
    if isinstance(error, BadRequest):
        text = str(error).lower()
        if any(marker in text for marker in _GONE):
            return out.Unreachable(str(error))
        if "message is not modified" in text:
            return out.Sent(None)  # the edit was already there: nothing was lost
        return out.Broken(str(error), content=any(marker in text for marker in _BAD_CONTENT))
    return out.Transient(str(error) or type(error).__name__)


def keyboard(buttons: tuple[tuple[tuple[str, str], ...], ...]) -> InlineKeyboardMarkup | None:
    """An inline keyboard from (label, callback data) rows."""
    if not buttons:
        return None
    return InlineKeyboardMarkup(
        [
            [InlineKeyboardButton(label, callback_data=data) for label, data in row]
            for row in buttons
        ]
    )


class TelegramOutbound:
    """Sends through a PTB Bot (the Application's, with its rate limiter, when there is one)."""

    name = CHANNEL

    def __init__(self, bot: Bot | Callable[[], Bot | None]) -> None:
        # A callable lets `tinbao serve` hand over the Application's bot before Telegram has
        # answered getMe: until then every send is a transient failure, retried later.
        self._bot = bot if callable(bot) and not isinstance(bot, Bot) else (lambda: bot)

    async def send(self, message: out.OutboundMessage) -> out.SendOutcome:
        """Make the Bot API call the message asks for."""
        bot = self._bot()
        if bot is None:
            return out.Transient("Telegram is not started yet")
        try:
            message_id = await self._call(bot, message)
        except (TelegramError, OSError) as error:
            return classify(error)
        return out.Sent(None if message_id is None else str(message_id))

    async def probe(self) -> bool:
        """Whether the Bot API answers at all (getMe): tells an outage from one broken chat."""
        bot = self._bot()
        if bot is None:
            return False
        try:
            await bot.get_me()
        except (TelegramError, OSError):
            return False
        return True

    async def _call(self, bot: Bot, message: out.OutboundMessage) -> int | None:
        """One Bot API call; returns the sent message id."""
        chat_id = int(message.chat_id)
        markup = keyboard(message.buttons)
        reply = (
            ReplyParameters(message_id=int(message.reply_to), allow_sending_without_reply=True)
            if message.reply_to
            else None
        )
        if message.kind == "edit":
            assert message.edit_message_id is not None
            await bot.edit_message_text(
                chat_id=chat_id,
                message_id=int(message.edit_message_id),
                text=message.text,
                parse_mode=ParseMode.HTML,
                reply_markup=markup,
            )
            return None
        if message.kind == "location":
            assert message.latitude is not None and message.longitude is not None
            sent = await bot.send_location(
                chat_id,
                latitude=message.latitude,
                longitude=message.longitude,
                reply_parameters=reply,
            )
            return sent.message_id
        if message.kind == "file":
            assert message.file is not None
            upload = InputFile(message.file.content, filename=message.file.filename)
            senders = {
                "photo": bot.send_photo,
                "video": bot.send_video,
                "voice": bot.send_voice,
                "audio": bot.send_audio,
                "animation": bot.send_animation,
            }
            send = senders.get(message.file.kind, bot.send_document)
            sent = await send(  # type: ignore[operator]
                chat_id, upload, caption=message.text[:CAPTION_LIMIT], reply_parameters=reply
            )
            return int(sent.message_id)
        sent = await bot.send_message(
            chat_id,
            message.text,
            parse_mode=ParseMode.HTML,
            reply_markup=markup,
            reply_parameters=reply,
            disable_web_page_preview=True,
        )
        return sent.message_id
