"""Pledge campaigns ("ký cam kết"): staff open and close them; citizens sign; counts."""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, or_
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from storage.models import Commune, PledgeCampaign, PledgeSignature

KEY_PREFIX = "pledge:"  # HMAC input of signer keys, distinct from drafts and subscriptions
RECEIPT_ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"


class PledgeError(Exception):
    """A refusal with a reason code."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class PledgeCount:
    """Signatures of one pledge in one commune."""

    pledge_id: str
    commune_code: int
    signatures: int


async def open_campaigns(
    session: AsyncSession, *, commune_code: int | None = None
) -> list[PledgeCampaign]:
    """Campaigns open now; with a commune, those that cover it (its own, its province's, all)."""
    statement = select(PledgeCampaign).where(col(PledgeCampaign.closed_at).is_(None))
    if commune_code is not None:
        commune = await session.get(Commune, commune_code)
        province = commune.province_code if commune else None
        statement = statement.where(
            or_(
                col(PledgeCampaign.commune_code) == commune_code,
                col(PledgeCampaign.province_code) == province,
                (
                    col(PledgeCampaign.commune_code).is_(None)
                    & col(PledgeCampaign.province_code).is_(None)
                ),
            )
        )
    return list((await session.exec(statement.order_by(col(PledgeCampaign.id)))).all())


async def open_campaign(
    session: AsyncSession,
    *,
    pledge_id: str,
    commune_code: int | None,
    province_code: int | None,
    staff_id: int | None,
    now: datetime,
    commit: bool = True,
) -> PledgeCampaign:
    """Open a campaign (commits unless told not to)."""
    from bot.content.library import pledges

    if pledge_id not in pledges():
        raise PledgeError("unknown_pledge")
    if commune_code is not None:
        commune = await session.get(Commune, commune_code)
        if commune is None:
            raise PledgeError("unknown_commune")
        province_code = None
    campaign = PledgeCampaign(
        pledge_id=pledge_id,
        commune_code=commune_code,
        province_code=province_code,
        opened_by_staff_id=staff_id,
        opened_at=now,
    )
    session.add(campaign)
    if commit:
        await session.commit()
    else:
        await session.flush()  # the caller's audit row names its id
    return campaign


async def close_campaign(
    session: AsyncSession, *, campaign_id: int, now: datetime, commit: bool = True
) -> PledgeCampaign:
    """Close a campaign (commits unless told not to)."""
    campaign = await session.get(PledgeCampaign, campaign_id)
    if campaign is None:
        raise PledgeError("unknown_campaign")
    campaign.closed_at = campaign.closed_at or now
    session.add(campaign)
    if commit:
        await session.commit()
    return campaign


async def sign(
    session: AsyncSession,
    *,
    campaign_id: int,
    commune_code: int,
    household: str | None,
    signer_key: str,
    now: datetime,
    previous_keys: Sequence[str] = (),
    session_id: int | None = None,
) -> PledgeSignature:
    """Record a signature (no commit); one per person and campaign.

    `previous_keys` are the signer's keys under previous secrets: a signature cannot be
    re-keyed (it keeps no route), so after a key rotation it is recognised under its old key.
    """
    campaign = await session.get(PledgeCampaign, campaign_id)
    if campaign is None or campaign.closed_at is not None:
        raise PledgeError("closed")
    existing = (
        await session.exec(
            select(PledgeSignature).where(
                PledgeSignature.campaign_id == campaign_id,
                col(PledgeSignature.signer_key).in_([signer_key, *previous_keys]),
            )
        )
    ).first()
    if existing is not None:
        raise PledgeError("already_signed")
    signature = PledgeSignature(
        campaign_id=campaign_id,
        pledge_id=campaign.pledge_id,
        commune_code=commune_code,
        household=(household or "").strip()[:120] or None,
        signer_key=signer_key,
        receipt="P-" + "".join(secrets.choice(RECEIPT_ALPHABET) for _ in range(6)),
        session_id=session_id,
        created_at=now,
    )
    session.add(signature)
    return signature


async def counts(
    session: AsyncSession, *, province_code: int | None = None, commune_code: int | None = None
) -> list[PledgeCount]:
    """Signatures per pledge and commune (optionally in one province or one commune)."""
    statement = (
        select(PledgeSignature.pledge_id, PledgeSignature.commune_code, func.count())
        .group_by(col(PledgeSignature.pledge_id), col(PledgeSignature.commune_code))
        .order_by(col(PledgeSignature.pledge_id), col(PledgeSignature.commune_code))
    )
    if province_code is not None:
        statement = statement.join(
            Commune, col(Commune.code) == col(PledgeSignature.commune_code)
        ).where(Commune.province_code == province_code)
    if commune_code is not None:
        statement = statement.where(col(PledgeSignature.commune_code) == commune_code)
    return [PledgeCount(p, c, int(n)) for p, c, n in (await session.exec(statement)).all()]
