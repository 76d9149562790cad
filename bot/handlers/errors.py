"""The error handler: log without personal data, and never leave a citizen without an answer."""

from __future__ import annotations

import logging

from telegram import Update
from telegram.error import NetworkError, TelegramError

from bot.channels.conversation import APOLOGY
from bot.context import CustomContext
from tinbao import metrics

log = logging.getLogger(__name__)


async def on_error(update: object, context: CustomContext) -> None:
    """Log the failure (update id only: updates carry user ids) and apologise in private chats."""
    update_id = update.update_id if isinstance(update, Update) else None
    if update is None and isinstance(context.error, NetworkError):
        # Polling could not reach the Bot API (an outage, a 5xx): PTB retries with a growing
        # pause; no update was lost or handled, so this is a warning, not a handler error.
        log.warning("Bot API unreachable while polling (%s); retrying", context.error)
        return
    metrics.HANDLER_ERRORS.labels(channel="telegram").inc()
    log.error("update %s failed", update_id, exc_info=context.error)
    if not isinstance(update, Update):
        return
    chat = update.effective_chat
    if chat is None or chat.type != "private":
        return
    try:
        await context.bot.send_message(
            chat.id,
            context.translate.gettext(APOLOGY),
        )
    except TelegramError:
        log.warning("could not send the apology for update %s", update_id)
