"""Telegram's broadcast side: its own Bot (no AIORateLimiter: the broadcast sender paces)."""

from __future__ import annotations

import asyncio
import contextlib
from collections import defaultdict

from telegram import Bot
from telegram.constants import ParseMode
from telegram.error import TelegramError
from telegram.request import HTTPXRequest

from bot.channels import outbound as out
from bot.channels.telegram.outbound import CHANNEL, classify


def make_bot(token: str, base_url: str, base_file_url: str, *, connections: int) -> Bot:
    """A Bot for broadcasts: a connection pool as big as the sender's slots."""
    request = HTTPXRequest(
        connection_pool_size=connections,
        pool_timeout=30.0,
        connect_timeout=10.0,
        read_timeout=30.0,
        write_timeout=30.0,
        media_write_timeout=60.0,
    )
    return Bot(token, base_url=base_url, base_file_url=base_file_url, request=request)


class TelegramBroadcast:
    """Sends broadcast messages; a photo is uploaded once per broadcast, then sent by file id."""

    name = CHANNEL

    def __init__(self, bot: Bot, rate: float) -> None:
        self.bot = bot
        self.broadcast_rate = rate
        self._file_ids: dict[int, str] = {}
        self._upload_locks: dict[int, asyncio.Lock] = defaultdict(asyncio.Lock)
        self._ready = False

    async def start_broadcasts(self) -> None:
        """Initialise the Bot once (PTB needs it before the first call)."""
        if not self._ready:
            await self.bot.initialize()
            self._ready = True

    async def close_broadcasts(self) -> None:
        """Close the Bot's connections."""
        with contextlib.suppress(Exception):  # never initialised, or the network is gone
            await self.bot.shutdown()
        self._ready = False

    async def send_broadcast(
        self, chat_id: str, text: str, photo: bytes | None, broadcast_id: int
    ) -> out.SendOutcome:
        """One broadcast message as HTML (with its photo, when it has one)."""
        try:
            if photo is not None:
                await self._send_photo(broadcast_id, int(chat_id), text, photo)
            else:
                await self.bot.send_message(
                    int(chat_id), text, parse_mode=ParseMode.HTML, disable_web_page_preview=True
                )
        except (TelegramError, OSError) as error:
            return classify(error)
        return out.Sent(None)

    async def _send_photo(
        self, broadcast_id: int, chat_id: int, caption: str, photo: bytes
    ) -> None:
        """Upload the photo once per broadcast and process, then send its file_id."""
        file_id = self._file_ids.get(broadcast_id)
        if file_id is None:
            async with self._upload_locks[broadcast_id]:
                file_id = self._file_ids.get(broadcast_id)
                if file_id is None:
                    message = await self.bot.send_photo(
                        chat_id, photo, caption=caption or None, parse_mode=ParseMode.HTML
                    )
                    if message.photo:
                        self._file_ids[broadcast_id] = message.photo[-1].file_id
                    return
        await self.bot.send_photo(
            chat_id, file_id, caption=caption or None, parse_mode=ParseMode.HTML
        )
