"""Outreach subscriptions: a commune and optional topics, kept apart from anything about tips."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import delete
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from bot.services.anonymity import Keyring
from storage.models import Commune, Subscriber, SubscriptionTopic

# A different HMAC input from drafts and flood counters: the same person's subscriber key and
# their draft key cannot be matched without the server secret.
KEY_PREFIX = "subscriber:"


@dataclass(frozen=True)
class Subscription:
    """What a citizen is subscribed to."""

    commune_code: int
    topics: tuple[str, ...]  # empty: every topic


def subscriber_key(keyring: Keyring, channel: str, user_id: int | str) -> str:
    """The key of a citizen's subscription."""
    return keyring.user_key(KEY_PREFIX + channel, user_id)


def previous_subscriber_keys(keyring: Keyring, channel: str, user_id: int | str) -> list[str]:
    """The same citizen's subscription key under each previous secret (before a key rotation)."""
    return keyring.previous_user_keys(KEY_PREFIX + channel, user_id)


async def _find(session: AsyncSession, key: str, previous_keys: Sequence[str]) -> list[Subscriber]:
    """A citizen's subscriber rows: the one under the current key first, then older ones."""
    keys = [key, *previous_keys]
    rows = (await session.exec(select(Subscriber).where(col(Subscriber.key).in_(keys)))).all()
    return sorted(rows, key=lambda row: (keys.index(row.key), not row.active))


async def current(
    session: AsyncSession, key: str, *, previous_keys: Sequence[str] = ()
) -> Subscription | None:
    """A citizen's active subscription, if any (also under `previous_keys`, after a rotation)."""
    found = await _find(session, key, previous_keys)
    subscriber = next((row for row in found if row.active), None)
    if subscriber is None or not subscriber.active or subscriber.id is None:
        return None
    topics = (
        await session.exec(
            select(SubscriptionTopic.topic_id).where(
                SubscriptionTopic.subscriber_id == subscriber.id
            )
        )
    ).all()
    return Subscription(subscriber.commune_code, tuple(sorted(topics)))


async def subscribe(
    session: AsyncSession,
    *,
    key: str,
    channel: str,
    route: bytes,
    commune_code: int,
    topics: list[str],
    locale: str,
    now: datetime,
    previous_keys: Sequence[str] = (),
) -> Subscriber:
    """Create or replace a citizen's subscription (no commit)."""
    commune = await session.get(Commune, commune_code)
    if commune is None:
        raise ValueError("unknown commune")
    found = await _find(session, key, previous_keys)
    subscriber = found[0] if found else None
    if subscriber is not None and subscriber.key != key:
        # Found under a previous secret: the citizen is here, so re-key the row now (key
        # rotation; nothing under the current key, or `found` would start with it).
        subscriber.key = key
    for extra in found[1:]:
        # Two rows for one person (under two secrets) would get every broadcast twice.
        extra.active = False
        extra.route = b""
        session.add(extra)
    if subscriber is None:
        subscriber = Subscriber(
            key=key,
            channel=channel,
            route=route,
            commune_code=commune_code,
            province_code=commune.province_code,
            created_at=now,
        )
    subscriber.route = route
    subscriber.commune_code = commune_code
    subscriber.province_code = commune.province_code
    subscriber.locale = locale
    subscriber.active = True
    subscriber.blocked_at = None
    session.add(subscriber)
    await session.flush()
    assert subscriber.id is not None
    await session.exec(
        delete(SubscriptionTopic).where(SubscriptionTopic.subscriber_id == subscriber.id)  # type: ignore[arg-type]
    )
    for topic in sorted(set(topics)):
        session.add(SubscriptionTopic(subscriber_id=subscriber.id, topic_id=topic))
    return subscriber


async def unsubscribe(
    session: AsyncSession, key: str, *, previous_keys: Sequence[str] = ()
) -> bool:
    """Remove a citizen's subscription entirely (no commit); False when there was none.

    Rows under `previous_keys` go too: an unsubscribe must hold even before `tinbao keys
    rotate` has re-keyed the citizen's row.
    """
    found = [row for row in await _find(session, key, previous_keys) if row.id is not None]
    if not found:
        return False
    for subscriber in found:
        await session.exec(
            delete(SubscriptionTopic).where(SubscriptionTopic.subscriber_id == subscriber.id)  # type: ignore[arg-type]
        )
        # Deliveries reference the row, so it is deactivated and its route dropped, not deleted.
        subscriber.active = False
        subscriber.route = b""
        session.add(subscriber)
    return True
