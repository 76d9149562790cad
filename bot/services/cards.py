"""The tip card police see in their inbox, as data (text plus choices)."""

from __future__ import annotations

import html

from bot.content.catalog import category_by_id
from bot.i18n import Translator, _
from bot.services.media import note_code
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
# Telegram allows 1024 characters in a file's caption; a margin like the additions' own.
CAPTION_LIMIT = 1000

# What police are told about a file kept with its metadata, by the note's code
# (bot/services/media.py). The caption is plain text, so no HTML here.
FILE_NOTES = {
    "video": _(
        "⚠️ Metadata not removed (video): it may contain the place, the time and the device."
    ),
    "animation": _("⚠️ Metadata not removed (animation): it may contain the time and the device."),
    "voice": _("⚠️ Metadata not removed (voice message): it may contain the time and the device."),
    "audio": _(
        "⚠️ Metadata not removed (audio): it may contain the time, the device and the author."
    ),
    "document": _(
        "⚠️ Metadata not removed (document): it may contain the author, the device and the software."
    ),
    "pdf_unreadable": _(
        "⚠️ Metadata not removed (PDF, encrypted or damaged): it may contain the author "
        "and the software."
    ),
    "heic": _(
        "⚠️ Metadata not removed (HEIC image): it may contain the place, the time and the device."
    ),
    "image": _(
        "⚠️ Metadata not removed (unsupported image): it may contain the place, the time "
        "and the device."
    ),
}
# Notes stored before codes existed, or a code this version does not know.
FILE_NOTE_GENERIC = _(
    "⚠️ Metadata not removed: the file may contain the place, the time and the device."
)


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


def file_note(t: Translator, note: str | None) -> str | None:
    """The police's warning for a file kept with its metadata (None for a cleaned file)."""
    if not note:
        return None
    return t.gettext(FILE_NOTES.get(note_code(note) or "", FILE_NOTE_GENERIC))


def file_caption(t: Translator, head: str, note: str | None) -> str:
    """A file's caption in the inbox: `head`, cut so that the metadata warning always fits."""
    warning = file_note(t, note)
    if warning is None:
        return head[:CAPTION_LIMIT]
    return head[: CAPTION_LIMIT - len(warning) - 1] + "\n" + warning


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
