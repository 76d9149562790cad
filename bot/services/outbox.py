"""Writing to the outbox: messages that must reach someone, committed with their cause."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from bot.services.anonymity import Keyring, RouteError
from bot.services.steps import Reply
from storage.models import OutboxMessage

# A row the platform would not deliver until the citizen writes again (Zalo OA's 7 days).
HELD = "held"


def buttons_payload(reply: Reply, prefix: str) -> list[list[dict[str, str]]]:
    """Choices as button rows whose data is `prefix` + value (the channel encodes them)."""
    return [
        [{"label": choice.label, "data": f"{prefix}{choice.value}"} for choice in row]
        for row in reply.choices
    ]


def enqueue(
    session: AsyncSession,
    *,
    kind: str,
    now: datetime,
    payload: dict[str, Any],
    chat_id: int | None = None,
    route: bytes | None = None,
    tip_id: int | None = None,
    inbox_id: int | None = None,
) -> OutboxMessage:
    """Add an outbox row to the session; it is sent only once the caller commits."""
    if (chat_id is None) == (route is None):
        raise ValueError("an outbox message needs exactly one of chat_id and route")
    message = OutboxMessage(
        kind=kind,
        chat_id=chat_id,
        route=route,
        tip_id=tip_id,
        inbox_id=inbox_id,
        payload=payload,
        next_attempt_at=now,
        created_at=now,
    )
    session.add(message)
    return message


async def release_held(
    session: AsyncSession, keyring: Keyring, *, channel: str, chat_id: str, now: datetime
) -> int:
    """The citizen wrote again: send what waited for them (Zalo OA's 7-day window); no commit.

    Held rows are few (only those the platform refused for the window), so each one's route is
    decrypted and compared here rather than stored in a joinable form.
    """
    held = (
        await session.exec(
            select(OutboxMessage).where(
                OutboxMessage.status == HELD, col(OutboxMessage.route).is_not(None)
            )
        )
    ).all()
    released = 0
    for row in held:
        try:
            opened = keyring.decrypt_route(row.route or b"")
        except RouteError:
            continue
        if opened == (channel, chat_id):
            row.status = "pending"
            row.next_attempt_at = now
            row.last_error = None
            session.add(row)
            released += 1
    return released
