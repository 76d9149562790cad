"""Outreach actions as staff take them: broadcasts and pledge campaigns, scoped and audited.

The bot's /broadcast and /campaign, and the console's outreach pages, all come here, so one
rule (`authorization.allowed`) decides what a staff member may reach and every change writes
an audit row in the same commit as the change (refusals too). Outreach staff work where they
were enrolled (a commune, a province, or the whole country); only supervisors and admins may
send an urgent broadcast, which ignores quiet hours.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, case, false, func, or_, true
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from bot.services import audit, broadcasts, pledges
from bot.services.authorization import Action, allowed, may
from bot.services.broadcasts import BroadcastError, BroadcastReach, BroadcastSpec
from storage.models import (
    Broadcast,
    Commune,
    PledgeCampaign,
    PledgeSignature,
    Staff,
    StaffRole,
    Subscriber,
)


@dataclass(frozen=True)
class CampaignCount:
    """A pledge campaign and how many have signed it."""

    campaign: PledgeCampaign
    signatures: int


async def _place(
    session: AsyncSession, *, commune_code: int | None, province_code: int | None
) -> tuple[int | None, int | None]:
    """A commune with its province, or a province alone, or (None, None) for the country."""
    if commune_code is None:
        return None, province_code
    commune = await session.get(Commune, commune_code)
    return commune_code, commune.province_code if commune else None


async def may_target(
    session: AsyncSession,
    staff: Staff | None,
    *,
    audience: str,
    audience_code: int | None,
    urgent: bool = False,
) -> bool:
    """Whether `staff` may send a broadcast to this audience ("all" and topics: the country)."""
    commune, province = await _place(
        session,
        commune_code=audience_code if audience == "commune" else None,
        province_code=audience_code if audience == "province" else None,
    )
    action = Action.URGENT if urgent else Action.OUTREACH
    return allowed(staff, action, commune_code=commune, province_code=province)


def area_of(staff: Staff | None) -> tuple[int | None, int | None] | None:
    """Where `staff`'s outreach reaches: (commune, None), (None, province), (None, None) for
    the whole country, or None for nowhere; the same rule as `allowed`, for SQL."""
    if not may(staff, Action.OUTREACH):
        return None
    assert staff is not None
    if staff.role == StaffRole.ADMIN:
        return None, None
    if staff.role == StaffRole.OUTREACH and staff.commune_code is not None:
        return staff.commune_code, None
    return None, staff.province_code


def reaches_country(staff: Staff | None) -> bool:
    """Whether `staff`'s outreach covers the whole country ("all" and topic audiences)."""
    return area_of(staff) == (None, None)


def _in_area(
    area: tuple[int | None, int | None] | None, *, commune: Any, province: Any
) -> ColumnElement[bool]:
    """A SQL condition: a row whose commune or province column lies in `area`."""
    if area is None:
        return false()
    commune_code, province_code = area
    if commune_code is not None:
        return commune == commune_code
    if province_code is None:
        return true()
    communes = select(Commune.code).where(Commune.province_code == province_code)
    return or_(province == province_code, commune.in_(communes))


def broadcast_scope(staff: Staff | None) -> ColumnElement[bool]:
    """A SQL condition on `Broadcast` matching the broadcasts `staff` may see and manage."""
    area = area_of(staff)
    if area == (None, None):
        return true()  # the country's broadcasts ("all", topics) too
    code = col(Broadcast.audience_code)
    audience = col(Broadcast.audience)
    return _in_area(
        area,
        commune=case((audience == "commune", code), else_=None),
        province=case((audience == "province", code), else_=None),
    )


def _refuse(
    session: AsyncSession, staff: Staff | None, action: str, now: datetime, **what: object
) -> None:
    """Audit a refusal (the caller commits and raises)."""
    audit.record(session, actor=staff, action=action, allowed=False, after=dict(what), now=now)


async def create_broadcast(
    session: AsyncSession,
    *,
    staff: Staff,
    spec: BroadcastSpec,
    now: datetime,
    tz: str,
    quiet: tuple[int, int] = broadcasts.DEFAULT_QUIET,
) -> Broadcast:
    """Check the audience and urgency against `staff`'s scope, store, audit (commits)."""
    where = {"audience": spec.audience, "code": spec.audience_code, "urgent": spec.urgent}
    if not await may_target(
        session, staff, audience=spec.audience, audience_code=spec.audience_code, urgent=spec.urgent
    ):
        _refuse(session, staff, "broadcast", now, **where)
        await session.commit()
        raise BroadcastError("not_allowed", spec.audience)
    broadcast = await broadcasts.create_broadcast(
        session, spec=spec, staff_id=staff.id, now=now, tz=tz, quiet=quiet, commit=False
    )
    audit.record(
        session,
        actor=staff,
        action="broadcast",
        after={"broadcast": broadcast.id, **where},
        now=now,
    )
    await session.commit()
    return broadcast


async def change_broadcast(
    session: AsyncSession,
    *,
    staff: Staff,
    broadcast_id: int,
    action: str,
    now: datetime,
    tz: str,
    quiet: tuple[int, int] = broadcasts.DEFAULT_QUIET,
) -> Broadcast:
    """Pause, resume or cancel a broadcast in `staff`'s scope, audited (commits)."""
    found = await session.get(Broadcast, broadcast_id)
    mine = found is not None and await may_target(
        session, staff, audience=found.audience, audience_code=found.audience_code
    )
    if found is None or not mine:
        # The same answer for someone else's broadcast and for none: ids are not an oracle.
        _refuse(session, staff, f"broadcast_{action}"[:32], now, broadcast=broadcast_id)
        await session.commit()
        raise BroadcastError("not_found", str(broadcast_id))
    before = {"status": found.status}
    changed = await broadcasts.set_state(
        session, broadcast_id=broadcast_id, action=action, now=now, tz=tz, quiet=quiet, commit=False
    )
    audit.record(
        session,
        actor=staff,
        action=f"broadcast_{action}",
        before=before,
        after={"broadcast": broadcast_id, "status": changed.status},
        now=now,
    )
    await session.commit()
    return changed


async def visible_broadcasts(
    session: AsyncSession, *, staff: Staff, limit: int = 20
) -> list[BroadcastReach]:
    """The newest broadcasts in `staff`'s scope, with their reach."""
    return await broadcasts.list_broadcasts(session, limit=limit, where=broadcast_scope(staff))


async def visible_reach(
    session: AsyncSession, *, staff: Staff, broadcast_id: int
) -> BroadcastReach:
    """One broadcast in `staff`'s scope with its reach, else BroadcastError("not_found")."""
    statement = select(Broadcast.id).where(Broadcast.id == broadcast_id, broadcast_scope(staff))
    if (await session.exec(statement)).first() is None:
        raise BroadcastError("not_found", str(broadcast_id))
    return await broadcasts.reach(session, broadcast_id)


# -- pledge campaigns ------------------------------------------------------------------------------


async def _may_campaign(
    session: AsyncSession, staff: Staff | None, campaign: PledgeCampaign
) -> bool:
    """Whether the campaign's place is in `staff`'s outreach scope."""
    commune, province = await _place(
        session, commune_code=campaign.commune_code, province_code=campaign.province_code
    )
    return allowed(staff, Action.OUTREACH, commune_code=commune, province_code=province)


async def open_campaign(
    session: AsyncSession,
    *,
    staff: Staff,
    pledge_id: str,
    commune_code: int | None,
    province_code: int | None,
    now: datetime,
) -> PledgeCampaign:
    """Open a campaign for a commune, a province or (with neither) the country, audited."""
    commune, province = await _place(
        session, commune_code=commune_code, province_code=province_code
    )
    where = {"pledge": pledge_id, "commune": commune_code, "province": province_code}
    if not allowed(staff, Action.OUTREACH, commune_code=commune, province_code=province):
        _refuse(session, staff, "campaign_open", now, **where)
        await session.commit()
        raise pledges.PledgeError("not_allowed")
    campaign = await pledges.open_campaign(
        session,
        pledge_id=pledge_id,
        commune_code=commune_code,
        province_code=province_code,
        staff_id=staff.id,
        now=now,
        commit=False,
    )
    audit.record(
        session,
        actor=staff,
        action="campaign_open",
        after={"campaign": campaign.id, **where},
        now=now,
    )
    await session.commit()
    return campaign


async def close_campaign(
    session: AsyncSession, *, staff: Staff, campaign_id: int, now: datetime
) -> PledgeCampaign:
    """Close a campaign in `staff`'s scope, audited (unknown and out of scope: the same error)."""
    campaign = await session.get(PledgeCampaign, campaign_id)
    if campaign is None or not await _may_campaign(session, staff, campaign):
        _refuse(session, staff, "campaign_close", now, campaign=campaign_id)
        await session.commit()
        raise pledges.PledgeError("unknown_campaign")
    await pledges.close_campaign(session, campaign_id=campaign_id, now=now, commit=False)
    audit.record(
        session, actor=staff, action="campaign_close", after={"campaign": campaign_id}, now=now
    )
    await session.commit()
    return campaign


async def visible_campaigns(
    session: AsyncSession, *, staff: Staff, limit: int = 50
) -> list[CampaignCount]:
    """Campaigns in `staff`'s scope, open ones first, with their signature counts."""
    signed = (
        select(PledgeSignature.campaign_id, func.count().label("n"))
        .group_by(col(PledgeSignature.campaign_id))
        .subquery()
    )
    statement = (
        select(PledgeCampaign, func.coalesce(signed.c.n, 0))
        .outerjoin(signed, signed.c.campaign_id == col(PledgeCampaign.id))
        .where(
            _in_area(
                area_of(staff),
                commune=col(PledgeCampaign.commune_code),
                province=col(PledgeCampaign.province_code),
            )
        )
        .order_by(col(PledgeCampaign.closed_at).is_not(None), col(PledgeCampaign.id).desc())
        .limit(limit)
    )
    return [CampaignCount(c, int(n)) for c, n in (await session.exec(statement)).all()]


async def subscriber_counts(session: AsyncSession, *, staff: Staff) -> list[tuple[int, int]]:
    """Active subscribers per commune in `staff`'s scope, as (commune code, count), most first."""
    statement = (
        select(Subscriber.commune_code, func.count())
        .where(col(Subscriber.active) == true())
        .group_by(col(Subscriber.commune_code))
        .order_by(func.count().desc(), col(Subscriber.commune_code))
    )
    statement = statement.where(
        _in_area(
            area_of(staff),
            commune=col(Subscriber.commune_code),
            province=col(Subscriber.province_code),
        )
    )
    return [(int(c), int(n)) for c, n in (await session.exec(statement)).all()]
