"""The police inbox: triage actions on tip cards, anonymous two-way messages, deadlines.

Every action is checked on the server (who may act on which tip), audited (refusals too), and
its effects (card edits, notices to the tipster) are outbox rows committed with the change.
"""

from __future__ import annotations

import html
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import and_, or_, update
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from bot.content.catalog import deadline_for
from bot.i18n import Translator, _, translator
from bot.services import audit, authorization, cards, enrollment, flood, outbox, routing
from bot.services.anonymity import Keyring
from bot.services.steps import Choice, Reply
from storage import communes
from storage.db import Database
from storage.models import (
    Commune,
    Inbox,
    InboxPost,
    InboxScope,
    Staff,
    Tip,
    TipAttachment,
    TipMessage,
    TipNote,
    TipStatus,
)
from storage.types import utcnow

REPLY_PREFIX = "a:"  # the tipster's "answer" button under a police message: "a:<tip id>"
MAX_REPLY_CHARS = 3500
PRESS_KEY_PREFIX = "card_press:"  # HMAC input of press counters, apart from every other key
PRESS_LIMIT = 30  # card presses per account per minute: people press a few, scripts hundreds
PRESS_WINDOW = timedelta(minutes=1)
REFUSALS_AUDITED = 3  # refused presses per account per window that get an audit row
REFUSAL_WINDOW = timedelta(minutes=10)


@dataclass
class ActionResult:
    """What the channel layer shows right away: a toast, and an optional prompt to post."""

    notice: str
    prompt: Reply | None = None
    prompt_kind: str | None = None
    ok: bool = True  # False: refused (not allowed), the console answers 403


def may_act(staff: Staff | None, tip: Tip, tip_province: int | None) -> bool:
    """Whether a staff member may act on a tip: its commune's officers, province, or admins."""
    return authorization.allowed(
        staff, authorization.Action.TIP, commune_code=tip.commune_code, province_code=tip_province
    )


def set_deadlines(tip: Tip, now: datetime) -> None:
    """Set the acknowledge and close deadlines of a new tip from the category data."""
    deadline = deadline_for(tip.category, urgent=tip.urgent)
    tip.ack_due_at = now + timedelta(minutes=deadline.ack_minutes)
    tip.close_due_at = now + timedelta(minutes=deadline.close_minutes)


class InboxService:
    """Police-side rules, messenger-agnostic."""

    def __init__(
        self,
        *,
        db: Database,
        locale: str = "vi",
        timezone: str = "Asia/Ho_Chi_Minh",
        clock: Callable[[], datetime] = utcnow,
        on_outbox: Callable[[], None] | None = None,
        keyring: Keyring | None = None,
    ) -> None:
        self.db = db
        self.t = translator(locale, timezone)
        self.clock = clock
        self.on_outbox = on_outbox or (lambda: None)
        # Keys the per-account press counters (an HMAC, never the account id itself).
        self.keyring = keyring

    # --- card buttons ---------------------------------------------------------------------

    async def press(
        self, *, platform: str, user_id: int, chat_id: int, tip_id: int, value: str
    ) -> ActionResult:
        """A button on a tip card: check the actor, apply, audit, queue the effects.

        Presses are counted per account (a keyed hash): past PRESS_LIMIT a minute the press is
        refused without touching the tip, and only the first REFUSALS_AUDITED refusals of ten
        minutes are written to the audit log, so a script cannot flood either.
        """
        now = self.clock()
        async with self.db.session() as session:
            flood_key = (
                self.keyring.user_key(PRESS_KEY_PREFIX + platform, user_id) if self.keyring else ""
            )
            if flood_key:
                presses = await flood.hit(
                    session, key=flood_key, bucket="card_press", now=now, window=PRESS_WINDOW
                )
                if presses > PRESS_LIMIT:
                    await session.commit()
                    notice = _("Too many button presses. Please wait a minute.")
                    return ActionResult(self.t.gettext(notice), ok=False)
            staff = await enrollment.active_staff(
                session, platform=platform, platform_user_id=user_id
            )
            # A group's id says which inbox; a private chat's id is the person's: never stored.
            where = f" in chat {chat_id}" if chat_id < 0 else ""
            refused_as = f"{platform} account (not enrolled){where}"
            return await self._act(
                session, staff, tip_id, value, chat_id, refused_as, flood_key=flood_key
            )

    async def act(self, *, staff_id: int, tip_id: int, value: str) -> ActionResult:
        """The same actions from the web console, by an enrolled staff member."""
        async with self.db.session() as session:
            staff = await session.get(Staff, staff_id)
            return await self._act(session, staff, tip_id, value, None, "console")

    async def _act(
        self,
        session: AsyncSession,
        staff: Staff | None,
        tip_id: int,
        value: str,
        chat_id: int | None,
        refused_as: str,
        *,
        flood_key: str = "",
    ) -> ActionResult:
        """Check the actor, apply one action, audit it and commit."""
        t = self.t
        now = self.clock()
        tip = await session.get(Tip, tip_id)
        if tip is None:
            await session.commit()  # the press counter
            return ActionResult(t.gettext(_("This tip does not exist.")))
        refused = await self._refused(
            session, staff, tip, value, refused_as, now, flood_key=flood_key
        )
        if refused is not None:
            return refused
        assert staff is not None
        result = await self._apply(session, staff, tip, value, chat_id, now)
        await session.commit()
        self.on_outbox()
        return result

    async def _refused(
        self,
        session: AsyncSession,
        staff: Staff | None,
        tip: Tip,
        action: str,
        refused_as: str,
        now: datetime,
        *,
        flood_key: str = "",
    ) -> ActionResult | None:
        """None when `staff` may act on `tip`; else the refusal, audited and committed
        (with a `flood_key`, only the first REFUSALS_AUDITED in ten minutes are audited)."""
        if may_act(staff, tip, await _province_of(session, tip.commune_code)):
            return None
        refusals = (
            await flood.hit(
                session, key=flood_key, bucket="card_refusal", now=now, window=REFUSAL_WINDOW
            )
            if flood_key
            else 0
        )
        if refusals <= REFUSALS_AUDITED:
            audit.record(
                session,
                actor=staff or refused_as,
                action=action[:32],
                tip_id=tip.id,
                allowed=False,
                now=now,
            )
        await session.commit()
        return ActionResult(self.t.gettext(_("You are not allowed to handle this tip.")), ok=False)

    async def _apply(
        self,
        session: AsyncSession,
        staff: Staff,
        tip: Tip,
        value: str,
        chat_id: int | None,
        now: datetime,
    ) -> ActionResult:
        """Apply one validated card action."""
        t = self.t
        if tip.status == TipStatus.CLOSED and value not in ("back",):
            return ActionResult(t.gettext(_("This tip is already closed.")))
        if value == "close":
            await routing.queue_card_edits(
                session, tip=tip, t=t, now=now, mode="close", only_chat=chat_id
            )
            return ActionResult(t.gettext(_("Choose the reason for closing.")))
        if value == "back":
            await routing.queue_card_edits(session, tip=tip, t=t, now=now, only_chat=chat_id)
            return ActionResult("")
        if value == "move":
            return ActionResult(
                t.gettext(_("Reply to the message below with the commune's name.")),
                prompt=Reply(
                    t.gettext(
                        _(
                            "↪️ Tip {short_id}: reply to this message with the name of the commune "
                            "or ward to send it to (accents optional)."
                        )
                    ).format(short_id=tip.short_id)
                ),
                prompt_kind="prompt",
            )
        before = _tip_view(tip)
        notice = ""
        tipster_text: str | None = None
        if value == "ack":
            if tip.status != TipStatus.NEW:
                return ActionResult(t.gettext(_("This tip was already acknowledged.")))
            tip.status = TipStatus.ACKNOWLEDGED
            tip.acknowledged_at = now
            notice = t.gettext(_("Acknowledged."))
            tipster_text = t.gettext(
                _("👮 Your tip {short_id} has been received by the police and is being handled.")
            ).format(short_id=tip.short_id)
        elif value in ("v1", "v0"):
            tip.valuable = value == "v1"
            notice = t.gettext(_("Saved."))
        elif value == "ver":
            tip.status = TipStatus.VERIFYING
            tip.acknowledged_at = tip.acknowledged_at or now
            notice = t.gettext(_("Saved."))
        elif value.startswith("cl:") and value[3:] in ("done", "false", "dup", "out"):
            tip.status = TipStatus.CLOSED
            tip.closed_at = now
            tip.close_reason = value[3:]
            tip.acknowledged_at = tip.acknowledged_at or now
            notice = t.gettext(_("Closed."))
            tipster_text = t.gettext(
                _(
                    "✅ Your tip {short_id} has been dealt with and is now closed. "
                    "Thank you for helping keep the community safe."
                )
            ).format(short_id=tip.short_id)
        elif value.startswith("mv:") and value[3:].isdigit():
            return await self._move(session, staff, tip, int(value[3:]), now)
        elif value == "esc":
            return await self._escalate(session, staff, tip, now, reason="escalated")
        else:
            return ActionResult(t.gettext(_("This button is no longer valid.")))
        session.add(tip)
        action = "close" if value.startswith("cl:") else value
        audit.record(
            session,
            actor=staff,
            action=action,
            tip_id=tip.id,
            before=before,
            after=_tip_view(tip),
            now=now,
        )
        await routing.queue_card_edits(session, tip=tip, t=t, now=now)
        if tipster_text and tip.reply_route:
            outbox.enqueue(
                session,
                kind="tipster",
                route=tip.reply_route,
                tip_id=tip.id,
                now=now,
                payload={"text": tipster_text},
            )
        return ActionResult(notice)

    async def _move(
        self, session: AsyncSession, staff: Staff, tip: Tip, commune_code: int, now: datetime
    ) -> ActionResult:
        """Re-route a tip to another commune; its card goes to that commune's inbox."""
        t = self.t
        target = await communes.get_commune(session, commune_code)
        if target is None:
            return ActionResult(t.gettext(_("Unknown commune.")))
        before = _tip_view(tip)
        tip.commune_code = commune_code
        audit.record(
            session,
            actor=staff,
            action="move",
            tip_id=tip.id,
            before=before,
            after=_tip_view(tip),
            now=now,
        )
        inbox = await routing.deliver(session, tip=tip, t=t, now=now, reason="moved", actor=staff)
        await routing.queue_card_edits(
            session,
            tip=tip,
            t=t,
            now=now,
            note=t.gettext(_("Moved to {place}")).format(place=target.label),
        )
        if inbox is None:
            return ActionResult(t.gettext(_("Moved, but no inbox exists for it yet.")))
        return ActionResult(t.gettext(_("Moved to {place}.")).format(place=target.label))

    async def _escalate(
        self, session: AsyncSession, staff: Staff | None, tip: Tip, now: datetime, *, reason: str
    ) -> ActionResult:
        """Send a tip up to the province inbox (or the admins')."""
        t = self.t
        previous = tip.inbox_id
        inbox = await routing.deliver(
            session,
            tip=tip,
            t=t,
            now=now,
            reason=reason,
            actor=staff,
            escalate=True,
            exclude={previous} if previous else None,
        )
        tip.escalated_at = now
        session.add(tip)
        audit.record(
            session,
            actor=staff or audit.SYSTEM,
            action="esc",
            tip_id=tip.id,
            before={"inbox": previous},
            after={"inbox": tip.inbox_id, "reason": reason},
            now=now,
        )
        await routing.queue_card_edits(session, tip=tip, t=t, now=now)
        if inbox is None:
            return ActionResult(t.gettext(_("There is no province inbox to escalate to.")))
        return ActionResult(t.gettext(_("Sent to the province.")))

    # --- move prompt and police replies -------------------------------------------------

    async def post_for_reply(self, chat_id: int, message_id: int) -> InboxPost | None:
        """The inbox post an officer replied to, if it belongs to a tip."""
        async with self.db.session() as session:
            statement = select(InboxPost).where(
                InboxPost.chat_id == chat_id, InboxPost.message_id == message_id
            )
            return (await session.exec(statement)).first()

    async def record_post(
        self, *, inbox_chat_id: int, message_id: int, tip_id: int, kind: str
    ) -> None:
        """Remember a message posted directly (a prompt) so replies to it find its tip."""
        async with self.db.session() as session:
            inbox = (
                await session.exec(select(Inbox).where(Inbox.chat_id == inbox_chat_id))
            ).first()
            if inbox is None or inbox.id is None:
                return  # a card left in a group that is no longer an inbox
            session.add(
                InboxPost(
                    inbox_id=inbox.id,
                    chat_id=inbox_chat_id,
                    message_id=message_id,
                    tip_id=tip_id,
                    kind=kind,
                    created_at=self.clock(),
                )
            )
            await session.commit()

    async def move_choices(self, *, platform: str, user_id: int, tip_id: int, query: str) -> Reply:
        """Communes matching a typed name, as buttons that move the tip there."""
        t = self.t
        async with self.db.session() as session:
            staff = await enrollment.active_staff(
                session, platform=platform, platform_user_id=user_id
            )
            tip = await session.get(Tip, tip_id)
            if tip is None or not may_act(
                staff, tip, await _province_of(session, tip.commune_code)
            ):
                return Reply(t.gettext(_("You are not allowed to handle this tip.")))
            results = await communes.search_communes(session, query)
        if not results:
            return Reply(
                t.gettext(_("No commune matches. Reply to the prompt again with another name."))
            )
        return Reply(
            t.gettext(_("Move tip {short_id} to:")).format(short_id=tip.short_id),
            tuple((Choice(f"mv:{r.code}", r.label),) for r in results),
        )

    async def police_reply(self, *, platform: str, user_id: int, tip_id: int, text: str) -> str:
        """An officer's reply to a tip: to the tipster through the encrypted route, anonymously."""
        async with self.db.session() as session:
            staff = await enrollment.active_staff(
                session, platform=platform, platform_user_id=user_id
            )
            refused_as = f"telegram user (not enrolled) {platform}"
            return (await self._reply(session, staff, tip_id, text, refused_as)).notice

    async def reply(self, *, staff_id: int, tip_id: int, text: str) -> ActionResult:
        """The same reply from the web console."""
        async with self.db.session() as session:
            staff = await session.get(Staff, staff_id)
            return await self._reply(session, staff, tip_id, text, "console")

    async def _reply(
        self, session: AsyncSession, staff: Staff | None, tip_id: int, text: str, refused_as: str
    ) -> ActionResult:
        """Check the actor, store the police message, queue it to the tipster, commit."""
        t = self.t
        now = self.clock()
        tip = await session.get(Tip, tip_id)
        if tip is None:
            return ActionResult(t.gettext(_("This tip does not exist.")), ok=False)
        refused = await self._refused(session, staff, tip, "reply", refused_as, now)
        if refused is not None:
            return refused
        if tip.reply_route is None:
            return ActionResult(
                t.gettext(_("The tipster can no longer be reached (the route was purged).")),
                ok=False,
            )
        body = text[:MAX_REPLY_CHARS]
        session.add(TipMessage(tip_id=tip_id, author="police", text=body, created_at=now))
        audit.record(
            session,
            actor=staff,
            action="reply",
            tip_id=tip.id,
            after={"chars": len(body)},
            now=now,
        )
        reply = Reply(
            t.gettext(_("💬 <b>The police answered about your tip {short_id}:</b>")).format(
                short_id=tip.short_id
            )
            + "\n"
            + html.escape(body),
            ((Choice(str(tip_id), t.gettext(_("↩️ Answer"))),),),
        )
        outbox.enqueue(
            session,
            kind="tipster",
            route=tip.reply_route,
            tip_id=tip.id,
            now=now,
            payload={
                "text": reply.text,
                "buttons": outbox.buttons_payload(reply, REPLY_PREFIX),
            },
        )
        await session.commit()
        self.on_outbox()
        return ActionResult(t.gettext(_("Sent to the tipster, anonymously.")))

    async def add_note(self, *, staff_id: int, tip_id: int, text: str) -> ActionResult:
        """An internal note on a tip, for police only (the console's notes)."""
        t = self.t
        now = self.clock()
        body = text.strip()[:MAX_REPLY_CHARS]
        async with self.db.session() as session:
            staff = await session.get(Staff, staff_id)
            tip = await session.get(Tip, tip_id)
            if tip is None or staff is None or staff.id is None:
                return ActionResult(t.gettext(_("This tip does not exist.")), ok=False)
            refused = await self._refused(session, staff, tip, "note", "console", now)
            if refused is not None:
                return refused
            if not body:
                return ActionResult(t.gettext(_("The note is empty.")), ok=False)
            session.add(TipNote(tip_id=tip_id, staff_id=staff.id, text=body, created_at=now))
            audit.record(
                session,
                actor=staff,
                action="note",
                tip_id=tip.id,
                after={"chars": len(body)},
                now=now,
            )
            await session.commit()
        return ActionResult(t.gettext(_("Note saved.")))

    # --- deadlines ------------------------------------------------------------------------

    async def deliver_waiting(self, *, inbox_id: int) -> int:
        """Deliver at once the open tips that waited with no inbox and now have this one.

        Tips confirmed while their commune (and province) had no inbox are kept with none;
        without this they would wait for a deadline job to move them. Returns how many.
        """
        now = self.clock()
        async with self.db.session() as session:
            inbox = await session.get(Inbox, inbox_id)
            if inbox is None or inbox.status != "active":
                return 0
            statement = select(Tip).where(
                col(Tip.inbox_id).is_(None), col(Tip.status) != TipStatus.CLOSED
            )
            if inbox.scope == InboxScope.COMMUNE:
                statement = statement.where(col(Tip.commune_code) == inbox.commune_code)
            elif inbox.scope == InboxScope.PROVINCE:
                in_province = select(Commune.code).where(
                    Commune.province_code == inbox.province_code
                )
                statement = statement.where(col(Tip.commune_code).in_(in_province))
            delivered = 0
            for tip in (await session.exec(statement.order_by(col(Tip.id)))).all():
                # The usual choice (commune, then province, then admins) now finds an inbox.
                if await routing.deliver(
                    session, tip=tip, t=self.t, now=now, reason="inbox_linked"
                ):
                    delivered += 1
            await session.commit()
        if delivered:
            self.on_outbox()
        return delivered

    async def check_deadlines(self) -> int:
        """Remind and escalate tips past their deadlines; return how many were escalated."""
        now = self.clock()
        escalated = 0
        async with self.db.session() as session:
            ack_missed = and_(
                col(Tip.status) == TipStatus.NEW,
                col(Tip.ack_due_at) <= now,
                col(Tip.ack_escalated).is_(False),
            )
            close_missed = and_(
                col(Tip.status) != TipStatus.CLOSED,
                col(Tip.close_due_at) <= now,
                col(Tip.close_escalated).is_(False),
            )
            statement = select(Tip.id).where(or_(ack_missed, close_missed)).limit(200)
            overdue = [tip_id for tip_id in (await session.exec(statement)).all() if tip_id]
            await session.commit()
        for tip_id in overdue:
            if await self._escalate_overdue(tip_id, now):
                escalated += 1
        if escalated:
            self.on_outbox()
        return escalated

    async def _escalate_overdue(self, tip_id: int, now: datetime) -> bool:
        """Escalate one overdue tip, claimed by a conditional update so it happens once."""
        t = self.t
        async with self.db.session() as session:
            tip = await session.get(Tip, tip_id)
            if tip is None:
                return False
            ack_missed = (
                tip.status == TipStatus.NEW and tip.ack_due_at is not None and tip.ack_due_at <= now
            )
            flag = "ack_escalated" if ack_missed and not tip.ack_escalated else "close_escalated"
            claimed = await session.exec(
                update(Tip)
                .where(col(Tip.id) == tip_id, getattr(Tip, flag) == False)  # noqa: E712
                .values({flag: True})
            )
            if claimed.rowcount != 1:
                await session.rollback()
                return False
            await session.refresh(tip)
            what = t.gettext(_("acknowledge")) if flag == "ack_escalated" else t.gettext(_("close"))
            audit.record(
                session,
                actor=audit.SYSTEM,
                action="deadline",
                tip_id=tip.id,
                after={"missed": flag.removesuffix("_escalated")},
                now=now,
            )
            if tip.inbox_id is not None:
                inbox = await session.get(Inbox, tip.inbox_id)
                if inbox is not None and inbox.status == "active":
                    outbox.enqueue(
                        session,
                        kind="text",
                        chat_id=inbox.chat_id,
                        inbox_id=inbox.id,
                        tip_id=tip.id,
                        now=now,
                        payload={
                            "text": t.gettext(
                                _(
                                    "⏰ Tip {short_id} is past its deadline to {what}. It has been "
                                    "reported to the province."
                                )
                            ).format(short_id=tip.short_id, what=what),
                            "reply_to_card": True,
                        },
                    )
            if tip.route_level in ("commune", "none"):
                await self._escalate(session, None, tip, now, reason=f"deadline_{flag}")
            await session.commit()
            return True

    # --- citizen messages to the inbox ----------------------------------------------------

    @staticmethod
    async def queue_reply_held(
        session: AsyncSession, *, t: Translator, tip: Tip, now: datetime
    ) -> None:
        """Tell the tip's inbox that a reply waits for the tipster to write again (no commit)."""
        if tip.inbox_id is None:
            return
        inbox = await session.get(Inbox, tip.inbox_id)
        if inbox is None or inbox.status != "active":
            return
        text = t.gettext(
            _(
                "⏳ <b>Your reply about {short_id} could not be delivered yet:</b> the tipster "
                "has not written for over 7 days, and Zalo only lets us answer within 7 days of "
                "their last message. It will be delivered as soon as they write again."
            )
        ).format(short_id=tip.short_id)
        outbox.enqueue(
            session,
            kind="text",
            chat_id=inbox.chat_id,
            inbox_id=inbox.id,
            tip_id=tip.id,
            now=now,
            payload={"text": text, "reply_to_card": True},
        )

    @staticmethod
    async def queue_citizen_message(
        session: AsyncSession,
        *,
        t: Translator,
        tip: Tip,
        text: str,
        attachment: TipAttachment | None,
        now: datetime,
    ) -> None:
        """Thread a tipster's addition under the tip's card in its current inbox (no commit)."""
        if tip.inbox_id is None:
            return
        inbox = await session.get(Inbox, tip.inbox_id)
        if inbox is None or inbox.status != "active":
            return
        header = t.gettext(_("💬 <b>The tipster added to {short_id}:</b>")).format(
            short_id=tip.short_id
        )
        common = {"chat_id": inbox.chat_id, "inbox_id": inbox.id, "tip_id": tip.id, "now": now}
        if attachment is not None:
            await session.flush()
            outbox.enqueue(
                session,
                kind="file",
                payload={
                    "attachment_id": attachment.id,
                    "caption": cards.file_caption(t, f"{tip.short_id}: {text}", attachment.note),
                    "post_kind": "citizen",
                    "reply_to_card": True,
                },
                **common,  # type: ignore[arg-type]
            )
            return
        outbox.enqueue(
            session,
            kind="text",
            payload={
                "text": header + "\n" + html.escape(text[:3500]),
                "post_kind": "citizen",
                "reply_to_card": True,
            },
            **common,  # type: ignore[arg-type]
        )


async def _province_of(session: AsyncSession, commune_code: int) -> int | None:
    """The province of a commune."""
    commune = await session.get(Commune, commune_code)
    return commune.province_code if commune else None


def _tip_view(tip: Tip) -> dict[str, object]:
    """The audited fields of a tip."""
    return {
        "status": tip.status,
        "valuable": tip.valuable,
        "commune": tip.commune_code,
        "inbox": tip.inbox_id,
        "close_reason": tip.close_reason,
    }
