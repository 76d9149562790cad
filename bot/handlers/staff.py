"""Staff side: enrollment, linking inbox groups, card buttons, replies, audit."""

from __future__ import annotations

import contextlib
import html

from sqlmodel import select
from telegram import Chat, ForceReply, Message, Update, User
from telegram.constants import ParseMode
from telegram.error import BadRequest

from bot.context import CustomContext
from bot.handlers.render import keyboard_with_prefix
from bot.i18n import _
from bot.services import audit, authorization, enrollment
from bot.services.authorization import Action
from bot.services.enrollment import EnrollmentError
from bot.services.routing import CARD_PREFIX
from storage import communes
from storage.models import Commune, Province, Staff, StaffRole, Tip

PLATFORM = "telegram"

_ENROLLMENT_ERRORS = {
    "invite_unknown": _("This invite code is not valid."),
    "invite_used": _("This invite code has already been used."),
    "invite_expired": _("This invite code has expired. Ask for a new one."),
    "not_allowed": _("You are not allowed to do this."),
    "bad_target": _("Unknown commune or province code."),
    "not_an_inbox": _("This group is not an inbox."),
    "console_exists": _("You already have a login for the web console."),
}


def _enrollment_error(context: CustomContext, error: EnrollmentError) -> str:
    """A refusal in words."""
    message = _ENROLLMENT_ERRORS.get(error.reason, _("You are not allowed to do this."))
    return context.translate.gettext(message)


def _who(update: Update) -> tuple[Message, Chat, User]:
    """The message, chat and sender of a command update (always present for commands)."""
    message, chat, user = update.effective_message, update.effective_chat, update.effective_user
    assert message is not None and chat is not None and user is not None
    return message, chat, user


def _display_name(update: Update) -> str:
    """How a staff member is named in cards and the audit log."""
    user = update.effective_user
    assert user is not None
    return user.full_name or (user.username or str(user.id))


async def join_code(update: Update, context: CustomContext, code: str) -> None:
    """Redeem an invite code in a private chat."""
    message, _chat, user = _who(update)
    t = context.translate
    services = context.services
    async with services.db.session() as session:
        try:
            staff = await enrollment.join(
                session,
                code=code,
                platform=PLATFORM,
                platform_user_id=user.id,
                display_name=_display_name(update),
                now=services.intake.clock(),
            )
        except EnrollmentError as error:
            await message.reply_text(_enrollment_error(context, error))
            return
        scope = ""
        if staff.commune_code is not None:
            commune = await communes.get_commune(session, staff.commune_code)
            scope = commune.label if commune else str(staff.commune_code)
        elif staff.province_code is not None:
            province = await session.get(Province, staff.province_code)
            scope = province.name if province else str(staff.province_code)
    role = t.gettext(_ROLE_NAMES.get(staff.role, staff.role))
    if staff.role in (StaffRole.OFFICER, StaffRole.SUPERVISOR):
        text = t.gettext(
            _(
                "You are enrolled as {role} {scope}. Add the bot to your inbox group and "
                "send /link there."
            )
        )
    else:
        text = t.gettext(
            _(
                "You are enrolled as {role} {scope}. Send /broadcast to schedule outreach, "
                "/campaign to open pledges, /pledges for the counts."
            )
        )
    await message.reply_text(text.format(role=role, scope=scope).replace("  ", " ").strip())


_ROLE_NAMES = {
    StaffRole.OFFICER: _("commune police officer"),
    StaffRole.SUPERVISOR: _("province supervisor"),
    StaffRole.OUTREACH: _("outreach staff"),
    StaffRole.ADMIN: _("administrator"),
}


async def on_join(update: Update, context: CustomContext) -> None:
    """/join CODE in a private chat."""
    message = update.effective_message
    assert message is not None
    code = " ".join(context.args or []).strip()
    if not code:
        await message.reply_text(
            context.translate.gettext(_("Send /join followed by your invite code."))
        )
        return
    await join_code(update, context, code)


async def on_start_invite(update: Update, context: CustomContext) -> None:
    """/start j<CODE>: an invite deep link."""
    message = update.effective_message
    assert message is not None and message.text is not None
    payload = message.text.partition(" ")[2].strip()
    await join_code(update, context, payload[len(enrollment.INVITE_PREFIX) :])


async def on_console(update: Update, context: CustomContext) -> None:
    """/console: a one-time code (and link) that opens a web console login on this account."""
    message, _chat, user = _who(update)
    t = context.translate
    services = context.services
    async with services.db.session() as session:
        staff = await enrollment.active_staff(session, platform=PLATFORM, platform_user_id=user.id)
        if staff is None:
            await message.reply_text(t.gettext(_("You are not allowed to do this.")))
            return
        try:
            new = await enrollment.create_console_link(
                session, staff=staff, now=services.intake.clock()
            )
        except EnrollmentError as error:
            await message.reply_text(_enrollment_error(context, error))
            return
    base = services.settings.public_url.rstrip("/")
    where = f"{base}/console/join?code={new.code}" if base else "/console/join"
    minutes = int(enrollment.CONSOLE_LINK_TTL.total_seconds() // 60)
    await message.reply_text(
        t.gettext(
            _(
                "Your code for the web console: <code>{code}</code> (valid {minutes} minutes, "
                "once). Open {where}, choose a username and a password, then set up the "
                "authenticator app. Your role and area stay the same."
            )
        ).format(code=new.code, minutes=minutes, where=html.escape(where)),
        parse_mode=ParseMode.HTML,
    )


async def on_link(update: Update, context: CustomContext) -> None:
    """/link [commune or province code | admin] in a group: make it an inbox."""
    message, chat, user = _who(update)
    t = context.translate
    services = context.services
    target = context.args[0] if context.args else None
    if chat.username:
        # A public group can be found and read by anyone: tips must never be posted there.
        await message.reply_text(
            t.gettext(
                _(
                    "A public group cannot be an inbox: anyone can find and read it. Make the "
                    "group private (remove its public link) and send /link again."
                )
            )
        )
        return
    async with services.db.session() as session:
        staff = await enrollment.active_staff(session, platform=PLATFORM, platform_user_id=user.id)
        if staff is None:
            await message.reply_text(t.gettext(_("Only enrolled police staff can link an inbox.")))
            return
        try:
            inbox = await enrollment.link_inbox(
                session,
                staff=staff,
                platform=PLATFORM,
                chat_id=chat.id,
                title=chat.title or "",
                target=target,
                now=services.intake.clock(),
            )
        except EnrollmentError as error:
            await message.reply_text(_enrollment_error(context, error))
            return
        if inbox.commune_code is not None:
            commune = await communes.get_commune(session, inbox.commune_code)
            scope = commune.label if commune else str(inbox.commune_code)
        elif inbox.province_code is not None:
            scope = t.gettext(_("province {code}")).format(code=inbox.province_code)
        else:
            scope = t.gettext(_("administrators"))
    await message.reply_text(
        t.gettext(_("✅ This group is now the tip inbox of {scope}.")).format(scope=scope)
    )
    assert inbox.id is not None
    waiting = await services.inbox.deliver_waiting(inbox_id=inbox.id)
    if waiting:
        await message.reply_text(
            t.ngettext(
                "{n} tip that was waiting for an inbox is delivered here now.",
                "{n} tips that were waiting for an inbox are delivered here now.",
                waiting,
            ).format(n=waiting)
        )


async def on_unlink(update: Update, context: CustomContext) -> None:
    """/unlink in a group: stop using it as an inbox."""
    message, chat, user = _who(update)
    t = context.translate
    services = context.services
    async with services.db.session() as session:
        staff = await enrollment.active_staff(session, platform=PLATFORM, platform_user_id=user.id)
        if staff is None:
            await message.reply_text(t.gettext(_("You are not allowed to do this.")))
            return
        try:
            await enrollment.unlink_inbox(
                session,
                staff=staff,
                platform=PLATFORM,
                chat_id=chat.id,
                now=services.intake.clock(),
            )
        except EnrollmentError as error:
            await message.reply_text(_enrollment_error(context, error))
            return
    await message.reply_text(t.gettext(_("This group is no longer an inbox.")))


async def on_card_button(update: Update, context: CustomContext) -> None:
    """A button on a tip card: "t:<tip id>:<action>"; checked and applied by the service."""
    query = update.callback_query
    user = update.effective_user
    assert query is not None and user is not None
    t = context.translate
    parts = (query.data or "").split(":", 2)
    if len(parts) != 3 or not parts[1].isdigit():
        await query.answer(t.gettext(_("This button is no longer valid.")))
        return
    chat_id = query.message.chat.id if query.message else user.id
    result = await context.services.inbox.press(
        platform=PLATFORM, user_id=user.id, chat_id=chat_id, tip_id=int(parts[1]), value=parts[2]
    )
    with contextlib.suppress(BadRequest):
        await query.answer(result.notice or None)
    if result.prompt is not None and query.message is not None:
        prompt = await context.bot.send_message(
            chat_id,
            result.prompt.text,
            parse_mode=ParseMode.HTML,
            reply_markup=ForceReply(selective=True),
            reply_parameters=None,
        )
        await context.services.inbox.record_post(
            inbox_chat_id=chat_id, message_id=prompt.message_id, tip_id=int(parts[1]), kind="prompt"
        )


async def on_group_reply(update: Update, context: CustomContext) -> None:
    """A reply in an inbox group to one of the bot's tip messages: an answer to the tipster."""
    message = update.effective_message
    user = update.effective_user
    chat = update.effective_chat
    if message is None or user is None or chat is None or message.reply_to_message is None:
        return
    inbox = context.services.inbox
    post = await inbox.post_for_reply(chat.id, message.reply_to_message.message_id)
    if post is None:
        return  # a reply to something else: ordinary group talk, not ours
    t = context.translate
    text = message.text or message.caption or ""
    if post.kind == "prompt":
        reply = await inbox.move_choices(
            platform=PLATFORM, user_id=user.id, tip_id=post.tip_id, query=text
        )
        await message.reply_text(
            reply.text,
            parse_mode=ParseMode.HTML,
            reply_markup=keyboard_with_prefix(reply, f"{CARD_PREFIX}{post.tip_id}:"),
        )
        return
    if not text.strip():
        await message.reply_text(
            t.gettext(_("Only text can be sent to the tipster; please write it."))
        )
        return
    answer = await inbox.police_reply(
        platform=PLATFORM, user_id=user.id, tip_id=post.tip_id, text=text
    )
    await message.reply_text(answer)


async def on_audit(update: Update, context: CustomContext) -> None:
    """/audit SHORTID: a tip's audit trail, for supervisors and admins of that tip."""
    message, _chat, user = _who(update)
    t = context.translate
    short_id = " ".join(context.args or []).strip().upper()
    if short_id and not short_id.startswith("T-"):
        short_id = "T-" + short_id
    services = context.services
    async with services.db.session() as session:
        staff = await enrollment.active_staff(session, platform=PLATFORM, platform_user_id=user.id)
        tip = (await session.exec(select(Tip).where(Tip.short_id == short_id))).first()
        commune = await session.get(Commune, tip.commune_code) if tip else None
        allowed = tip is not None and authorization.allowed(
            staff,
            Action.STAFF,  # audit trails are the supervisors' and admins' (of the tip's place)
            commune_code=tip.commune_code,
            province_code=commune.province_code if commune else None,
        )
        if not allowed or tip is None or tip.id is None:
            if tip is not None:
                audit.record(
                    session,
                    # Never the account's id: a tipster probing their own tip would be named
                    # next to it for every supervisor who reads the trail.
                    actor=staff or "telegram account (not enrolled)",
                    action="audit_view",
                    tip_id=tip.id,
                    allowed=False,
                    now=services.intake.clock(),
                )
                await session.commit()
            await message.reply_text(t.gettext(_("You are not allowed to do this.")))
            return
        events = await audit.events_for_tip(session, tip.id)
    lines = [t.gettext(_("<b>Audit of {short_id}</b>")).format(short_id=html.escape(short_id))]
    for event in events[-40:]:
        mark = "" if event.allowed else " ⛔"
        lines.append(
            f"{t.datetime(event.created_at)} · {html.escape(event.actor)} · "
            f"{html.escape(event.action)}{mark}"
        )
    await message.reply_text("\n".join(lines)[:4000], parse_mode=ParseMode.HTML)


def is_reply_to_bot(message: Message | None, bot_id: int) -> bool:
    """Whether a message replies to one of the bot's own messages."""
    return bool(
        message
        and message.reply_to_message
        and message.reply_to_message.from_user
        and message.reply_to_message.from_user.id == bot_id
    )


def _may_manage_staff(actor: Staff, target: Staff) -> bool:
    """Admins manage everyone; supervisors manage staff of their province."""
    return authorization.allowed(
        actor, Action.STAFF, commune_code=target.commune_code, province_code=target.province_code
    )


async def on_staff_list(update: Update, context: CustomContext) -> None:
    """/staff: enrolled staff an admin or supervisor may manage, and the active inboxes."""
    message, _chat, user = _who(update)
    t = context.translate
    async with context.services.db.session() as session:
        actor = await enrollment.active_staff(session, platform=PLATFORM, platform_user_id=user.id)
        if not authorization.may(actor, Action.STAFF):
            await message.reply_text(t.gettext(_("You are not allowed to do this.")))
            return
        assert actor is not None
        people = [s for s in await enrollment.list_staff(session) if _may_manage_staff(actor, s)]
        inboxes = [
            i
            for i in await enrollment.list_inboxes(session)
            if actor.role == StaffRole.ADMIN or i.province_code == actor.province_code
        ]
    lines = [t.gettext(_("<b>Staff</b> (revoke with /revoke ID):"))]
    for person in people:
        state = "" if person.active else " ⛔"
        lines.append(
            f"#{person.id} · {html.escape(person.display_name)} · "
            f"{t.gettext(_ROLE_NAMES.get(person.role, person.role))}{state}"
        )
    lines.append("")
    lines.append(t.gettext(_("<b>Inboxes</b> (unlink with /unlink in the group):")))
    for inbox in inboxes:
        lines.append(f"#{inbox.id} · {html.escape(inbox.title)} · {inbox.scope}")
    await message.reply_text("\n".join(lines)[:4000], parse_mode=ParseMode.HTML)


async def on_revoke(update: Update, context: CustomContext) -> None:
    """/revoke ID: deactivate a staff member (admins; supervisors within their province)."""
    message, _chat, user = _who(update)
    t = context.translate
    raw = (context.args or [""])[0].lstrip("#")
    services = context.services
    async with services.db.session() as session:
        actor = await enrollment.active_staff(session, platform=PLATFORM, platform_user_id=user.id)
        target = await session.get(Staff, int(raw)) if raw.isdigit() else None
        if actor is None or target is None or not _may_manage_staff(actor, target):
            await message.reply_text(t.gettext(_("You are not allowed to do this.")))
            return
        assert target.id is not None
        await enrollment.revoke_staff(
            session, staff_id=target.id, actor=actor, now=services.intake.clock()
        )
    await message.reply_text(
        t.gettext(_("{name} can no longer act on tips.")).format(name=target.display_name)
    )
