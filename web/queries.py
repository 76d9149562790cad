"""What the console reads: the inbox list (filters, folded-text search, deadline order), a tip.

Every query is cut to the reader's scope by `authorization.tip_scope`, the SQL form of the
same rule that decides a Telegram button, so a list or a search never names a tip the reader
could not open.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import case, func, literal_column, or_
from sqlalchemy import select as sa_select
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from bot.services.authorization import tip_scope
from storage.models import (
    AuditEvent,
    Commune,
    Province,
    Staff,
    Tip,
    TipAttachment,
    TipMessage,
    TipNote,
    TipStatus,
)
from storage.text import fold

PAGE_SIZE = 50
MAX_QUERY_CHARS = 100


@dataclass(frozen=True)
class InboxFilter:
    """The list's filters, as parsed from the query string (all optional)."""

    status: str = "open"  # "open" (not closed, the default), "" (all), or one status
    category: str = ""
    urgent: bool = False
    valuable: str = ""  # "" | "yes" | "no" | "unset"
    overdue: bool = False
    commune: int | None = None
    date_from: date | None = None
    date_to: date | None = None
    q: str = ""
    sort: str = "deadline"  # "deadline" | "newest"
    page: int = 0

    @classmethod
    def parse(cls, params: Any) -> InboxFilter:
        """Read filters from a query string, ignoring what does not parse."""

        def day(name: str) -> date | None:
            try:
                return date.fromisoformat(params.get(name, ""))
            except ValueError:
                return None

        def number(name: str) -> int | None:
            value = params.get(name, "")
            return int(value) if value.isdigit() and len(value) < 10 else None

        status = params.get("status", "open")
        return cls(
            status=status if status in (*TipStatus.ALL, "open") else "",
            category=params.get("category", "")[:40],
            urgent=params.get("urgent") == "1",
            valuable=v if (v := params.get("valuable", "")) in ("yes", "no", "unset") else "",
            overdue=params.get("overdue") == "1",
            commune=number("commune"),
            date_from=day("from"),
            date_to=day("to"),
            q=params.get("q", "")[:MAX_QUERY_CHARS],
            sort="newest" if params.get("sort") == "newest" else "deadline",
            page=min(number("page") or 0, 10_000),
        )


@dataclass(frozen=True)
class TipRow:
    """One line of the list: no tip text (opening a tip is the audited view of its content)."""

    id: int
    short_id: str
    category: str
    urgent: bool
    status: str
    valuable: bool | None
    commune_name: str
    created_at: datetime
    due_at: datetime | None


@dataclass
class TipPage:
    """Everything the tip page shows."""

    tip: Tip
    commune: Commune | None
    province: Province | None
    messages: list[TipMessage]
    attachments: list[TipAttachment]
    notes: list[tuple[TipNote, str]]
    history: list[AuditEvent] = field(default_factory=list)


# Literals, not bound parameters: PostgreSQL (and SQLite) use the index `ix_tip_open_due` only
# for the very expression and predicate it was made with (migration 0009).
_NEW: Any = literal_column("'new'")
_CLOSED: Any = literal_column("'closed'")


def _next_due() -> Any:
    """The deadline that matters now: acknowledging a new tip, else closing it."""
    return case((col(Tip.status) == _NEW, col(Tip.ack_due_at)), else_=col(Tip.close_due_at))


def _escape_like(text: str) -> str:
    """A LIKE pattern matching `text` literally anywhere."""
    return "%" + text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"


async def list_tips(
    session: AsyncSession, *, staff: Staff, wanted: InboxFilter, now: datetime, timezone: str
) -> tuple[list[TipRow], bool]:
    """One page of the reader's tips matching the filters, and whether more follow."""
    due = _next_due()
    # sqlalchemy's select: sqlmodel's is typed for at most four columns.
    statement: Any = (
        sa_select(
            col(Tip.id),
            col(Tip.short_id),
            col(Tip.category),
            col(Tip.urgent),
            col(Tip.status),
            col(Tip.valuable),
            col(Commune.name),
            col(Tip.created_at),
            due,
        )
        .join(Commune, col(Commune.code) == col(Tip.commune_code))
        .where(tip_scope(staff))
    )
    if wanted.status == "open":
        statement = statement.where(col(Tip.status) != _CLOSED)
    elif wanted.status:
        statement = statement.where(col(Tip.status) == wanted.status)
    if wanted.category:
        statement = statement.where(col(Tip.category) == wanted.category)
    if wanted.urgent:
        statement = statement.where(col(Tip.urgent).is_(True))
    if wanted.valuable == "yes":
        statement = statement.where(col(Tip.valuable).is_(True))
    elif wanted.valuable == "no":
        statement = statement.where(col(Tip.valuable).is_(False))
    elif wanted.valuable == "unset":
        statement = statement.where(col(Tip.valuable).is_(None))
    if wanted.overdue:
        statement = statement.where(col(Tip.status) != TipStatus.CLOSED, due <= now)
    if wanted.commune is not None:
        statement = statement.where(col(Tip.commune_code) == wanted.commune)
    zone = ZoneInfo(timezone)
    if wanted.date_from is not None:
        start = datetime.combine(wanted.date_from, time.min, zone)
        statement = statement.where(col(Tip.created_at) >= start)
    if wanted.date_to is not None:
        end = datetime.combine(wanted.date_to + timedelta(days=1), time.min, zone)
        statement = statement.where(col(Tip.created_at) < end)
    folded = fold(wanted.q)
    if folded:
        pattern = _escape_like(folded)
        by_id = col(Tip.short_id) == wanted.q.strip().upper()
        statement = statement.where(or_(col(Tip.search_text).like(pattern, escape="\\"), by_id))
    if wanted.sort == "newest":
        statement = statement.order_by(col(Tip.created_at).desc(), col(Tip.id).desc())
    elif wanted.status == "open":  # the default view: one walk of ix_tip_open_due
        statement = statement.order_by(due, col(Tip.id))
    else:
        # Open tips by their next deadline; closed ones (no deadline that matters) last.
        closed_last = case((col(Tip.status) == _CLOSED, 1), else_=0)
        statement = statement.order_by(closed_last, due, col(Tip.id))
    statement = statement.offset(wanted.page * PAGE_SIZE).limit(PAGE_SIZE + 1)
    rows = [TipRow(*row) for row in (await session.exec(statement)).all()]
    return rows[:PAGE_SIZE], len(rows) > PAGE_SIZE


async def scoped_tip(session: AsyncSession, *, staff: Staff, tip_id: int) -> Tip | None:
    """The tip if it exists and is in the reader's scope (None either way: no oracle)."""
    statement = select(Tip).where(col(Tip.id) == tip_id, tip_scope(staff))
    return (await session.exec(statement)).first()


async def tip_page(session: AsyncSession, *, tip: Tip) -> TipPage:
    """The thread, files, internal notes and history of a tip the reader may open."""
    commune = await session.get(Commune, tip.commune_code)
    province = await session.get(Province, commune.province_code) if commune else None
    messages = await session.exec(
        select(TipMessage).where(TipMessage.tip_id == tip.id).order_by(col(TipMessage.id))
    )
    files = await session.exec(
        select(TipAttachment)
        .where(TipAttachment.tip_id == tip.id)
        .order_by(col(TipAttachment.position), col(TipAttachment.id))
    )
    notes = await session.exec(
        select(TipNote, Staff.display_name)
        .join(Staff, col(Staff.id) == col(TipNote.staff_id))
        .where(TipNote.tip_id == tip.id)
        .order_by(col(TipNote.id))
    )
    history = await session.exec(
        select(AuditEvent)
        .where(AuditEvent.tip_id == tip.id, col(AuditEvent.action) != "view")
        .order_by(col(AuditEvent.id))
    )
    return TipPage(
        tip=tip,
        commune=commune,
        province=province,
        messages=list(messages.all()),
        attachments=list(files.all()),
        notes=[(note, name) for note, name in notes.all()],
        history=list(history.all()),
    )


async def versions(session: AsyncSession, *, staff: Staff, tip_id: int | None) -> dict[str, int]:
    """Counters that change when the reader's list (or one tip's page) should be redrawn."""
    newest_tip = (await session.exec(select(func.max(Tip.id)).where(tip_scope(staff)))).one()
    changes = select(func.max(AuditEvent.id)).where(col(AuditEvent.action) != "view")
    if tip_id is not None:
        changes = changes.where(AuditEvent.tip_id == tip_id)
    found = {"tips": int(newest_tip or 0), "changes": int((await session.exec(changes)).one() or 0)}
    if tip_id is not None:
        newest_message = (
            await session.exec(select(func.max(TipMessage.id)).where(TipMessage.tip_id == tip_id))
        ).one()
        found["messages"] = int(newest_message or 0)
    return found
