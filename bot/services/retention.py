"""Retention: N days after closing, a tip loses all its content; only the figures stay.

What goes (docs/anonymity.md, "Retention"): the tip's text, search text and location, its reply
route, the text of every thread message (the rows stay: reports count police replies and
citizen answers from them), internal notes, file contents, names and notes (the rows stay: the
card counts files and the console says "deleted by the retention policy"), every outbox row of
the tip not being sent right now, and the inbox posts that map group messages to it except the
card's own (so a police reply to an old card is told the tipster can no longer be reached,
instead of being taken for ordinary group talk). Sent or dead outbox rows with no tip (alerts,
staff messages) older than the cutoff go too, and so do the delivery rows of broadcast runs that
finished before it (which subscriber got which broadcast): the run keeps `sent_count`.

What stays: the tip row's statistics columns (category, commune, channel, urgency, dates,
deadlines, status, valuable, close reason), its short id and receipt hash (the receipt holder is
still told "closed"; `tinbao keys status` lets the receipt's key go once only purged tips use
it), and the audit trail, whose before/after dicts hold codes and counts, never text.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, fields
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, Exists, Select, and_, delete, exists, func, or_, update
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from bot.services import audit
from storage.models import (
    BroadcastRun,
    Delivery,
    InboxPost,
    OutboxMessage,
    Tip,
    TipAttachment,
    TipMessage,
    TipNote,
    TipStatus,
)

# Tips per transaction: a first run on a large database neither holds one huge transaction
# nor loads every id at once.
BATCH_SIZE = 500
# Due tips a report lists (short id, commune, closing date) for the operator to check.
LISTED = 50
# A claimed row is the sender's until it marks it sent or puts it back (the message is going out
# anyway); the next run takes it, so a purge never races the sender's own updates.
IN_FLIGHT = "sending"
# Inbox posts kept after a purge: the card's mapping holds no content (chat, message id, tip),
# and lets a reply to the old card be answered "the tipster can no longer be reached".
KEPT_POST_KINDS = ("card",)
# Outbox rows with no tip that are finished, and may go once older than the cutoff.
FINISHED = ("sent", "dead")


@dataclass(frozen=True)
class DueTip:
    """A tip a purge takes: only what identifies the row to an operator, no content."""

    short_id: str
    commune_code: int
    closed_at: datetime | None


@dataclass(frozen=True)
class PurgeReport:
    """What a purge removed (or would remove, on a dry run)."""

    tips: int = 0
    routes: int = 0
    attachments: int = 0  # files whose content went (their names and notes go with them)
    attachment_bytes: int = 0
    texts: int = 0  # tips whose own text (and search text) was cleared
    locations: int = 0
    messages: int = 0  # thread messages whose text was cleared
    notes: int = 0
    outbox: int = 0  # outbox rows deleted, the tips' and finished ones with no tip
    inbox_posts: int = 0
    deliveries: int = 0  # delivery rows of finished broadcast runs
    listed: tuple[DueTip, ...] = ()  # the first LISTED tips taken, by id

    def __add__(self, other: PurgeReport) -> PurgeReport:
        """Two reports' counts summed; the listing is the first LISTED of both."""
        counts: dict[str, Any] = {
            f.name: getattr(self, f.name) + getattr(other, f.name)
            for f in fields(self)
            if f.name != "listed"
        }
        return PurgeReport(**counts, listed=(self.listed + other.listed)[:LISTED])


def _has(*where: ColumnElement[bool]) -> Exists:
    """EXISTS over a child table, correlated to the tip only: nested in a count over that same
    child table, auto-correlation would bind the child to the outer query instead."""
    return exists().where(*where).correlate(Tip)


def _leftover() -> ColumnElement[bool]:
    """A tip (correlated) still holds content: never purged, purged by an older version that
    kept its text, or given something new after its purge (a citizen's /add, a late post)."""
    tip_id = col(Tip.id)
    return or_(
        col(Tip.purged_at).is_(None),
        col(Tip.text) != "",
        col(Tip.search_text) != "",
        col(Tip.location_lat).is_not(None),
        col(Tip.location_lon).is_not(None),
        col(Tip.reply_route).is_not(None),
        _has(col(TipMessage.tip_id) == tip_id, col(TipMessage.text) != ""),
        _has(col(TipNote.tip_id) == tip_id),
        _has(
            col(TipAttachment.tip_id) == tip_id,
            or_(
                col(TipAttachment.content).is_not(None),
                col(TipAttachment.filename).is_not(None),
                col(TipAttachment.note).is_not(None),
            ),
        ),
        _has(col(OutboxMessage.tip_id) == tip_id, col(OutboxMessage.status) != IN_FLIGHT),
        _has(col(InboxPost.tip_id) == tip_id, col(InboxPost.kind).not_in(KEPT_POST_KINDS)),
    )


def _due(cutoff: datetime) -> ColumnElement[bool]:
    """Closed before the cutoff and holding something to remove."""
    return and_(
        col(Tip.status) == TipStatus.CLOSED,
        col(Tip.closed_at) < cutoff,
        _leftover(),
    )


def _finished_without_tip(cutoff: datetime) -> ColumnElement[bool]:
    """An outbox row with no tip, sent or dead, last touched before the cutoff."""
    return and_(
        col(OutboxMessage.tip_id).is_(None),
        col(OutboxMessage.status).in_(FINISHED),
        or_(
            and_(col(OutboxMessage.sent_at).is_not(None), col(OutboxMessage.sent_at) < cutoff),
            and_(col(OutboxMessage.sent_at).is_(None), col(OutboxMessage.created_at) < cutoff),
        ),
    )


async def _count(session: AsyncSession, table: Any, *where: ColumnElement[bool]) -> int:
    """COUNT(*) of `table`'s rows matching `where`."""
    return int((await session.exec(select(func.count()).select_from(table).where(*where))).one())


async def _measure(session: AsyncSession, ids: Select[Any] | Sequence[int]) -> PurgeReport:
    """Count what purging the tips `ids` (a list, or a subquery of ids) would remove."""
    in_tips = col(Tip.id).in_(ids)
    files, size = (
        await session.exec(
            select(func.count(), func.coalesce(func.sum(TipAttachment.size), 0)).where(
                col(TipAttachment.tip_id).in_(ids), col(TipAttachment.content).is_not(None)
            )
        )
    ).one()
    return PurgeReport(
        tips=await _count(session, Tip, in_tips),
        routes=await _count(session, Tip, in_tips, col(Tip.reply_route).is_not(None)),
        attachments=int(files),
        attachment_bytes=int(size),
        texts=await _count(
            session, Tip, in_tips, or_(col(Tip.text) != "", col(Tip.search_text) != "")
        ),
        locations=await _count(
            session,
            Tip,
            in_tips,
            or_(col(Tip.location_lat).is_not(None), col(Tip.location_lon).is_not(None)),
        ),
        messages=await _count(
            session, TipMessage, col(TipMessage.tip_id).in_(ids), col(TipMessage.text) != ""
        ),
        notes=await _count(session, TipNote, col(TipNote.tip_id).in_(ids)),
        outbox=await _count(
            session,
            OutboxMessage,
            col(OutboxMessage.tip_id).in_(ids),
            col(OutboxMessage.status) != IN_FLIGHT,
        ),
        inbox_posts=await _count(
            session,
            InboxPost,
            col(InboxPost.tip_id).in_(ids),
            col(InboxPost.kind).not_in(KEPT_POST_KINDS),
        ),
    )


async def _listing(session: AsyncSession, where: ColumnElement[bool]) -> tuple[DueTip, ...]:
    """The first LISTED tips matching `where`, by id."""
    rows = await session.exec(
        select(Tip.short_id, Tip.commune_code, Tip.closed_at)
        .where(where)
        .order_by(col(Tip.id))
        .limit(LISTED)
    )
    return tuple(DueTip(short_id, commune, closed) for short_id, commune, closed in rows.all())


async def _strip(session: AsyncSession, tip_ids: list[int], *, now: datetime, days: int) -> None:
    """Remove the content of these tips (no commit)."""
    await session.exec(
        update(Tip)
        .where(col(Tip.id).in_(tip_ids))
        .values(text="", search_text="", location_lat=None, location_lon=None, reply_route=None)
    )
    # The first purge's date stays when a tip is purged again (content added after it).
    await session.exec(
        update(Tip)
        .where(col(Tip.id).in_(tip_ids), col(Tip.purged_at).is_(None))
        .values(purged_at=now)
    )
    await session.exec(
        update(TipMessage)
        .where(col(TipMessage.tip_id).in_(tip_ids), col(TipMessage.text) != "")
        .values(text="")
    )
    await session.exec(delete(TipNote).where(col(TipNote.tip_id).in_(tip_ids)))
    await session.exec(
        update(TipAttachment)
        .where(col(TipAttachment.tip_id).in_(tip_ids))
        .values(content=None, filename=None, note=None)
    )
    # Payloads carry the card and the tip's text; a row still queued to the tipster carries the
    # route. Nothing of a tip closed this long ago is worth sending any more.
    await session.exec(
        delete(OutboxMessage).where(
            col(OutboxMessage.tip_id).in_(tip_ids), col(OutboxMessage.status) != IN_FLIGHT
        )
    )
    await session.exec(
        delete(InboxPost).where(
            col(InboxPost.tip_id).in_(tip_ids), col(InboxPost.kind).not_in(KEPT_POST_KINDS)
        )
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


async def purge(
    session: AsyncSession,
    *,
    now: datetime,
    days: int,
    dry_run: bool,
    batch_size: int = BATCH_SIZE,
) -> PurgeReport:
    """Remove the content of tips closed more than `days` ago, one transaction per batch."""
    if batch_size < 1:
        raise ValueError("batch_size must be at least 1")
    cutoff = now - timedelta(days=days)
    due = _due(cutoff)
    if dry_run:
        report = await _measure(session, select(Tip.id).where(due))
        orphans = await _count(session, OutboxMessage, _finished_without_tip(cutoff))
        listed = await _listing(session, due)
        deliveries = await count_due_deliveries(session, cutoff)
        return report + PurgeReport(outbox=orphans, listed=listed, deliveries=deliveries)
    report = PurgeReport()
    last = 0
    # Keyset pages (id > last): one pass over the due tips, so the loop ends even if a tip
    # gets new content while it runs (the next daily run takes that).
    while True:
        tip_ids = list(
            (
                await session.exec(
                    select(Tip.id)
                    .where(due, col(Tip.id) > last)
                    .order_by(col(Tip.id))
                    .limit(batch_size)
                )
            ).all()
        )
        ids = [tip_id for tip_id in tip_ids if tip_id is not None]
        if not ids:
            break
        last = ids[-1]
        listed = (
            await _listing(session, col(Tip.id).in_(ids)) if len(report.listed) < LISTED else ()
        )
        batch = await _measure(session, ids)
        await _strip(session, ids, now=now, days=days)
        await session.commit()
        report = report + batch + PurgeReport(listed=listed)
    last = 0
    while True:
        outbox_ids = [
            row_id
            for row_id in (
                await session.exec(
                    select(OutboxMessage.id)
                    .where(_finished_without_tip(cutoff), col(OutboxMessage.id) > last)
                    .order_by(col(OutboxMessage.id))
                    .limit(batch_size)
                )
            ).all()
            if row_id is not None
        ]
        if not outbox_ids:
            break
        last = outbox_ids[-1]
        await session.exec(delete(OutboxMessage).where(col(OutboxMessage.id).in_(outbox_ids)))
        await session.commit()
        report = report + PurgeReport(outbox=len(outbox_ids))
    return report + await _purge_deliveries(session, cutoff, batch_size)


def _finished_runs(cutoff: datetime) -> ColumnElement[bool]:
    """Broadcast runs done before the cutoff whose delivery rows are still there."""
    return and_(
        col(BroadcastRun.status) == "done",
        col(BroadcastRun.finished_at) < cutoff,
        col(BroadcastRun.sent_count).is_(None),
    )


async def count_due_deliveries(session: AsyncSession, cutoff: datetime) -> int:
    """Delivery rows a purge with this cutoff would delete (for --dry-run)."""
    runs = select(BroadcastRun.id).where(_finished_runs(cutoff))
    return await _count(session, Delivery, col(Delivery.run_id).in_(runs))


async def _purge_deliveries(
    session: AsyncSession, cutoff: datetime, batch_size: int
) -> PurgeReport:
    """Delete finished runs' delivery rows, keeping each run's sent count (one run per commit:
    a run's count and the deletion of its rows go together)."""
    deleted = 0
    while True:
        run_ids = list(
            (
                await session.exec(
                    select(BroadcastRun.id)
                    .where(_finished_runs(cutoff))
                    .order_by(col(BroadcastRun.id))
                    .limit(batch_size)
                )
            ).all()
        )
        if not run_ids:
            return PurgeReport(deliveries=deleted)
        for run_id in run_ids:
            sent = await _count(
                session, Delivery, col(Delivery.run_id) == run_id, col(Delivery.status) == "sent"
            )
            await session.exec(
                update(BroadcastRun).where(col(BroadcastRun.id) == run_id).values(sent_count=sent)
            )
            result = await session.exec(delete(Delivery).where(col(Delivery.run_id) == run_id))
            deleted += int(result.rowcount or 0)
            await session.commit()
