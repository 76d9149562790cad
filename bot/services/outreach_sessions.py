"""Outreach sessions ("buổi tuyên truyền"): staff create them, attendees check in, summaries.

A session is held in one commune; officers of that commune, outreach staff whose area covers it,
its province's supervisors and admins may create it and record its head count (one rule:
`authorization.allowed(..., Action.SESSION, ...)`, every change and refusal audited). Attendees
check in by the session's QR code (`/start s<id>`, on Zalo "tham dự <id>"): one row per person
and session under a key that names the session, so no check-in joins a tip, a subscription, a
pledge, or the same person's other sessions.
"""

from __future__ import annotations

import html
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal

from sqlalchemy import func
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from bot.i18n import Translator, _
from bot.services import audit, outbox
from bot.services.anonymity import Keyring
from bot.services.authorization import Action, allowed, commune_scope
from storage.models import (
    Commune,
    OutreachSession,
    PledgeCampaign,
    PledgeSignature,
    SessionCheckIn,
    Staff,
)

START_PAYLOAD = "s"  # /start s<id>: the session's QR code
KEY_PREFIX = "checkin:"
DEFAULT_DURATION = timedelta(hours=2)
# People scan on arrival, sometimes early, and some only once they are home.
CHECK_IN_OPENS = timedelta(hours=2)
CHECK_IN_CLOSES = timedelta(hours=12)
MAX_HEAD_COUNT = 100_000
MAX_TEXT = 200

CheckInStatus = Literal["checked_in", "again", "unknown", "not_open", "over"]


class SessionError(Exception):
    """A refusal with a reason code: not_allowed, unknown_session, unknown_commune, bad_value."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class CheckIn:
    """What a check-in did, and the session it was for (None when unknown)."""

    status: CheckInStatus
    outreach: OutreachSession | None


@dataclass(frozen=True)
class SessionSummary:
    """A session's figures: check-ins by QR code, the organiser's head count, pledges signed."""

    outreach: OutreachSession
    check_ins: int
    head_count: int | None
    pledges: int


def attendee_key(keyring: Keyring, channel: str, session_id: int, user_id: str) -> str:
    """The keyed hash of one person at one session."""
    return keyring.user_key(f"{KEY_PREFIX}{channel}:{session_id}", user_id)


def previous_attendee_keys(
    keyring: Keyring, channel: str, session_id: int, user_id: str
) -> list[str]:
    """The same person's key under previous secrets (check-ins made before a key rotation)."""
    return keyring.previous_user_keys(f"{KEY_PREFIX}{channel}:{session_id}", user_id)


async def _province_of(session: AsyncSession, commune_code: int) -> int | None:
    """The province of a commune, None when the commune is unknown."""
    commune = await session.get(Commune, commune_code)
    return commune.province_code if commune else None


async def may_hold(session: AsyncSession, staff: Staff | None, commune_code: int) -> bool:
    """Whether `staff` may create or manage sessions in this commune."""
    province = await _province_of(session, commune_code)
    return province is not None and allowed(
        staff, Action.SESSION, commune_code=commune_code, province_code=province
    )


def _clean(text: str, field: str) -> str:
    """A required one-line text, trimmed; empty or too long is refused."""
    value = " ".join(text.split())
    if not value or len(value) > MAX_TEXT:
        raise SessionError("bad_value")
    return value


async def create_session(
    session: AsyncSession,
    *,
    staff: Staff,
    commune_code: int,
    place: str,
    title: str,
    starts_at: datetime,
    organiser: str,
    now: datetime,
    ends_at: datetime | None = None,
    topic_ids: Sequence[str] = (),
    expected_attendance: int | None = None,
    campaign_id: int | None = None,
) -> OutreachSession:
    """Create a session in a commune `staff` may hold sessions in; audited, committed."""
    where = {"commune": commune_code, "starts_at": starts_at.isoformat()}
    if await _province_of(session, commune_code) is None:
        raise SessionError("unknown_commune")
    if not await may_hold(session, staff, commune_code):
        audit.record(
            session, actor=staff, action="session_create", allowed=False, after=where, now=now
        )
        await session.commit()
        raise SessionError("not_allowed")
    ends = ends_at or starts_at + DEFAULT_DURATION
    if ends <= starts_at or (expected_attendance is not None and expected_attendance < 0):
        raise SessionError("bad_value")
    if campaign_id is not None and await session.get(PledgeCampaign, campaign_id) is None:
        raise SessionError("bad_value")
    outreach = OutreachSession(
        commune_code=commune_code,
        place=_clean(place, "place"),
        title=_clean(title, "title"),
        organiser=_clean(organiser, "organiser"),
        starts_at=starts_at,
        ends_at=ends,
        topic_ids=",".join(topic_ids),
        expected_attendance=expected_attendance,
        campaign_id=campaign_id,
        created_by_staff_id=staff.id,
        created_at=now,
    )
    session.add(outreach)
    await session.flush()  # the audit row names its id
    audit.record(
        session,
        actor=staff,
        action="session_create",
        after={"session": outreach.id, **where},
        now=now,
    )
    await session.commit()
    return outreach


async def _managed(
    session: AsyncSession, staff: Staff | None, session_id: int, action: str, now: datetime
) -> OutreachSession:
    """The session, when `staff` may manage it; else audit the refusal and raise (unknown and
    out of scope give the same error, so ids outside one's area reveal nothing)."""
    outreach = await session.get(OutreachSession, session_id)
    if outreach is None or not await may_hold(session, staff, outreach.commune_code):
        audit.record(
            session,
            actor=staff,
            action=action,
            allowed=False,
            after={"session": session_id},
            now=now,
        )
        await session.commit()
        raise SessionError("unknown_session")
    return outreach


async def record_head_count(
    session: AsyncSession, *, staff: Staff, session_id: int, count: int, now: datetime
) -> OutreachSession:
    """Set the organiser's head count (people counted in the room); audited, committed."""
    outreach = await _managed(session, staff, session_id, "session_head_count", now)
    if not 0 <= count <= MAX_HEAD_COUNT:
        raise SessionError("bad_value")
    before = outreach.head_count
    outreach.head_count = count
    session.add(outreach)
    audit.record(
        session,
        actor=staff,
        action="session_head_count",
        before={"head_count": before},
        after={"session": session_id, "head_count": count},
        now=now,
    )
    await session.commit()
    return outreach


async def cancel_session(
    session: AsyncSession, *, staff: Staff, session_id: int, now: datetime
) -> OutreachSession:
    """Cancel a session (its QR code stops checking people in); audited, committed."""
    outreach = await _managed(session, staff, session_id, "session_cancel", now)
    outreach.cancelled_at = outreach.cancelled_at or now
    session.add(outreach)
    audit.record(
        session, actor=staff, action="session_cancel", after={"session": session_id}, now=now
    )
    await session.commit()
    return outreach


async def check_in(
    session: AsyncSession,
    *,
    session_id: int,
    key: str,
    channel: str,
    now: datetime,
    previous_keys: Sequence[str] = (),
) -> CheckIn:
    """Check one person in (no commit): once per session, while its check-in is open.

    One person's updates are serialised by their draft row, so checking and inserting cannot
    race for the same key.
    """
    outreach = await session.get(OutreachSession, session_id)
    if outreach is None or outreach.cancelled_at is not None:
        return CheckIn("unknown", None)
    existing = (
        await session.exec(
            select(SessionCheckIn.id).where(
                SessionCheckIn.session_id == session_id,
                col(SessionCheckIn.attendee_key).in_([key, *previous_keys]),
            )
        )
    ).first()
    if existing is not None:
        return CheckIn("again", outreach)
    if now < outreach.starts_at - CHECK_IN_OPENS:
        return CheckIn("not_open", outreach)
    if now > outreach.ends_at + CHECK_IN_CLOSES:
        return CheckIn("over", outreach)
    session.add(SessionCheckIn(session_id=session_id, attendee_key=key, channel=channel))
    return CheckIn("checked_in", outreach)


async def summary(session: AsyncSession, outreach: OutreachSession) -> SessionSummary:
    """Check-ins, head count and pledges signed at one session."""
    check_ins = (
        await session.exec(
            select(func.count()).where(col(SessionCheckIn.session_id) == outreach.id)
        )
    ).one()
    signed = (
        await session.exec(
            select(func.count()).where(col(PledgeSignature.session_id) == outreach.id)
        )
    ).one()
    return SessionSummary(outreach, int(check_ins), outreach.head_count, int(signed))


async def visible_sessions(
    session: AsyncSession, *, staff: Staff, limit: int = 20
) -> list[OutreachSession]:
    """The latest sessions `staff` may manage, newest first."""
    statement = (
        select(OutreachSession)
        .where(
            col(OutreachSession.cancelled_at).is_(None),
            commune_scope(staff, Action.SESSION, col(OutreachSession.commune_code)),
        )
        .order_by(col(OutreachSession.starts_at).desc())
        .limit(limit)
    )
    return list((await session.exec(statement)).all())


def summary_text(t: Translator, figures: SessionSummary) -> str:
    """A session's figures as the message its organiser gets once it is over."""
    outreach = figures.outreach
    head_count = (
        t.number(figures.head_count)
        if figures.head_count is not None
        else t.gettext(_("not recorded (send /sessions to add it)"))
    )
    return t.gettext(
        _(
            "📋 <b>Session #{id} is over:</b> {title} ({place}, {when}).\n"
            "Checked in by QR code: {check_ins}\nHead count: {head_count}\n"
            "Pledges signed at the session: {pledges}"
        )
    ).format(
        id=outreach.id,
        title=html.escape(outreach.title),
        place=html.escape(outreach.place),
        when=t.datetime(outreach.starts_at),
        check_ins=t.number(figures.check_ins),
        head_count=head_count,
        pledges=t.number(figures.pledges),
    )


async def queue_summaries(session: AsyncSession, *, t: Translator, now: datetime) -> int:
    """Send each session that has ended its summary, once, to its creator (commits).

    Telegram staff get it in their private chat through the outbox; the others read the same
    figures in /sessions and the reports. Marked sent either way, so it is never repeated.
    """
    ended = (
        await session.exec(
            select(OutreachSession)
            .where(
                col(OutreachSession.ends_at) <= now,
                col(OutreachSession.summary_sent_at).is_(None),
                col(OutreachSession.cancelled_at).is_(None),
            )
            .order_by(col(OutreachSession.id))
            .limit(100)
        )
    ).all()
    queued = 0
    for outreach in ended:
        creator = (
            await session.get(Staff, outreach.created_by_staff_id)
            if outreach.created_by_staff_id is not None
            else None
        )
        if creator is not None and creator.active and creator.platform == "telegram":
            text = summary_text(t, await summary(session, outreach))
            outbox.enqueue(
                session,
                kind="text",
                chat_id=int(creator.platform_user_id),
                now=now,
                payload={"text": text},
            )
            queued += 1
        outreach.summary_sent_at = now
        session.add(outreach)
    await session.commit()
    return queued
