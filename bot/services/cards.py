"""The tip card police see in their inbox, as data (text plus choices)."""

from __future__ import annotations

import html

from bot.content.catalog import category_by_id
from bot.i18n import Translator, _
from bot.services.steps import Choice, Reply
from storage.communes import CommuneChoice
from storage.models import AuditEvent, Tip, TipStatus

# Room left in a 4096-character message for the tip text under the card's header.
CARD_TEXT_BUDGET = 3000
CHUNK = 4000

STATUS_LABELS = {
    TipStatus.NEW: _("🆕 New"),
    TipStatus.ACKNOWLEDGED: _("🟢 Being handled"),
    TipStatus.VERIFYING: _("🔎 Being verified"),
    TipStatus.CLOSED: _("✅ Closed"),
}
CLOSE_REASONS = {
    "done": _("Handled"),
    "false": _("Not true"),
    "dup": _("Duplicate"),
    "out": _("Not our competence"),
}
ACTION_LABELS = {
    "route": _("delivered"),
    "ack": _("acknowledged"),
    "v1": _("marked valuable"),
    "v0": _("marked not valuable"),
    "ver": _("verifying"),
    "close": _("closed"),
    "move": _("moved"),
    "esc": _("escalated to the province"),
    "reply": _("replied to the tipster"),
    "deadline": _("deadline missed"),
}
HISTORY_LINES = 4


def split_text(text: str, first: int = CARD_TEXT_BUDGET, size: int = CHUNK) -> list[str]:
    """Cut a long tip text into a first part for the card and message-sized rest parts."""
    if len(text) <= first:
        return [text]
    parts = [text[:first]]
    rest = text[first:]
    while rest:
        parts.append(rest[:size])
        rest = rest[size:]
    return parts


def card(
    t: Translator,
    *,
    tip: Tip,
    commune: CommuneChoice | None,
    files: int,
    history: list[AuditEvent],
    mode: str = "main",
    note: str | None = None,
) -> Reply:
    """Render a tip card; `mode` "close" shows the close reasons instead of the actions."""
    category = category_by_id().get(tip.category)
    head = t.gettext(_("<b>Tip {short_id}</b>")).format(short_id=html.escape(tip.short_id))
    if tip.urgent:
        head += " " + t.gettext(_("🔴 <b>HAPPENING NOW</b>"))
    lines = [
        head,
        t.gettext(_("Subject: {value}")).format(
            value=html.escape(category.name(t.locale) if category else tip.category)
        ),
        t.gettext(_("Place: {value}")).format(
            value=html.escape(commune.label if commune else str(tip.commune_code))
        ),
        t.gettext(_("Received: {when}")).format(when=t.datetime(tip.created_at)),
        t.gettext(_("Status: {status}")).format(status=t.gettext(STATUS_LABELS[tip.status])),
    ]
    if tip.valuable is not None:
        lines.append(t.gettext(_("⭐ Valuable")) if tip.valuable else t.gettext(_("Not valuable")))
    if tip.close_reason:
        lines.append(
            t.gettext(_("Closed as: {reason}")).format(
                reason=t.gettext(CLOSE_REASONS.get(tip.close_reason, tip.close_reason))
            )
        )
    extras = []
    if files:
        extras.append(t.ngettext("{n} file below", "{n} files below", files).format(n=files))
    if tip.location_lat is not None:
        extras.append(
            t.gettext(_("📍 location hint: {lat}, {lon}")).format(
                lat=f"{tip.location_lat:.5f}", lon=f"{tip.location_lon:.5f}"
            )
        )
    if extras:
        lines.append(" · ".join(extras))
    # What people did, newest last; the system's own routing is not news to the inbox.
    shown = [e for e in history if e.allowed and (e.actor_staff_id or e.action == "deadline")]
    for event in shown[-HISTORY_LINES:]:
        label = ACTION_LABELS.get(event.action)
        if label:
            lines.append(
                f"<i>{t.datetime(event.created_at)} — {html.escape(event.actor)}: "
                f"{t.gettext(label)}</i>"
            )
    if note:
        lines.append(f"<b>{html.escape(note)}</b>")
    body = split_text(tip.text)[0]
    lines.append("")
    lines.append(html.escape(body) if body else t.gettext(_("(no text, see the files)")))
    if len(tip.text) > CARD_TEXT_BUDGET:
        lines.append(t.gettext(_("(continued below)")))
    return Reply("\n".join(lines), card_choices(t, tip, mode))


def card_choices(t: Translator, tip: Tip, mode: str) -> tuple[tuple[Choice, ...], ...]:
    """The card's buttons for the tip's state."""
    if tip.status == TipStatus.CLOSED or mode == "moved":
        return ()
    if mode == "close":
        reasons = [Choice(f"cl:{key}", t.gettext(label)) for key, label in CLOSE_REASONS.items()]
        return (
            tuple(reasons[:2]),
            tuple(reasons[2:]),
            (Choice("back", t.gettext(_("↩️ Back"))),),
        )
    first: list[Choice] = []
    if tip.status == TipStatus.NEW:
        first.append(Choice("ack", t.gettext(_("✋ Acknowledge"))))
    first.append(Choice("ver", t.gettext(_("🔎 Verifying"))))
    return (
        tuple(first),
        (
            Choice("v1", t.gettext(_("⭐ Valuable"))),
            Choice("v0", t.gettext(_("Not valuable"))),
        ),
        (
            Choice("move", t.gettext(_("↪️ Other commune"))),
            Choice("esc", t.gettext(_("⬆️ To province"))),
        ),
        (Choice("close", t.gettext(_("✅ Close"))),),
    )
