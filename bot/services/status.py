"""What a tipster sees of their tip: status, place, and the thread with the police."""

from __future__ import annotations

import html

from sqlmodel.ext.asyncio.session import AsyncSession

from bot.content.catalog import category_by_id
from bot.i18n import Translator, _
from bot.services import tips
from bot.services.steps import Reply
from storage import communes
from storage.models import Tip, TipStatus

# Keep the status message under Telegram's 4096 characters with room for the header.
THREAD_BUDGET = 3000
MESSAGE_PREVIEW = 600

_STATUS_LABELS = {
    TipStatus.NEW: _("received, waiting for the police"),
    TipStatus.ACKNOWLEDGED: _("being handled by the police"),
    TipStatus.VERIFYING: _("being verified"),
    TipStatus.CLOSED: _("closed"),
}


async def render_status(session: AsyncSession, t: Translator, tip: Tip) -> Reply:
    """Render a tip's status and thread, newest messages kept when the thread is long."""
    category = category_by_id().get(tip.category)
    commune = await communes.get_commune(session, tip.commune_code)
    status = t.gettext(_STATUS_LABELS.get(tip.status, tip.status))
    header = [
        t.gettext(_("<b>Tip {short_id}</b>")).format(short_id=html.escape(tip.short_id)),
        t.gettext(_("• Sent: {when}")).format(when=t.datetime(tip.created_at)),
        t.gettext(_("• Subject: {value}")).format(
            value=html.escape(category.name(t.locale) if category else tip.category)
        ),
        t.gettext(_("• Place: {value}")).format(
            value=html.escape(commune.label if commune else str(tip.commune_code))
        ),
        t.gettext(_("• Status: <b>{status}</b>")).format(status=status),
    ]
    assert tip.id is not None
    lines: list[str] = []
    used = 0
    for message in reversed(await tips.thread(session, tip.id)):
        who = t.gettext(_("Police")) if message.author == "police" else t.gettext(_("You"))
        body = (
            message.text
            if len(message.text) <= MESSAGE_PREVIEW
            else (message.text[:MESSAGE_PREVIEW] + "…")
        )
        if message.attachment_count:
            body = (body + " " if body else "") + t.ngettext(
                "[{n} file]", "[{n} files]", message.attachment_count
            ).format(n=message.attachment_count)
        line = f"<i>{t.datetime(message.created_at)}</i> <b>{who}:</b> {html.escape(body)}"
        if used + len(line) > THREAD_BUDGET:
            lines.append(t.gettext(_("… earlier messages not shown")))
            break
        lines.append(line)
        used += len(line)
    if lines:
        header.append("")
        header.append(t.gettext(_("<b>Messages:</b>")))
        header.extend(reversed(lines))
    else:
        header.append(t.gettext(_("No messages from the police yet.")))
    return Reply("\n".join(header))
