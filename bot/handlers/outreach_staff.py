"""Outreach staff commands: open and close pledge campaigns, read pledge counts."""

from __future__ import annotations

import html

from telegram import Update
from telegram.constants import ParseMode

from bot.context import CustomContext
from bot.i18n import _
from bot.services import enrollment, outreach_control, pledges
from bot.services.authorization import Action, may
from storage import communes
from storage.models import Staff

PLATFORM = "telegram"


async def _outreach_staff(update: Update, context: CustomContext) -> Staff | None:
    """The acting outreach staff member or admin, else None (after saying so)."""
    user = update.effective_user
    message = update.effective_message
    assert user is not None and message is not None
    async with context.services.db.session() as session:
        staff = await enrollment.active_staff(session, platform=PLATFORM, platform_user_id=user.id)
    if staff is None or not may(staff, Action.OUTREACH):
        await message.reply_text(context.translate.gettext(_("You are not allowed to do this.")))
        return None
    return staff


async def on_campaign(update: Update, context: CustomContext) -> None:
    """/campaign open PLEDGE_ID [COMMUNE_CODE] | /campaign close ID | /campaign (list)."""
    message = update.effective_message
    assert message is not None
    staff = await _outreach_staff(update, context)
    if staff is None:
        return
    t = context.translate
    args = context.args or []
    services = context.services
    now = services.intake.clock()
    async with services.db.session() as session:
        try:
            if args[:1] == ["open"] and len(args) >= 2:
                commune = (
                    int(args[2]) if len(args) > 2 and args[2].isdigit() else staff.commune_code
                )
                campaign = await outreach_control.open_campaign(
                    session,
                    staff=staff,
                    pledge_id=args[1],
                    commune_code=commune,
                    province_code=None if commune else staff.province_code,
                    now=now,
                )
                await message.reply_text(
                    t.gettext(_("Pledge campaign #{id} is open for signing.")).format(
                        id=campaign.id
                    )
                )
                return
            if args[:1] == ["close"] and len(args) == 2 and args[1].isdigit():
                await outreach_control.close_campaign(
                    session, staff=staff, campaign_id=int(args[1]), now=now
                )
                await message.reply_text(
                    t.gettext(_("Pledge campaign #{id} is closed.")).format(id=args[1])
                )
                return
        except pledges.PledgeError as error:
            refusal = (
                _("That place is outside your area.")
                if error.reason == "not_allowed"
                else _("Unknown pledge, commune or campaign.")
            )
            await message.reply_text(t.gettext(refusal))
            return
        found = await outreach_control.visible_campaigns(session, staff=staff)
        campaigns = [item.campaign for item in found if item.campaign.closed_at is None]
    from bot.content.library import pledges as pledge_templates

    lines = [
        t.gettext(
            _("<b>Open pledge campaigns</b> (/campaign open PLEDGE [COMMUNE], /campaign close ID):")
        )
    ]
    lines += [
        f"#{c.id} · {html.escape(c.pledge_id)} · {c.commune_code or c.province_code or '*'}"
        for c in campaigns
    ]
    lines.append(t.gettext(_("Pledges: {ids}")).format(ids=", ".join(sorted(pledge_templates()))))
    await message.reply_text("\n".join(lines), parse_mode=ParseMode.HTML)


async def on_pledge_counts(update: Update, context: CustomContext) -> None:
    """/pledges: signatures per pledge and commune (a supervisor sees their province)."""
    message = update.effective_message
    assert message is not None
    staff = await _outreach_staff(update, context)
    if staff is None:
        return
    t = context.translate
    async with context.services.db.session() as session:
        area = outreach_control.area_of(staff)
        rows = await pledges.counts(
            session,
            commune_code=area[0] if area else None,
            province_code=area[1] if area else None,
        )
        labels = {r.commune_code: await communes.get_commune(session, r.commune_code) for r in rows}
    lines = [t.gettext(_("<b>Signed pledges</b> per commune:"))]
    for row in rows:
        commune = labels.get(row.commune_code)
        place = commune.label if commune else str(row.commune_code)
        lines.append(
            f"{html.escape(row.pledge_id)} · {html.escape(place)} · {t.number(row.signatures)}"
        )
    if not rows:
        lines.append(t.gettext(_("No signatures yet.")))
    await message.reply_text("\n".join(lines)[:4000], parse_mode=ParseMode.HTML)
