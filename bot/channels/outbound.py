"""What every channel's outbound side speaks: a message to send and the outcome of sending it.

The outbox sender (and the broadcast delivery) resolve a row into an `OutboundMessage` (the
current card text, the kept file's bytes, the post to thread under), hand it to the row's
channel, and act on the `SendOutcome` it answers. Each channel classifies its own platform's
errors and parses its own retry-after once, here in its outcome; the sender knows no platform.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol


@dataclass(frozen=True)
class OutboundFile:
    """A kept (sanitized) file to send as a new upload: a copy, never a forward."""

    content: bytes
    filename: str
    kind: str  # photo, video, voice, audio, animation, document
    mime_type: str = "application/octet-stream"


@dataclass(frozen=True)
class OutboundMessage:
    """One thing to send to one chat, already resolved from its outbox row."""

    chat_id: str
    kind: str = "text"  # text | edit | location | file
    text: str = ""  # in the services' small markup (bold, italic, code, link)
    buttons: tuple[tuple[tuple[str, str], ...], ...] = ()  # rows of (label, data)
    reply_to: str | None = None  # a platform message id to thread under
    edit_message_id: str | None = None
    latitude: float | None = None
    longitude: float | None = None
    file: OutboundFile | None = None
    extra: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Sent:
    """Delivered; `message_id` is the platform's id of what was sent (None when it has none)."""

    message_id: str | None = None


@dataclass(frozen=True)
class RetryAfter:
    """The platform asked us to wait (Telegram 429, Zalo 429): not a failed attempt."""

    seconds: float
    reason: str = "rate limited"


@dataclass(frozen=True)
class Quota:
    """A daily or monthly quota is spent: try again once it renews, not a failed attempt."""

    seconds: float
    reason: str = "quota"


@dataclass(frozen=True)
class WindowClosed:
    """The platform only lets us answer a person who wrote recently (Zalo OA's 7 days)."""

    reason: str


@dataclass(frozen=True)
class Unreachable:
    """The person blocked or unfollowed us, or the chat is gone: never retry this chat."""

    reason: str


@dataclass(frozen=True)
class Broken:
    """The platform refused the request itself (bad markup, too long): retrying cannot help.

    `content` when the message itself is at fault, so every other recipient would get the same
    answer: a broadcast stops instead of failing a million times.
    """

    reason: str
    content: bool = False


@dataclass(frozen=True)
class Transient:
    """Network trouble or a platform outage: retry with backoff."""

    reason: str


SendOutcome = Sent | RetryAfter | Quota | WindowClosed | Unreachable | Broken | Transient


class Outbound(Protocol):
    """A channel's sending side."""

    name: str

    async def send(self, message: OutboundMessage) -> SendOutcome:
        """Send one message and say what happened; never raise for a platform answer."""
        ...


class BroadcastOutbound(Protocol):
    """A channel's broadcast side: one outreach message to one subscriber, at its own pace."""

    name: str
    broadcast_rate: float  # messages per second this platform takes for broadcasts

    async def start_broadcasts(self) -> None:
        """Prepare (log in, open connections) before the first broadcast send."""
        ...

    async def close_broadcasts(self) -> None:
        """Release what start_broadcasts took."""
        ...

    async def send_broadcast(
        self, chat_id: str, text: str, photo: bytes | None, broadcast_id: int
    ) -> SendOutcome:
        """Send one broadcast message (markup text, optional photo); never raise for an answer."""
        ...
