"""The audit log: every action on a tip, who, what, when, before and after; refusals too."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from storage.models import AuditEvent, Staff

SYSTEM = "system"


def actor_label(staff: Staff | None) -> str:
    """How an actor appears in the log: a staff name, or "system"."""
    if staff is None:
        return SYSTEM
    return f"{staff.display_name} (#{staff.id})"


def record(
    session: AsyncSession,
    *,
    actor: Staff | str | None,
    action: str,
    now: datetime,
    tip_id: int | None = None,
    before: dict[str, Any] | None = None,
    after: dict[str, Any] | None = None,
    allowed: bool = True,
) -> AuditEvent:
    """Add an audit event to the session (the caller's commit makes it durable with the change)."""
    staff = actor if isinstance(actor, Staff) else None
    label = actor if isinstance(actor, str) else actor_label(staff)
    event = AuditEvent(
        tip_id=tip_id,
        actor_staff_id=staff.id if staff else None,
        actor=label[:120],
        action=action,
        allowed=allowed,
        before=before or {},
        after=after or {},
        created_at=now,
    )
    session.add(event)
    return event


async def events_for_tip(session: AsyncSession, tip_id: int) -> list[AuditEvent]:
    """A tip's audit trail, oldest first."""
    statement = select(AuditEvent).where(AuditEvent.tip_id == tip_id).order_by(col(AuditEvent.id))
    return list((await session.exec(statement)).all())


async def all_events(session: AsyncSession) -> list[AuditEvent]:
    """The whole log, oldest first (for CSV export)."""
    return list((await session.exec(select(AuditEvent).order_by(col(AuditEvent.id)))).all())
