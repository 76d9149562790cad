"""The citizen intake steps as data: what each state shows and which choices it offers."""

from __future__ import annotations

import html
from typing import Any

from bot.content.catalog import categories, category_by_id, hotlines
from bot.i18n import Translator, _
from bot.services.media import note_code
from bot.services.steps import Choice, Reply, rows
from storage.communes import CommuneChoice

PROVINCES_PER_PAGE = 10
COMMUNES_PER_PAGE = 10
REVIEW_TEXT_PREVIEW = 1500

# Said before a citizen sends files (DESIGN principle 4: told plainly what is not cleaned).
FILES_WARNING = _(
    "Photos sent as photos have their location and camera details removed; videos, voice "
    "messages and other files are kept exactly as sent, so they may contain the place, the "
    "time and the device."
)
# Said after a file that could not be cleaned, by the code of its note (bot/services/media.py).
KEPT_AS_SENT = {
    "video": _(
        "⚠️ This video was kept exactly as sent: it may contain the place, the time and the "
        "device it was made with."
    ),
    "animation": _(
        "⚠️ This animation was kept exactly as sent: it may contain the time and the device "
        "it was made with."
    ),
    "voice": _(
        "⚠️ This voice message was kept exactly as sent: it may contain the time and the "
        "device it was recorded with."
    ),
    "audio": _(
        "⚠️ This audio file was kept exactly as sent: it may contain the time, the device "
        "and the author."
    ),
    "heic": _(
        "⚠️ This image was kept exactly as sent: it may contain the place, the time and the "
        "device. Send it as a photo to have them removed."
    ),
    "image": _(
        "⚠️ This image was kept exactly as sent: it may contain the place, the time and the "
        "device. Send it as a photo to have them removed."
    ),
}
# Documents, unreadable PDFs, and notes with no known code.
KEPT_AS_SENT_FILE = _(
    "⚠️ This file was kept exactly as sent: it may contain the author, the place, the time "
    "and the device it was made with."
)


def cancel_choice(t: Translator) -> Choice:
    """The cancel button every tip step carries."""
    return Choice("x", t.gettext(_("✖️ Cancel")))


def menu(t: Translator, token: int, extra: list[Choice] | None = None) -> Reply:
    """The main menu; only entries that work are shown (flows add theirs)."""
    return Reply(
        t.gettext(
            _(
                "<b>Tin báo an ninh</b> — tip line of the commune police.\n"
                "You can report anonymously: the police never see your name, "
                "account or phone number.\nWhat would you like to do?"
            )
        ),
        rows(
            [
                Choice("report", t.gettext(_("📝 Send a tip"))),
                Choice("status", t.gettext(_("🔎 Follow up a tip"))),
                *(extra or []),
                Choice("hotlines", t.gettext(_("📞 Emergency numbers"))),
                Choice("help", t.gettext(_("❓ Help"))),
            ],
            1,
        ),
        token,
    )


def category_step(t: Translator, token: int) -> Reply:
    """Ask what the tip is about."""
    choices = [Choice(f"c:{c.id}", c.name(t.locale)) for c in categories()]
    return Reply(
        t.gettext(_("<b>Step 1/4.</b> What is your tip about?")),
        (*rows(choices, 2), (cancel_choice(t),)),
        token,
    )


def urgent_step(t: Translator, token: int) -> Reply:
    """Ask whether it is happening right now."""
    return Reply(
        t.gettext(_("<b>Step 2/4.</b> Is it happening right now?")),
        (
            (
                Choice("y", t.gettext(_("Yes, right now"))),
                Choice("n", t.gettext(_("No"))),
            ),
            (cancel_choice(t),),
        ),
        token,
    )


def hotline_notice(t: Translator, category_id: str) -> Reply:
    """Emergency numbers fitting a category, shown at once for urgent tips."""
    category = category_by_id().get(category_id)
    numbers = category.hotlines if category else (113,)
    lines = [t.gettext(_("⚠️ <b>If anyone is in danger, call now:</b>"))]
    for number in numbers:
        hotline = hotlines()[number]
        lines.append(f"☎️ <b>{number}</b> — {html.escape(hotline.name(t.locale))}")
    lines.append(t.gettext(_("Calls are free, day and night. You can go on with the tip below.")))
    return Reply("\n".join(lines))


def all_hotlines(t: Translator) -> Reply:
    """Every emergency number."""
    lines = [t.gettext(_("<b>Emergency numbers</b> (free, 24/7):"))]
    for number, hotline in hotlines().items():
        lines.append(f"☎️ <b>{number}</b> — {html.escape(hotline.name(t.locale))}")
    return Reply("\n".join(lines))


def place_confirm_step(t: Translator, token: int, commune: CommuneChoice) -> Reply:
    """Confirm the commune named by the deep link."""
    text = t.gettext(_("<b>Step 3/4.</b> Did it happen in <b>{place}</b>?")).format(
        place=html.escape(commune.label)
    )
    return Reply(
        text,
        (
            (
                Choice("ok", t.gettext(_("✅ Yes, here"))),
                Choice("other", t.gettext(_("Another place"))),
            ),
            (cancel_choice(t),),
        ),
        token,
    )


def place_step(t: Translator, token: int, prompt: str | None = None) -> Reply:
    """Ask for the commune by typed name or by province (`prompt` replaces the tip wording)."""
    return Reply(
        prompt
        or t.gettext(
            _(
                "<b>Step 3/4.</b> Where did it happen? Type the name of the commune or ward "
                "(for example: <i>kha cuu</i>; accents are not needed), or choose by province."
            )
        ),
        (
            (Choice("prov", t.gettext(_("🗺 Choose by province"))),),
            (cancel_choice(t),),
        ),
        token,
    )


def place_results_step(
    t: Translator, token: int, query: str, results: list[CommuneChoice]
) -> Reply:
    """Communes matching a typed name."""
    if not results:
        text = t.gettext(
            _("No commune or ward matches “{query}”. Type another name, or choose by province.")
        ).format(query=html.escape(query[:100]))
    else:
        text = t.gettext(
            _("Communes and wards matching “{query}”. Choose one, or type another name:")
        ).format(query=html.escape(query[:100]))
    choices = [Choice(f"m:{r.code}", r.label) for r in results]
    return Reply(
        text,
        (
            *rows(choices, 1),
            (Choice("prov", t.gettext(_("🗺 Choose by province"))),),
            (cancel_choice(t),),
        ),
        token,
    )


def paging_row(t: Translator, page: int, total: int, per_page: int) -> tuple[Choice, ...]:
    """Previous/next buttons for a paged list."""
    buttons = []
    if page > 0:
        buttons.append(Choice(f"pg:{page - 1}", t.gettext(_("◀️ Previous"))))
    if (page + 1) * per_page < total:
        buttons.append(Choice(f"pg:{page + 1}", t.gettext(_("Next ▶️"))))
    return tuple(buttons)


def province_step(t: Translator, token: int, provinces: list[tuple[int, str]], page: int) -> Reply:
    """One page of provinces."""
    start = page * PROVINCES_PER_PAGE
    shown = provinces[start : start + PROVINCES_PER_PAGE]
    choices = [Choice(f"p:{code}", name) for code, name in shown]
    nav = paging_row(t, page, len(provinces), PROVINCES_PER_PAGE)
    return Reply(
        t.gettext(_("Choose the province or city (page {page}/{pages}):")).format(
            page=page + 1, pages=-(-len(provinces) // PROVINCES_PER_PAGE)
        ),
        (*rows(choices, 2), *((nav,) if nav else ()), (cancel_choice(t),)),
        token,
    )


def commune_step(
    t: Translator,
    token: int,
    province_name: str,
    communes: list[CommuneChoice],
    page: int,
    total: int,
) -> Reply:
    """One page of a province's communes."""
    choices = [Choice(f"m:{c.code}", c.name) for c in communes]
    nav = paging_row(t, page, total, COMMUNES_PER_PAGE)
    return Reply(
        t.gettext(
            _(
                "Choose the commune or ward in <b>{province}</b> (page {page}/{pages}), "
                "or type its name:"
            )
        ).format(
            province=html.escape(province_name),
            page=page + 1,
            pages=max(1, -(-total // COMMUNES_PER_PAGE)),
        ),
        (
            *rows(choices, 2),
            *((nav,) if nav else ()),
            (Choice("back", t.gettext(_("↩️ Other province"))),),
            (cancel_choice(t),),
        ),
        token,
    )


def details_step(t: Translator, token: int) -> Reply:
    """Ask for the details, in as many messages as the citizen likes."""
    return Reply(
        t.gettext(
            _(
                "<b>Step 4/4.</b> Describe what you saw: what, where exactly, when, who. "
                "You can send several messages, photos, videos, voice notes, files and a "
                "location pin. Press <b>Done</b> when you have finished."
            )
        )
        + "\n"
        + t.gettext(FILES_WARNING),
        details_choices(t),
        token,
    )


def details_choices(t: Translator) -> tuple[tuple[Choice, ...], ...]:
    """The buttons under every acknowledgement while details are collected."""
    return (
        (Choice("done", t.gettext(_("✅ Done"))),),
        (cancel_choice(t),),
    )


def kept_as_sent(t: Translator, note: str | None) -> str | None:
    """Tell the citizen a file was kept with its metadata (None when it was cleaned)."""
    if not note:
        return None
    return t.gettext(KEPT_AS_SENT.get(note_code(note) or "", KEPT_AS_SENT_FILE))


def details_received(
    t: Translator,
    token: int,
    texts: int,
    files: int,
    located: bool,
    warning: str | None = None,
) -> Reply:
    """Acknowledge what has been collected so far (and that a file was kept as sent)."""
    parts = [
        t.ngettext("{n} message", "{n} messages", texts).format(n=texts),
        t.ngettext("{n} file", "{n} files", files).format(n=files),
    ]
    if located:
        parts.append(t.gettext(_("a location")))
    text = t.gettext(_("Received so far: {summary}. Send more, or press Done.")).format(
        summary=", ".join(parts)
    )
    return Reply(
        text + ("\n" + warning if warning else ""),
        details_choices(t),
        token,
    )


def review_step(
    t: Translator, token: int, data: dict[str, Any], commune: CommuneChoice | None, files: int
) -> Reply:
    """Summarise the draft for a last check before sending."""
    category = category_by_id().get(str(data.get("category")))
    text = "\n\n".join(part["text"] for part in data.get("parts", []))
    preview = text if len(text) <= REVIEW_TEXT_PREVIEW else text[:REVIEW_TEXT_PREVIEW] + "…"
    urgent = t.gettext(_("yes")) if data.get("urgent") else t.gettext(_("no"))
    lines = [
        t.gettext(_("<b>Please check your tip before sending:</b>")),
        t.gettext(_("• Subject: {value}")).format(
            value=html.escape(category.name(t.locale) if category else "?")
        ),
        t.gettext(_("• Happening now: {value}")).format(value=urgent),
        t.gettext(_("• Place: {value}")).format(
            value=html.escape(commune.label if commune else "?")
        ),
        t.gettext(_("• Files: {value}")).format(value=files),
    ]
    if data.get("location"):
        lines.append(t.gettext(_("• Location pin: attached")))
    lines.append(t.gettext(_("• Details:")))
    lines.append(html.escape(preview) if preview else t.gettext(_("(no text)")))
    return Reply(
        "\n".join(lines),
        (
            (Choice("send", t.gettext(_("📨 Send tip"))),),
            (
                Choice("e:cat", t.gettext(_("✏️ Subject"))),
                Choice("e:place", t.gettext(_("✏️ Place"))),
                Choice("e:text", t.gettext(_("✏️ Details"))),
            ),
            (cancel_choice(t),),
        ),
        token,
    )


def edit_details_step(t: Translator, token: int) -> Reply:
    """Back to the details: add more, or clear and start over."""
    return Reply(
        t.gettext(
            _(
                "Send what you want to add. To start the details over, press "
                "<b>Clear details</b>. Press <b>Done</b> to go back to the summary."
            )
        ),
        (
            (Choice("done", t.gettext(_("✅ Done"))),),
            (Choice("clear", t.gettext(_("🗑 Clear details"))),),
            (cancel_choice(t),),
        ),
        token,
    )


def status_code_step(t: Translator, token: int) -> Reply:
    """Ask for a receipt code."""
    return Reply(
        t.gettext(_("Type your receipt code (for example <code>7K3Q-XW2M-9TDA</code>):")),
        ((Choice("menu", t.gettext(_("↩️ Menu"))),),),
        token,
    )


def add_step(t: Translator, token: int, short_id: str) -> Reply:
    """Ask for information to add to a sent tip."""
    return Reply(
        t.gettext(
            _(
                "Send the information to add to your tip (text, photos, files). "
                "Press <b>Done</b> when you have finished."
            )
        )
        + "\n"
        + t.gettext(FILES_WARNING),
        ((Choice("done", t.gettext(_("✅ Done"))),),),
        token,
    )


def resume_step(t: Translator, token: int) -> Reply:
    """Offer to continue or drop an unfinished tip after /start."""
    return Reply(
        t.gettext(_("You have an unfinished tip. Continue it, or start over?")),
        (
            (
                Choice("resume", t.gettext(_("▶️ Continue"))),
                Choice("restart", t.gettext(_("🔄 Start over"))),
            ),
        ),
        token,
    )
