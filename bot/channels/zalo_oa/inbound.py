"""Zalo OA webhook events -> citizen events.

An event is `{"app_id", "event_name", "timestamp" (ms, a string), "sender": {"id"},
"recipient": {"id"}, "message": {"msg_id", "text", "attachments": [...]}}`; `follow` and
`unfollow` carry `follower.id` instead. `oa_send_*` events echo what the OA itself sent and are
ignored, as are delivery and read receipts.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
from dataclasses import dataclass
from typing import Any

from bot.channels.conversation import Inbound
from bot.channels.keywords import parse_text
from bot.channels.zalo_oa.client import ZaloOaClient
from bot.services.events import Event, Location, Media, Start, Text, Unsupported
from bot.services.media import MediaRejected, sanitize

MAX_TEXT = 20_000
# Attachment type -> (media kind, the MIME type we assume when Zalo gives none).
_MEDIA = {
    "image": ("photo", "image/jpeg"),
    "gif": ("animation", "image/gif"),
    "file": ("document", "application/octet-stream"),
    "audio": ("voice", "audio/aac"),
    "video": ("video", "video/mp4"),
}


def signature_ok(app_id: str, body: bytes, timestamp: str, secret: str, header: str) -> bool:
    """Whether `X-ZEvent-Signature` is mac=sha256(app_id + body + timestamp + OA secret key)."""
    digest = hashlib.sha256(app_id.encode() + body + timestamp.encode() + secret.encode())
    expected = ("mac=" + digest.hexdigest()).encode()
    return hmac.compare_digest(header.strip().encode(), expected)


@dataclass(frozen=True)
class ParsedEvent:
    """The ids and kind of an event; ids are in memory only."""

    event_name: str
    user_id: str
    message_id: str
    message: dict[str, Any]


def parse(event: dict[str, Any]) -> ParsedEvent | None:
    """The citizen an event is from; None for the OA's echoes and receipts."""
    name = str(event.get("event_name") or "")
    if name in ("follow", "unfollow"):
        follower = _object(event.get("follower"))
        user_id = str(follower.get("id") or "")
        stamp = str(event.get("timestamp") or "")
        return ParsedEvent(name, user_id, f"{name}:{user_id}:{stamp}", {}) if user_id else None
    if not name.startswith("user_send_"):
        return None  # oa_send_* (our own messages), user_received_message, user_seen_message...
    user_id = str(_object(event.get("sender")).get("id") or "")
    message = _object(event.get("message"))
    if not user_id:
        return None
    return ParsedEvent(name, user_id, str(message.get("msg_id") or ""), message)


def _object(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


async def to_inbound(parsed: ParsedEvent, client: ZaloOaClient, max_bytes: int) -> Inbound:
    """The citizen event a webhook event stands for (files downloaded and sanitized here)."""
    kind = parsed.event_name.removeprefix("user_send_")
    event = await _event(parsed, client, max_bytes)
    return Inbound(user_id=parsed.user_id, chat_id=parsed.user_id, event=event, kind=kind)


async def _event(parsed: ParsedEvent, client: ZaloOaClient, max_bytes: int) -> Any:
    message = parsed.message
    text = message.get("text") if isinstance(message.get("text"), str) else None
    if parsed.event_name == "follow":
        return Start()
    if parsed.event_name == "user_send_text" and text is not None:
        return parse_text(text[:MAX_TEXT])
    attachments = [a for a in message.get("attachments") or [] if isinstance(a, dict)]
    first = attachments[0] if attachments else {}
    kind = str(first.get("type") or "")
    payload = _object(first.get("payload"))
    if kind == "location":
        coordinates = _object(payload.get("coordinates"))
        try:
            return Location(float(coordinates["latitude"]), float(coordinates["longitude"]))
        except (KeyError, TypeError, ValueError):
            return Unsupported(kind="other")
    if kind == "link":
        return Text(text=str(text or payload.get("url") or "")[:MAX_TEXT])
    if kind in _MEDIA:
        return await _media(kind, payload, text, client, max_bytes)
    if kind == "sticker":
        return Unsupported(kind="sticker")
    if kind == "business_card":
        return Unsupported(kind="contact")
    return Unsupported(kind="other")


async def _media(
    kind: str, payload: dict[str, Any], caption: str | None, client: ZaloOaClient, max_bytes: int
) -> Event:
    """Download a file the event points at and strip what metadata can be stripped."""
    url = payload.get("url")
    if not isinstance(url, str) or not url.startswith(("http://", "https://")):
        return Unsupported(kind="media_rejected")
    size = str(payload.get("size") or "")
    if size.isdigit() and int(size) > max_bytes:
        return Unsupported(kind="too_big")
    try:
        data = await client.download(url, max_bytes)
    except ValueError:
        return Unsupported(kind="too_big")
    media_kind, mime_type = _MEDIA[kind]
    filename = payload.get("name") if isinstance(payload.get("name"), str) else None
    try:
        clean = await asyncio.to_thread(
            sanitize, data, kind=media_kind, mime_type=mime_type, filename=filename
        )
    except MediaRejected:
        return Unsupported(kind="media_rejected")
    return Media(
        kind=clean.kind,
        data=clean.data,
        mime_type=clean.mime_type,
        filename=clean.filename,
        caption=caption[:MAX_TEXT] if caption else None,
        note=clean.note,
    )
