"""Periodic jobs of the bot process."""

from __future__ import annotations

import logging

from telegram import Bot

from bot.handlers.render import send_replies
from bot.services.intake import IntakeService

log = logging.getLogger(__name__)
DRAFT_SWEEP_SECONDS = 60


async def send_draft_expiry_notices(bot: Bot, intake: IntakeService) -> int:
    """Expire silent drafts and tell their owners; return how many were told."""
    notices = await intake.expire_drafts()
    for channel, chat_id, reply in notices:
        if channel == "telegram":
            await send_replies(bot, int(chat_id), [reply])
    return len(notices)
