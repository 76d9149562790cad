"""Outreach staff are scoped to where they were enrolled, and every outreach change is audited.

Review (issue 13): any outreach staff member could broadcast to the whole country, mark one
urgent, pause or cancel anyone's broadcast and open a campaign anywhere, with no audit row.
"""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlmodel import col, select

from bot.content.library import pledges as pledge_templates
from bot.services import outreach_control
from bot.services.broadcasts import BroadcastError, BroadcastSpec
from bot.services.pledges import PledgeError
from storage import communes
from storage.db import Database
from storage.models import AuditEvent, Broadcast, Staff, StaffRole, Subscriber
from tests.conftest import FakeClock

KHA_CUU = 8635
PHU_THO = 25
TZ = "Asia/Ho_Chi_Minh"
NO_QUIET = (0, 0)


def spec(audience: str, code: int | None = None, *, urgent: bool = False) -> BroadcastSpec:
    """A plain text broadcast sent now."""
    return BroadcastSpec(
        topic_id=None,
        text="Họp dân tối thứ Bảy.",
        photo=None,
        audience=audience,
        audience_code=code,
        audience_topic=None,
        trigger="now",
        run_at=None,
        cron=None,
        urgent=urgent,
    )


async def other_province_commune(db: Database) -> tuple[int, int]:
    """A commune (and its province) outside Phú Thọ."""
    async with db.session() as session:
        found = await communes.search_communes(session, "hoan kiem")
    choice = next(c for c in found if c.province_code != PHU_THO)
    return choice.code, choice.province_code


async def add_staff(db: Database, role: str, *, commune: int | None, province: int | None) -> Staff:
    """An enrolled staff member (invented name)."""
    async with db.session() as session:
        staff = Staff(
            platform="telegram",
            platform_user_id=f"{role}-{commune}-{province}",
            display_name=f"Cán bộ {role}",
            role=role,
            commune_code=commune,
            province_code=province,
        )
        session.add(staff)
        await session.commit()
        await session.refresh(staff)
        return staff


async def test_province_outreach_staff_reach_their_province_only(
    db: Database, clock: FakeClock
) -> None:
    hanoi_commune, hanoi = await other_province_commune(db)
    phu_tho_staff = await add_staff(db, StaffRole.OUTREACH, commune=None, province=PHU_THO)
    hanoi_staff = await add_staff(db, StaffRole.OUTREACH, commune=None, province=hanoi)
    supervisor = await add_staff(db, StaffRole.SUPERVISOR, commune=None, province=PHU_THO)
    officer = await add_staff(db, StaffRole.OFFICER, commune=KHA_CUU, province=PHU_THO)
    now = clock.now

    async def create(staff: Staff, wanted: BroadcastSpec) -> Broadcast:
        async with db.session() as session:
            return await outreach_control.create_broadcast(
                session, staff=staff, spec=wanted, now=now, tz=TZ, quiet=NO_QUIET
            )

    mine = await create(phu_tho_staff, spec("commune", KHA_CUU))
    await create(phu_tho_staff, spec("province", PHU_THO))
    theirs = await create(hanoi_staff, spec("commune", hanoi_commune))
    for refused in (
        spec("all"),  # the whole country
        spec("province", hanoi),
        spec("commune", hanoi_commune),
        spec("commune", KHA_CUU, urgent=True),  # urgent: supervisors and admins only
    ):
        with pytest.raises(BroadcastError) as error:
            await create(phu_tho_staff, refused)
        assert error.value.reason == "not_allowed"
    with pytest.raises(BroadcastError):
        await create(officer, spec("commune", KHA_CUU))  # officers handle tips, not outreach
    urgent = await create(supervisor, spec("commune", KHA_CUU, urgent=True))
    assert urgent.urgent

    # Someone else's broadcast is "not found", as a missing one is; one's own can be paused.
    assert theirs.id is not None and mine.id is not None
    for action in ("pause", "cancel"):
        with pytest.raises(BroadcastError) as error:
            async with db.session() as session:
                await outreach_control.change_broadcast(
                    session,
                    staff=phu_tho_staff,
                    broadcast_id=theirs.id,
                    action=action,
                    now=now,
                    tz=TZ,
                )
        assert error.value.reason == "not_found"
    async with db.session() as session:
        paused = await outreach_control.change_broadcast(
            session, staff=phu_tho_staff, broadcast_id=mine.id, action="pause", now=now, tz=TZ
        )
        assert paused.status == "paused"
        seen = await outreach_control.visible_broadcasts(session, staff=phu_tho_staff)
        seen_by_hanoi = await outreach_control.visible_broadcasts(session, staff=hanoi_staff)
        untouched = await session.get(Broadcast, theirs.id)
        events = list((await session.exec(select(AuditEvent).order_by(col(AuditEvent.id)))).all())
    assert {r.broadcast.audience_code for r in seen} == {KHA_CUU, PHU_THO}
    assert [r.broadcast.id for r in seen_by_hanoi] == [theirs.id]
    assert untouched is not None and untouched.status == "scheduled"

    # Every creation, change and refusal left a row, none of them about a tip.
    assert all(event.tip_id is None for event in events)
    done = [(e.action, e.allowed) for e in events if e.actor_staff_id == phu_tho_staff.id]
    assert done == [
        ("broadcast", True),
        ("broadcast", True),
        *[("broadcast", False)] * 4,
        ("broadcast_pause", False),
        ("broadcast_cancel", False),
        ("broadcast_pause", True),
    ]
    pause = events[-1]
    assert pause.before == {"status": "scheduled"} and pause.after["status"] == "paused"


async def test_campaigns_and_counts_stay_in_the_staff_members_area(
    db: Database, clock: FakeClock
) -> None:
    hanoi_commune, hanoi = await other_province_commune(db)
    commune_staff = await add_staff(db, StaffRole.OUTREACH, commune=KHA_CUU, province=PHU_THO)
    country_staff = await add_staff(db, StaffRole.OUTREACH, commune=None, province=None)
    now = clock.now
    async with db.session() as session:
        for code, province in ((KHA_CUU, PHU_THO), (hanoi_commune, hanoi)):
            for n in range(2 if code == KHA_CUU else 3):
                session.add(
                    Subscriber(
                        key=f"{code}-{n}",
                        channel="telegram",
                        route=b"x",
                        commune_code=code,
                        province_code=province,
                    )
                )
        await session.commit()
        pledge = sorted(pledge_templates())[0]
        mine = await outreach_control.open_campaign(
            session,
            staff=commune_staff,
            pledge_id=pledge,
            commune_code=KHA_CUU,
            province_code=None,
            now=now,
        )
        with pytest.raises(PledgeError) as error:
            await outreach_control.open_campaign(
                session,
                staff=commune_staff,
                pledge_id=pledge,
                commune_code=None,
                province_code=PHU_THO,  # the province is wider than the commune they work in
                now=now,
            )
        assert error.value.reason == "not_allowed"
        national = await outreach_control.open_campaign(
            session,
            staff=country_staff,
            pledge_id=pledge,
            commune_code=None,
            province_code=None,
            now=now,
        )
        assert national.id is not None and mine.id is not None
        with pytest.raises(PledgeError):
            await outreach_control.close_campaign(
                session,
                staff=commune_staff,
                campaign_id=national.id,
                now=now + timedelta(minutes=1),
            )
        await outreach_control.close_campaign(
            session, staff=commune_staff, campaign_id=mine.id, now=now
        )
        campaigns = await outreach_control.visible_campaigns(session, staff=commune_staff)
        everything = await outreach_control.visible_campaigns(session, staff=country_staff)
        counts = await outreach_control.subscriber_counts(session, staff=commune_staff)
        all_counts = await outreach_control.subscriber_counts(session, staff=country_staff)
        actions = (
            await session.exec(
                select(AuditEvent.action, AuditEvent.allowed).order_by(col(AuditEvent.id))
            )
        ).all()
    assert [c.campaign.id for c in campaigns] == [mine.id]
    assert [c.campaign.id for c in everything] == [national.id, mine.id]  # open first
    assert counts == [(KHA_CUU, 2)]
    assert all_counts == [(hanoi_commune, 3), (KHA_CUU, 2)]
    assert list(actions) == [
        ("campaign_open", True),
        ("campaign_open", False),
        ("campaign_open", True),
        ("campaign_close", False),
        ("campaign_close", True),
    ]
