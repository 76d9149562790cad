"""Outreach subscriptions: a commune and optional topics, kept apart from anything about tips."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import delete
from sqlmodel import select
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


async def current(session: AsyncSession, key: str) -> Subscription | None:
    """A citizen's active subscription, if any."""
    subscriber = (await session.exec(select(Subscriber).where(Subscriber.key == key))).first()
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
) -> Subscriber:
    """Create or replace a citizen's subscription (no commit)."""
    commune = await session.get(Commune, commune_code)
    if commune is None:
        raise ValueError("unknown commune")
    subscriber = (await session.exec(select(Subscriber).where(Subscriber.key == key))).first()
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


async def unsubscribe(session: AsyncSession, key: str) -> bool:
    """Remove a citizen's subscription entirely (no commit); False when there was none."""
    subscriber = (await session.exec(select(Subscriber).where(Subscriber.key == key))).first()
    if subscriber is None or subscriber.id is None:
        return False
    await session.exec(
        delete(SubscriptionTopic).where(SubscriptionTopic.subscriber_id == subscriber.id)  # type: ignore[arg-type]
    )
    # Deliveries reference the row, so it is deactivated and its route dropped, not deleted.
    subscriber.active = False
    subscriber.route = b""
    session.add(subscriber)
    return True
