"""Tip records: create from a draft, look up by receipt code, append information."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import update
from sqlmodel import col, func, select
from sqlmodel.ext.asyncio.session import AsyncSession

from bot.services.anonymity import new_short_id
from storage.models import Tip, TipAttachment, TipMessage
from storage.text import fold


@dataclass(frozen=True)
class NewTip:
    """Everything a confirmed draft contributes to a tip."""

    channel: str
    category: str
    urgent: bool
    commune_code: int
    text: str
    location: tuple[float, float] | None
    receipt_hash: str
    reply_route: bytes
    receipt_key_id: str | None = None  # the key id `receipt_hash` was made with


async def create_tip(session: AsyncSession, *, new: NewTip, draft_key: str, now: datetime) -> Tip:
    """Insert the tip and move the draft's files onto it (no commit: the caller's unit of work)."""
    short_id = await _unused_short_id(session)
    tip = Tip(
        short_id=short_id,
        receipt_hash=new.receipt_hash,
        receipt_key_id=new.receipt_key_id,
        channel=new.channel,
        category=new.category,
        urgent=new.urgent,
        commune_code=new.commune_code,
        text=new.text,
        search_text=fold(new.text),
        location_lat=new.location[0] if new.location else None,
        location_lon=new.location[1] if new.location else None,
        created_at=now,
        reply_route=new.reply_route,
    )
    session.add(tip)
    await session.flush()
    await session.exec(
        update(TipAttachment)
        .where(col(TipAttachment.draft_key) == draft_key)
        .values(tip_id=tip.id, draft_key=None)
    )
    return tip


async def _unused_short_id(session: AsyncSession) -> str:
    """Draw short ids until one is free (30 random bits: collisions are rare but possible)."""
    while True:
        candidate = new_short_id()
        taken = (await session.exec(select(Tip.id).where(Tip.short_id == candidate))).first()
        if taken is None:
            return candidate


async def find_by_receipt(session: AsyncSession, receipt_hash: str | Sequence[str]) -> Tip | None:
    """The tip a receipt code opens, if any; give every known key's hash after a key rotation."""
    hashes = [receipt_hash] if isinstance(receipt_hash, str) else list(receipt_hash)
    statement = select(Tip).where(col(Tip.receipt_hash).in_(hashes))
    return (await session.exec(statement)).first()


async def thread(session: AsyncSession, tip_id: int) -> list[TipMessage]:
    """A tip's thread, oldest first."""
    statement = select(TipMessage).where(TipMessage.tip_id == tip_id).order_by(col(TipMessage.id))
    return list((await session.exec(statement)).all())


async def attachment_count(session: AsyncSession, *, tip_id: int) -> int:
    """How many files and locations a tip carries."""
    statement = (
        select(func.count()).select_from(TipAttachment).where(TipAttachment.tip_id == tip_id)
    )
    return (await session.exec(statement)).one()


async def tip_attachment_count(session: AsyncSession, *, tip_id: int) -> int:
    """How many files a sent tip carries (its own and every addition's)."""
    statement = (
        select(func.count()).select_from(TipAttachment).where(TipAttachment.tip_id == tip_id)
    )
    return (await session.exec(statement)).one()


async def draft_attachment_count(session: AsyncSession, *, draft_key: str) -> int:
    """How many files a draft has collected."""
    statement = (
        select(func.count()).select_from(TipAttachment).where(TipAttachment.draft_key == draft_key)
    )
    return (await session.exec(statement)).one()
