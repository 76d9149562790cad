"""Routing: which inbox a tip goes to, and the outbox rows that deliver it there."""

from __future__ import annotations

import html
from datetime import datetime

from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from bot.i18n import Translator, _
from bot.services import audit, authorization, cards, outbox, tips
from bot.services.authorization import Action
from bot.services.steps import Reply
from storage import communes
from storage.models import (
    Commune,
    Inbox,
    InboxPost,
    InboxScope,
    Staff,
    Tip,
    TipAttachment,
)

CARD_PREFIX = "t:"  # card buttons: "t:<tip id>:<value>"


async def choose_inbox(
    session: AsyncSession,
    commune_code: int,
    *,
    exclude: set[int] | None = None,
    skip_commune: bool = False,
) -> tuple[Inbox | None, str, list[str]]:
    """The commune's inbox, else its province's, else the admins'; with the fallbacks taken.

    `skip_commune` starts at the province (escalation).
    """
    commune = await session.get(Commune, commune_code)
    province_code = commune.province_code if commune else None
    levels = [
        ("commune", (Inbox.scope == InboxScope.COMMUNE) & (Inbox.commune_code == commune_code)),
        ("province", (Inbox.scope == InboxScope.PROVINCE) & (Inbox.province_code == province_code)),
        ("admin", Inbox.scope == InboxScope.ADMIN),
    ]
    if skip_commune:
        levels = levels[1:]
    fallbacks: list[str] = []
    for level, condition in levels:
        statement = select(Inbox).where(
            condition, Inbox.status == "active", col(Inbox.id).not_in(exclude or {-1})
        )
        found = (await session.exec(statement.order_by(col(Inbox.id).desc()))).first()
        if found is not None:
            return found, level, fallbacks
        fallbacks.append(f"no_{level}_inbox")
    return None, "none", fallbacks


async def deliver(
    session: AsyncSession,
    *,
    tip: Tip,
    t: Translator,
    now: datetime,
    reason: str,
    actor: Staff | str | None = None,
    exclude: set[int] | None = None,
    escalate: bool = False,
) -> Inbox | None:
    """Route a tip and queue its card, long text, files and location for the chosen inbox.

    Nothing is sent here: rows join the caller's transaction (DESIGN principle 1).
    """
    assert tip.id is not None
    inbox, level, fallbacks = await choose_inbox(
        session, tip.commune_code, exclude=exclude, skip_commune=escalate
    )
    before = {"inbox": tip.inbox_id, "level": tip.route_level}
    tip.inbox_id = inbox.id if inbox else None
    tip.route_level = level
    session.add(tip)
    audit.record(
        session,
        actor=actor or audit.SYSTEM,
        action="route",
        tip_id=tip.id,
        before=before,
        after={"inbox": tip.inbox_id, "level": level, "fallbacks": fallbacks, "reason": reason},
        now=now,
    )
    if inbox is None:
        return None
    await queue_tip_messages(session, tip=tip, inbox=inbox, t=t, now=now)
    return inbox


async def queue_tip_messages(
    session: AsyncSession, *, tip: Tip, inbox: Inbox, t: Translator, now: datetime
) -> None:
    """Queue the card, the rest of a long text, the files (as copies) and the location."""
    assert tip.id is not None and inbox.id is not None
    attachments = list(
        (
            await session.exec(
                select(TipAttachment)
                .where(TipAttachment.tip_id == tip.id)
                .order_by(col(TipAttachment.id))
            )
        ).all()
    )
    reply = await render_card(session, t, tip, files=len(attachments))
    common = {"tip_id": tip.id, "inbox_id": inbox.id, "chat_id": inbox.chat_id, "now": now}
    outbox.enqueue(
        session,
        kind="card",
        payload={
            "text": reply.text,
            "buttons": outbox.buttons_payload(reply, f"{CARD_PREFIX}{tip.id}:"),
            "post_kind": "card",
        },
        **common,  # type: ignore[arg-type]
    )
    for part in cards.split_text(tip.text)[1:]:
        outbox.enqueue(
            session,
            kind="text",
            payload={"text": html.escape(part), "post_kind": "text", "reply_to_card": True},
            **common,  # type: ignore[arg-type]
        )
    for number, attachment in enumerate(attachments, start=1):
        outbox.enqueue(
            session,
            kind="file",
            payload={
                "attachment_id": attachment.id,
                # A file kept with its metadata says so under it (DESIGN principle 4).
                "caption": cards.file_caption(
                    t, f"{tip.short_id} ({number}/{len(attachments)})", attachment.note
                ),
                "post_kind": "file",
                "reply_to_card": True,
            },
            **common,  # type: ignore[arg-type]
        )
    if tip.location_lat is not None and tip.location_lon is not None:
        outbox.enqueue(
            session,
            kind="location",
            payload={
                "latitude": tip.location_lat,
                "longitude": tip.location_lon,
                "post_kind": "file",
                "reply_to_card": True,
            },
            **common,  # type: ignore[arg-type]
        )


async def render_card(
    session: AsyncSession,
    t: Translator,
    tip: Tip,
    *,
    files: int | None = None,
    mode: str = "main",
    note: str | None = None,
) -> Reply:
    """The card of a tip as it stands now."""
    assert tip.id is not None
    if files is None:
        files = await tips.attachment_count(session, tip_id=tip.id)
    commune = await communes.get_commune(session, tip.commune_code)
    history = await audit.events_for_tip(session, tip.id)
    return cards.card(
        t, tip=tip, commune=commune, files=files, history=history, mode=mode, note=note
    )


async def queue_card_edits(
    session: AsyncSession,
    *,
    tip: Tip,
    t: Translator,
    now: datetime,
    mode: str = "main",
    note: str | None = None,
    only_chat: int | None = None,
) -> None:
    """Queue an in-place edit of every card of this tip (one per inbox it was posted in)."""
    assert tip.id is not None
    posts = (
        await session.exec(
            select(InboxPost).where(InboxPost.tip_id == tip.id, InboxPost.kind == "card")
        )
    ).all()
    for post in posts:
        if only_chat is not None and post.chat_id != only_chat:
            continue
        # Cards left behind in an inbox the tip moved away from lose their buttons.
        post_mode = mode if post.inbox_id == tip.inbox_id or tip.route_level == "none" else "moved"
        reply = await render_card(session, t, tip, mode=post_mode, note=note)
        outbox.enqueue(
            session,
            kind="edit",
            chat_id=post.chat_id,
            tip_id=tip.id,
            inbox_id=post.inbox_id,
            now=now,
            payload={
                "message_id": post.message_id,
                "text": reply.text,
                "buttons": outbox.buttons_payload(reply, f"{CARD_PREFIX}{tip.id}:"),
            },
        )


async def alert_supervisors(
    session: AsyncSession, *, province_code: int | None, text: str, now: datetime
) -> int:
    """Queue an alert to the province's supervisors and every admin, in their private chats."""
    statement = select(Staff).where(Staff.active == True)  # noqa: E712 - SQL comparison
    # Those who may act on any tip of the province: its supervisors and the admins.
    recipients = [
        staff
        for staff in (await session.exec(statement)).all()
        if authorization.allowed(staff, Action.TIP, province_code=province_code)
    ]
    alerted = 0
    for staff in recipients:
        # Alerts go to a private chat with the bot, which staff have on Telegram; staff who work
        # only in the web console find the same tips there (the list's overdue filter).
        if staff.platform != "telegram" or not staff.platform_user_id.lstrip("-").isdigit():
            continue
        outbox.enqueue(
            session,
            kind="alert",
            chat_id=int(staff.platform_user_id),
            now=now,
            payload={"text": text},
        )
        alerted += 1
    return alerted


MAX_TIPS_NAMED = 20  # an alert names this many moved tips, then says how many more


def broken_inbox_summary(t: Translator, inbox: Inbox, moved: list[tuple[Tip, Inbox | None]]) -> str:
    """The one alert sent when an inbox stops accepting messages: every tip it moved, where."""
    name = html.escape(inbox.title or str(inbox.chat_id))
    head = t.gettext(
        _(
            "⚠️ The inbox <b>{inbox}</b> no longer receives messages (the bot was removed or "
            "blocked). Please link a new group with /link."
        )
    ).format(inbox=name)
    if not moved:
        return head
    lines = [head, t.gettext(_("Its open tips were sent on:"))]
    for tip, new_inbox in moved[:MAX_TIPS_NAMED]:
        target = (
            html.escape(new_inbox.title or str(new_inbox.chat_id))
            if new_inbox
            else t.gettext(_("nowhere (no inbox left)"))
        )
        lines.append(f"• {tip.short_id} → {target}")
    if len(moved) > MAX_TIPS_NAMED:
        lines.append(
            t.gettext(_("… and {n} more.")).format(n=t.number(len(moved) - MAX_TIPS_NAMED))
        )
    return "\n".join(lines)
