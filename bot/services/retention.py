"""Retention: after N days closed, a tip loses its reply route and its files; figures stay."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import func, update
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from bot.services import audit
from storage.models import OutboxMessage, Tip, TipAttachment, TipStatus


@dataclass(frozen=True)
class PurgeReport:
    """What a purge removed (or would remove, on a dry run)."""

    tips: int
    routes: int
    attachments: int
    attachment_bytes: int


async def purge(session: AsyncSession, *, now: datetime, days: int, dry_run: bool) -> PurgeReport:
    """Remove reply routes and attachment contents of tips closed more than `days` ago."""
    cutoff = now - timedelta(days=days)
    due = select(Tip.id).where(
        Tip.status == TipStatus.CLOSED,
        col(Tip.closed_at) < cutoff,
        col(Tip.purged_at).is_(None),
    )
    tip_ids = [tip_id for tip_id in (await session.exec(due)).all() if tip_id is not None]
    if not tip_ids:
        return PurgeReport(0, 0, 0, 0)
    routes = (
        await session.exec(
            select(func.count())
            .select_from(Tip)
            .where(col(Tip.id).in_(tip_ids), col(Tip.reply_route).is_not(None))
        )
    ).one()
    files, size = (
        await session.exec(
            select(func.count(), func.coalesce(func.sum(TipAttachment.size), 0)).where(
                col(TipAttachment.tip_id).in_(tip_ids), col(TipAttachment.content).is_not(None)
            )
        )
    ).one()
    report = PurgeReport(len(tip_ids), int(routes), int(files), int(size))
    if dry_run:
        return report
    await session.exec(
        update(Tip).where(col(Tip.id).in_(tip_ids)).values(reply_route=None, purged_at=now)
    )
    await session.exec(
        update(TipAttachment).where(col(TipAttachment.tip_id).in_(tip_ids)).values(content=None)
    )
    # A message to the tipster still queued would carry the route: it goes too.
    await session.exec(
        update(OutboxMessage)
        .where(col(OutboxMessage.tip_id).in_(tip_ids), col(OutboxMessage.route).is_not(None))
        .values(route=None, status="dead", last_error="purged by retention")
    )
    for tip_id in tip_ids:
        audit.record(
            session,
            actor=audit.SYSTEM,
            action="purge",
            tip_id=tip_id,
            now=now,
            after={"days": days},
        )
    await session.commit()
    return report
