"""Zalo Bot Platform updates -> citizen events.

An update is `{"event_name": "message.text.received", "message": {...}}`; the documentation
wraps it as `{"ok": true, "result": {...}}` and real webhook traffic sends it bare, so both are
taken. `message` has `message_id`, `from{id, display_name}`, `chat{id, chat_type}`, `date` (ms),
and `text`, or `photo_url`/`caption` for an image, or `sticker`.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from typing import Any

from bot.channels.conversation import Inbound
from bot.channels.keywords import parse_text
from bot.channels.zalo_bot.client import ZaloBotClient
from bot.services.events import Event, Media, Unsupported
from bot.services.media import MediaRejected, sanitize

log = logging.getLogger(__name__)

TEXT = "message.text.received"
IMAGE = "message.image.received"
STICKER = "message.sticker.received"
UNSUPPORTED = "message.unsupported.received"
# Far beyond any real message; bounds what a forged or broken payload can make us hold.
MAX_TEXT = 20_000


@dataclass(frozen=True)
class ParsedUpdate:
    """What an update carries before any download: ids in memory only."""

    message_id: str
    user_id: str
    chat_id: str
    private: bool
    event_name: str
    message: dict[str, Any]


def unwrap(body: Any) -> dict[str, Any] | None:
    """The update inside a webhook body or a getUpdates result; None when there is none."""
    if not isinstance(body, dict):
        return None
    if "event_name" not in body and isinstance(body.get("result"), dict):
        body = body["result"]
    return body if isinstance(body.get("event_name"), str) else None


def parse(update: dict[str, Any]) -> ParsedUpdate | None:
    """The ids and kind of an update; None when it has no sender to answer."""
    message = update.get("message")
    if not isinstance(message, dict):
        return None
    sender = _object(message.get("from"))
    chat = _object(message.get("chat"))
    if sender.get("is_bot"):
        return None  # never talk to another bot (or to ourselves)
    user_id = str(sender.get("id") or chat.get("id") or "")
    chat_id = str(chat.get("id") or user_id)
    if not user_id:
        return None
    return ParsedUpdate(
        message_id=str(message.get("message_id") or ""),
        user_id=user_id,
        chat_id=chat_id,
        private=str(chat.get("chat_type") or "PRIVATE").upper() == "PRIVATE",
        event_name=str(update["event_name"]),
        message=message,
    )


def _object(value: Any) -> dict[str, Any]:
    """A JSON object, or an empty one for anything else."""
    return value if isinstance(value, dict) else {}


async def to_inbound(parsed: ParsedUpdate, client: ZaloBotClient, max_bytes: int) -> Inbound:
    """The citizen event an update stands for (an image is downloaded and sanitized here)."""
    event: Event | Any
    message = parsed.message
    if parsed.event_name == TEXT and isinstance(message.get("text"), str):
        event = parse_text(message["text"][:MAX_TEXT])
        kind = "text"
    elif parsed.event_name == IMAGE:
        event = await _image(message, client, max_bytes)
        kind = "image"
    elif parsed.event_name == STICKER:
        event, kind = Unsupported(kind="sticker"), "sticker"
    else:
        event, kind = Unsupported(kind="unsupported"), "unsupported"
    return Inbound(user_id=parsed.user_id, chat_id=parsed.chat_id, event=event, kind=kind)


async def _image(message: dict[str, Any], client: ZaloBotClient, max_bytes: int) -> Event:
    """Download the image the update points at and strip its metadata."""
    url = message.get("photo_url") or message.get("photo") or message.get("url")
    if not isinstance(url, str) or not url.startswith(("http://", "https://")):
        return Unsupported(kind="media_rejected")
    try:
        data = await client.download(url, max_bytes)
    except ValueError:
        return Unsupported(kind="too_big")
    try:
        # Re-encoding is CPU work: keep it off the event loop so other citizens are not held up.
        clean = await asyncio.to_thread(
            sanitize, data, kind="photo", mime_type="image/jpeg", filename=None
        )
    except MediaRejected:
        return Unsupported(kind="media_rejected")
    caption = message.get("caption")
    return Media(
        kind=clean.kind,
        data=clean.data,
        mime_type=clean.mime_type,
        filename=clean.filename,
        caption=caption[:MAX_TEXT] if isinstance(caption, str) else None,
        note=clean.note,
    )
