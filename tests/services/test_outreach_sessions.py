"""Outreach sessions: who may hold them, check-ins once per person, head counts, the report."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlmodel import col, select

from bot.services import outreach_sessions, pledges
from bot.services.anonymity import Keyring
from bot.services.outreach_sessions import SessionError
from bot.services.reports import Period, Scope, build_report
from storage.db import Database
from storage.models import AuditEvent, OutreachSession, SessionCheckIn, Staff, StaffRole
from tests.conftest import FakeClock
from tests.services.test_outreach_scope import KHA_CUU, PHU_THO, add_staff, other_province_commune

KEYRING = Keyring("s" * 32)


async def make_session(db: Database, clock: FakeClock, **extra: object) -> OutreachSession:
    """A session in Khả Cửu starting in an hour, created by the commune's officer."""
    async with db.session() as session:
        officer = (await session.exec(select(Staff).where(Staff.role == StaffRole.OFFICER))).first()
    if officer is None:
        officer = await add_staff(db, StaffRole.OFFICER, commune=KHA_CUU, province=PHU_THO)
    async with db.session() as session:
        return await outreach_sessions.create_session(
            session,
            staff=officer,
            commune_code=KHA_CUU,
            place="Nhà văn hóa thôn Đông",
            title="Phòng, chống ma túy",
            starts_at=clock.now + timedelta(hours=1),
            organiser="Công an xã Khả Cửu",
            now=clock.now,
            **extra,  # type: ignore[arg-type]
        )


async def check_in(db: Database, session_id: int, user: str, now: object) -> str:
    """Check `user` in on Telegram and commit; the status."""
    async with db.session() as session:
        result = await outreach_sessions.check_in(
            session,
            session_id=session_id,
            key=outreach_sessions.attendee_key(KEYRING, "telegram", session_id, user),
            channel="telegram",
            now=now,  # type: ignore[arg-type]
        )
        await session.commit()
    return result.status


async def test_who_may_hold_a_session(db: Database, clock: FakeClock) -> None:
    other_commune, other_province = await other_province_commune(db)
    officer = await add_staff(db, StaffRole.OFFICER, commune=KHA_CUU, province=PHU_THO)
    outreach = await add_staff(db, StaffRole.OUTREACH, commune=None, province=PHU_THO)
    stranger = await add_staff(db, StaffRole.OUTREACH, commune=None, province=other_province)
    details = {
        "place": "Hội trường xã",
        "title": "Phổ biến Luật An ninh mạng",
        "starts_at": clock.now + timedelta(days=1),
        "organiser": "Đoàn thanh niên",
        "now": clock.now,
    }
    async with db.session() as session:
        mine = await outreach_sessions.create_session(
            session, staff=officer, commune_code=KHA_CUU, **details
        )
        provincial = await outreach_sessions.create_session(
            session, staff=outreach, commune_code=KHA_CUU, **details
        )
        for staff, commune in ((officer, other_commune), (stranger, KHA_CUU)):
            with pytest.raises(SessionError) as refused:
                await outreach_sessions.create_session(
                    session, staff=staff, commune_code=commune, **details
                )
            assert refused.value.reason == "not_allowed"
        with pytest.raises(SessionError):  # out of area: the same answer as an unknown id
            await outreach_sessions.record_head_count(
                session, staff=stranger, session_id=mine.id or 0, count=5, now=clock.now
            )
        rows = (await session.exec(select(AuditEvent).order_by(col(AuditEvent.id)))).all()
        listed = await outreach_sessions.visible_sessions(session, staff=stranger)
    assert mine.ends_at - mine.starts_at == outreach_sessions.DEFAULT_DURATION
    assert provincial.id != mine.id and listed == []
    assert [(r.action, r.allowed) for r in rows] == [
        ("session_create", True),
        ("session_create", True),
        ("session_create", False),
        ("session_create", False),
        ("session_head_count", False),
    ]


async def test_one_check_in_per_person_and_session(db: Database, clock: FakeClock) -> None:
    first = await make_session(db, clock)
    second = await make_session(db, clock)
    assert first.id and second.id
    now = clock.now
    assert await check_in(db, first.id, "citizen-1", now) == "checked_in"
    assert await check_in(db, first.id, "citizen-1", now) == "again"
    assert await check_in(db, first.id, "citizen-2", now) == "checked_in"
    assert await check_in(db, second.id, "citizen-1", now) == "checked_in"
    assert await check_in(db, 999_999, "citizen-1", now) == "unknown"
    async with db.session() as session:
        keys = (await session.exec(select(SessionCheckIn.attendee_key))).all()
        figures = await outreach_sessions.summary(
            session,
            await session.get(OutreachSession, first.id),  # type: ignore[arg-type]
        )
    # One person's check-ins at two sessions share no key: attendance cannot be followed.
    assert len(set(keys)) == 3 and figures.check_ins == 2
    assert KEYRING.user_key("telegram", "citizen-1") not in keys


async def test_check_in_window_and_cancelling(db: Database, clock: FakeClock) -> None:
    outreach = await make_session(db, clock, ends_at=clock.now + timedelta(hours=3))
    assert outreach.id
    early = outreach.starts_at - outreach_sessions.CHECK_IN_OPENS - timedelta(minutes=1)
    late = outreach.ends_at + outreach_sessions.CHECK_IN_CLOSES + timedelta(minutes=1)
    assert await check_in(db, outreach.id, "early", early) == "not_open"
    assert await check_in(db, outreach.id, "late", late) == "over"
    assert await check_in(db, outreach.id, "on-time", outreach.ends_at) == "checked_in"
    admin = await add_staff(db, StaffRole.ADMIN, commune=None, province=None)
    async with db.session() as session:
        await outreach_sessions.cancel_session(
            session, staff=admin, session_id=outreach.id, now=clock.now
        )
    assert await check_in(db, outreach.id, "after-cancel", clock.now) == "unknown"


async def test_head_count_and_the_report(db: Database, clock: FakeClock) -> None:
    _, other_province = await other_province_commune(db)
    officer = await add_staff(db, StaffRole.OFFICER, commune=KHA_CUU, province=PHU_THO)
    async with db.session() as session:
        campaign = await pledges.open_campaign(
            session,
            pledge_id="khong_ma_tuy",
            commune_code=KHA_CUU,
            province_code=None,
            staff_id=officer.id,
            now=clock.now,
        )
    outreach = await make_session(db, clock, campaign_id=campaign.id, expected_attendance=80)
    cancelled = await make_session(db, clock)
    assert outreach.id and cancelled.id
    for user in ("a", "b", "c"):
        await check_in(db, outreach.id, user, clock.now)
    await check_in(db, cancelled.id, "d", clock.now)
    async with db.session() as session:
        await outreach_sessions.record_head_count(
            session, staff=officer, session_id=outreach.id, count=41, now=clock.now
        )
        await outreach_sessions.cancel_session(
            session, staff=officer, session_id=cancelled.id, now=clock.now
        )
        await pledges.sign(
            session,
            campaign_id=campaign.id or 0,
            commune_code=KHA_CUU,
            household=None,
            signer_key="k1",
            now=clock.now,
            session_id=outreach.id,
        )
        await session.commit()
        with pytest.raises(SessionError):
            await outreach_sessions.record_head_count(
                session, staff=officer, session_id=outreach.id, count=-1, now=clock.now
            )
        day = clock.now.date()
        period = Period(day - timedelta(days=1), day + timedelta(days=1))
        report = await build_report(
            session, scope=Scope.commune(KHA_CUU), period=period, now=clock.now
        )
        elsewhere = await build_report(
            session, scope=Scope.province(other_province), period=period, now=clock.now
        )
        before = await build_report(
            session,
            scope=Scope.commune(KHA_CUU),
            period=Period(day - timedelta(days=30), day - timedelta(days=2)),
            now=clock.now,
        )
        audit = (
            await session.exec(select(AuditEvent).where(AuditEvent.action == "session_head_count"))
        ).all()
    figures = report.sessions
    assert (figures.held, figures.check_ins, figures.head_counts, figures.pledges) == (1, 3, 41, 1)
    assert figures.attendance == 44
    assert elsewhere.sessions.held == 0 and before.sessions.held == 0
    assert [(a.allowed, a.after.get("head_count")) for a in audit] == [(True, 41)]
