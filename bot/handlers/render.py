"""Telegram rendering of service replies: HTML text plus inline buttons."""

from __future__ import annotations

import contextlib
import logging
from urllib.parse import quote

from telegram import Bot, InlineKeyboardButton, InlineKeyboardMarkup
from telegram.constants import ParseMode
from telegram.error import BadRequest, Forbidden

from bot.services.steps import Outcome, Reply

log = logging.getLogger(__name__)
CALLBACK_SEPARATOR = ":"
SHARE_URL = "https://t.me/share/url?url="


def encode_callback(token: int, value: str) -> str:
    """Pack a step token and a choice value into callback_data (<= 64 bytes)."""
    data = f"{token}{CALLBACK_SEPARATOR}{value}"
    if len(data.encode("utf-8")) > 64:
        raise ValueError("callback data over 64 bytes")
    return data


def decode_callback(data: str | None) -> tuple[int, str] | None:
    """Unpack callback_data; None when it is not ours (forged or from another version)."""
    if not data or CALLBACK_SEPARATOR not in data:
        return None
    token, value = data.split(CALLBACK_SEPARATOR, 1)
    if not token.isdigit() or not value:
        return None
    return int(token), value


def keyboard(reply: Reply, bot_username: str | None = None) -> InlineKeyboardMarkup | None:
    """Inline keyboard for a reply's choices (plus a share button when the reply has one)."""
    rows = [
        [
            InlineKeyboardButton(
                choice.label, callback_data=encode_callback(reply.token, choice.value)
            )
            for choice in row
        ]
        for row in reply.choices
    ]
    if reply.share and bot_username:
        link = f"https://t.me/{bot_username}?start={reply.share}"
        rows.insert(
            0, [InlineKeyboardButton("📤 Chia sẻ / Share", url=SHARE_URL + quote(link, safe=""))]
        )
    return InlineKeyboardMarkup(rows) if rows else None


def keyboard_with_prefix(reply: Reply, prefix: str) -> InlineKeyboardMarkup | None:
    """Inline keyboard whose callback data is `prefix` + value (cards, answer buttons)."""
    if not reply.choices:
        return None
    return InlineKeyboardMarkup(
        [
            [InlineKeyboardButton(c.label, callback_data=prefix + c.value) for c in row]
            for row in reply.choices
        ]
    )


async def send_replies(bot: Bot, chat_id: int | str, replies: list[Reply]) -> None:
    """Send replies in order; a citizen who blocked the bot is not an error."""
    for reply in replies:
        try:
            if reply.photo is not None:
                await bot.send_photo(
                    chat_id,
                    reply.photo,
                    caption=reply.text[:1024],
                    parse_mode=ParseMode.HTML,
                    reply_markup=keyboard(reply, bot.username),
                )
                continue
            await bot.send_message(
                chat_id=chat_id,
                text=reply.text,
                parse_mode=ParseMode.HTML,
                reply_markup=keyboard(reply, bot.username),
                disable_web_page_preview=True,
            )
        except Forbidden:
            log.info("a citizen blocked the bot; reply dropped")
            return


async def send_outcome(bot: Bot, chat_id: int | str, outcome: Outcome) -> None:
    """Send an outcome in a chat (a notice becomes a message of its own)."""
    replies = list(outcome.replies)
    if outcome.notice:
        replies.insert(0, Reply(outcome.notice))
    await send_replies(bot, chat_id, replies)


async def clear_buttons(bot: Bot, chat_id: int, message_id: int) -> None:
    """Remove the buttons of a message that was answered (best effort: purely cosmetic)."""
    with contextlib.suppress(BadRequest):
        await bot.edit_message_reply_markup(chat_id=chat_id, message_id=message_id)
