"""Citizen intake: the tip conversation as a state machine over the draft row.

Messenger-agnostic (DESIGN principle 3): events in, replies out. The draft row is the whole
state (principle 2), so a restart or a second process changes nothing for the citizen. The tip
is committed before the citizen is told it was received (principle 5).
"""

from __future__ import annotations

import contextlib
import html
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import delete
from sqlalchemy.orm.attributes import flag_modified
from sqlmodel import col
from sqlmodel.ext.asyncio.session import AsyncSession

from bot.content.catalog import category_by_id
from bot.i18n import Translator, _, translator
from bot.services import drafts, flood, routing, tips
from bot.services import intake_steps as steps
from bot.services.anonymity import (
    Keyring,
    RouteError,
    new_receipt_code,
    normalize_receipt_code,
)
from bot.services.channels import has_buttons
from bot.services.events import (
    AnswerPolice,
    Command,
    EditedText,
    Event,
    Location,
    Media,
    Pick,
    Start,
    Text,
    Unsupported,
)
from bot.services.flow import Flow
from bot.services.flow import Turn as _Turn
from bot.services.inbox import InboxService, set_deadlines
from bot.services.status import render_status
from bot.services.steps import Outcome, Reply, match_typed_choice
from storage import communes
from storage.db import Database
from storage.models import ConversationDraft, Tip, TipAttachment, TipMessage
from storage.types import utcnow

DEEP_LINK_PREFIX = "c"
MINUTE = timedelta(minutes=1)
HOUR = timedelta(hours=1)
TIP_STATES = drafts.STATES_WORTH_NOTICE - {"add"}


@dataclass(frozen=True)
class IntakeLimits:
    """Limits that keep the tip line usable and bounded."""

    draft_ttl: timedelta = timedelta(hours=24)
    tips_per_hour: int = 5
    messages_per_minute: int = 30
    max_text_chars: int = 20_000
    max_files: int = 30


class IntakeService:
    """Runs citizens' conversations: tips, follow-ups and additions."""

    def __init__(
        self,
        *,
        db: Database,
        keyring: Keyring,
        limits: IntakeLimits | None = None,
        timezone: str = "Asia/Ho_Chi_Minh",
        police_locale: str = "vi",
        clock: Callable[[], datetime] = utcnow,
        on_outbox: Callable[[], None] | None = None,
    ) -> None:
        self.db = db
        self.keyring = keyring
        self.limits = limits or IntakeLimits()
        self.timezone = timezone
        self.police_t = translator(police_locale, timezone)
        self.clock = clock
        self.on_outbox = on_outbox or (lambda: None)
        self.flows: list[Flow] = []

    def add_flow(self, flow: Flow) -> None:
        """Plug in another conversation (outreach, broadcasts) sharing the draft row."""
        self.flows.append(flow)

    async def go(self, turn: _Turn, state: str, *, show: bool = True) -> None:
        """Enter a state (for flows): new step token, shown unless `show` is False."""
        await self._go(turn, state, show=show)

    async def show(self, turn: _Turn, *, quiet: bool = False) -> None:
        """Show the current step again (for flows)."""
        await self._show(turn, quiet=quiet)

    async def start_place_picker(self, turn: _Turn, purpose: str) -> None:
        """Let a flow reuse the place picker; it continues in the flow's `after_place`."""
        turn.data["purpose"] = purpose
        await self._go(turn, "place")

    def _flow_for_state(self, state: str) -> Flow | None:
        """The plugged-in flow that owns a state, if any."""
        return next((flow for flow in self.flows if state in flow.states), None)

    async def handle(
        self, *, channel: str, user_id: int | str, chat_id: int | str, event: Event, locale: str
    ) -> Outcome:
        """Apply one event from a citizen and return what to answer, in one transaction."""
        key = self.keyring.user_key(channel, user_id)
        now = self.clock()
        t = translator(locale, self.timezone)
        async with self.db.session() as session:
            await drafts.lock(session, key)
            hits = await flood.hit(session, key=key, bucket="msg", now=now, window=MINUTE)
            if hits > self.limits.messages_per_minute:
                await session.commit()
                # Tell once per window; answering every extra message would feed the flood.
                if hits == self.limits.messages_per_minute + 1:
                    return Outcome(
                        [
                            Reply(
                                t.gettext(
                                    _(
                                        "You are sending messages too fast. Please wait a minute; "
                                        "what you sent in the meantime was not saved."
                                    )
                                )
                            )
                        ]
                    )
                return Outcome()
            draft = await drafts.load(session, key)
            if draft is None and self.keyring.has_previous:
                # Since a key rotation the citizen's draft may still sit under their old key
                # until `tinbao keys rotate` re-keys it: a restart with a new secret must not
                # cut a conversation short (DESIGN principle 2).
                draft = await drafts.adopt(
                    session, key, self.keyring.previous_user_keys(channel, user_id)
                )
            if draft is not None and draft.expires_at <= now:
                await drafts.discard(session, key)
                draft = None
            fresh = draft is None
            if draft is None:
                draft = ConversationDraft(
                    key=key,
                    channel=channel,
                    route=self.keyring.encrypt_route(channel, chat_id),
                    state="menu",
                    data={},
                    locale=t.locale,
                    expires_at=now + self.limits.draft_ttl,
                )
            turn = _Turn(session, draft, t, now, Outcome(), channel=channel, user_id=str(user_id))
            keep = await self._dispatch(turn, event, fresh)
            if keep:
                draft.updated_at = now
                draft.expires_at = now + self.limits.draft_ttl
                session.add(draft)
                # The JSON dict was changed in place, which SQLAlchemy cannot see by itself.
                flag_modified(draft, "data")
            elif not fresh:
                await drafts.discard(session, key)
            await session.commit()
        if turn.queued:
            self.on_outbox()
        return turn.outcome

    async def expire_drafts(self) -> list[tuple[str, str, Reply]]:
        """Remove silent drafts; return (channel, chat id, notice) for those worth telling."""
        async with self.db.session() as session:
            expired = await drafts.expire(session, now=self.clock())
        notices = []
        for item in expired:
            if not item.notify:
                continue
            try:
                channel, chat_id = self.keyring.decrypt_route(item.route)
            except RouteError:
                # Its key was dropped from TINBAO_PREVIOUS_SECRET_KEYS: this notice cannot be
                # sent, the others still are.
                continue
            t = translator(item.locale, self.timezone)
            notices.append(
                (
                    channel,
                    chat_id,
                    Reply(
                        t.gettext(
                            _(
                                "Your unfinished tip was deleted after 24 hours without activity. "
                                "Nothing was sent. Press /start to begin again."
                            )
                        )
                    ),
                )
            )
        return notices

    # --- dispatch -------------------------------------------------------------------------

    async def _dispatch(self, turn: _Turn, event: Event, fresh: bool) -> bool:
        """Route an event to its handler; return whether the draft should be kept."""
        match event:
            case Start(payload=payload):
                return await self._on_start(turn, payload, fresh)
            case Command():
                return await self._on_command(turn, event)
            case Pick():
                return await self._on_pick(turn, event)
            case Text():
                return await self._on_text(turn, event)
            case EditedText():
                return await self._on_edit(turn, event)
            case Media():
                return await self._on_media(turn, event)
            case Location():
                return await self._on_location(turn, event)
            case AnswerPolice(tip_id=tip_id):
                tip = await turn.session.get(Tip, tip_id)
                if tip is not None:
                    await self._enter_add(turn, tip)
                return True
            case Unsupported(kind=kind):
                turn.note(self._unsupported_text(turn.t, kind))
                await self._show(turn)
                return True
        return True  # pragma: no cover - exhaustive match

    async def _on_start(self, turn: _Turn, payload: str | None, fresh: bool) -> bool:
        """/start: the menu, or a tip that begins at the deep link's commune."""
        commune = None
        for flow in self.flows:
            if payload and await flow.on_start_payload(turn, payload):
                return True
        if payload:
            commune = await self._commune_from_payload(turn.session, payload)
            if commune is None:
                turn.note(
                    turn.t.gettext(
                        _(
                            "The link you opened does not name a known commune; "
                            "you can choose the place yourself."
                        )
                    )
                )
        if commune is not None:
            turn.data["hint"] = commune.code
        if not fresh and turn.draft.state in TIP_STATES:
            await self._go(turn, "resume")
            return True
        if commune is not None:
            turn.data.clear()
            turn.data["hint"] = commune.code
            await self._go(turn, "category")
            return True
        await self._go(turn, "menu")
        return True

    async def _commune_from_payload(
        self, session: AsyncSession, payload: str
    ) -> communes.CommuneChoice | None:
        """Resolve a deep-link payload such as `c26734` to a commune."""
        if not payload.startswith(DEEP_LINK_PREFIX) or not payload[1:].isdigit():
            return None
        return await communes.get_commune(session, int(payload[1:]))

    async def _on_command(self, turn: _Turn, command: Command) -> bool:
        """Commands that work everywhere: /cancel, /help, /status, /add; others are unknown."""
        t = turn.t
        name = command.name
        if name == "cancel":
            turn.data.clear()
            turn.note(t.gettext(_("Cancelled. Nothing was sent.")))
            await self._go(turn, "menu")
            await self._discard_files(turn)
            return True
        if name == "help":
            turn.note(help_text(t))
            await self._show(turn)
            return True
        if name == "status":
            if not command.argument.strip():
                await self._go(turn, "status_code")
                return True
            await self._show_status(turn, command.argument)
            return True
        if name == "add":
            if not command.argument.strip():
                turn.data["after_code"] = "add"
                await self._go(turn, "status_code")
                return True
            await self._begin_add(turn, command.argument)
            return True
        for flow in self.flows:
            if name in flow.commands:
                return await flow.on_command(turn, command)
        turn.note(t.gettext(_("Unknown command. Use /start for the menu or /help for help.")))
        await self._show(turn)
        return True

    async def _on_pick(self, turn: _Turn, pick: Pick) -> bool:
        """A button press: refuse stale or forged ones, then apply the choice."""
        t = turn.t
        if pick.token != turn.draft.step_token:
            turn.outcome.notice = t.gettext(_("This button is no longer valid."))
            await self._show(turn)
            return True
        current = await self._render(turn)
        allowed = {choice.value for choice in current.flat_choices()}
        if pick.value not in allowed:
            turn.outcome.notice = t.gettext(_("This option is not available."))
            await self._show(turn)
            return True
        return await self._apply(turn, pick.value)

    async def _apply(self, turn: _Turn, value: str) -> bool:
        """Apply a validated choice in the current state."""
        state = turn.draft.state
        data = turn.data
        if value == "x":
            return await self._on_command(turn, Command("cancel"))
        if value == "menu":
            data.pop("after_code", None)
            await self._go(turn, "menu")
            return True
        if state == "menu":
            return await self._apply_menu(turn, value)
        flow = self._flow_for_state(state)
        if flow is not None:
            return await flow.apply(turn, value)
        if state == "resume":
            if value == "restart":
                await self._discard_files(turn)
                hint = data.get("hint")
                data.clear()
                if hint:
                    data["hint"] = hint
                await self._go(turn, "category")
            else:
                await self._go(turn, data.get("resume_state", "category"))
            return True
        if state == "category":
            data["category"] = value.removeprefix("c:")
            await self._go(turn, "review" if data.get("editing") else "urgent")
            return True
        if state == "urgent":
            data["urgent"] = value == "y"
            if value == "y":
                turn.say(steps.hotline_notice(turn.t, str(data.get("category"))))
            await self._go(turn, "place_confirm" if data.get("hint") else "place")
            return True
        if state == "place_confirm":
            if value == "ok":
                data["commune"] = data["hint"]
                await self._after_place(turn)
            else:
                await self._go(turn, "place")
            return True
        if state in ("place", "place_results", "province", "commune"):
            return await self._apply_place(turn, value)
        if state == "details":
            return await self._apply_details(turn, value)
        if state == "review":
            return await self._apply_review(turn, value)
        if state == "add" and value == "done":
            turn.note(turn.t.gettext(_("Thank you. The police will see what you added.")))
            data.clear()
            await self._go(turn, "menu")
            return True
        await self._show(turn)
        return True

    async def _apply_menu(self, turn: _Turn, value: str) -> bool:
        """Main menu entries."""
        for flow in self.flows:
            if value in flow.menu_values:
                return await flow.on_menu(turn, value)
        if value == "report":
            hint = turn.data.get("hint")
            turn.data.clear()
            if hint:
                turn.data["hint"] = hint
            await self._go(turn, "category")
        elif value == "status":
            await self._go(turn, "status_code")
        elif value == "hotlines":
            turn.say(steps.all_hotlines(turn.t))
            await self._show(turn)
        else:
            turn.note(help_text(turn.t))
            await self._show(turn)
        return True

    async def _apply_place(self, turn: _Turn, value: str) -> bool:
        """Place picking: by name results, by province pages, by commune pages."""
        data = turn.data
        if value == "prov":
            data["page"] = 0
            await self._go(turn, "province")
        elif value.startswith("p:"):
            data["province"] = int(value[2:])
            data["page"] = 0
            await self._go(turn, "commune")
        elif value.startswith("pg:"):
            data["page"] = int(value[3:])
            await self._go(turn, turn.draft.state)
        elif value == "back":
            data["page"] = 0
            await self._go(turn, "province")
        elif value.startswith("m:"):
            data["commune"] = int(value[2:])
            await self._after_place(turn)
        return True

    async def _after_place(self, turn: _Turn) -> None:
        """Move on once the commune is known."""
        for key in ("results", "query", "page", "province"):
            turn.data.pop(key, None)
        purpose = turn.data.get("purpose")
        for flow in self.flows:
            if purpose in flow.purposes:
                await flow.after_place(turn)
                return
        await self._go(turn, "review" if turn.data.get("editing") else "details")

    async def _apply_details(self, turn: _Turn, value: str) -> bool:
        """Done collecting details, or clear them."""
        if value == "clear":
            turn.data["parts"] = []
            turn.data.pop("location", None)
            await self._discard_files(turn)
            turn.note(turn.t.gettext(_("Details cleared. Send them again.")))
            await self._show(turn)
            return True
        files = await tips.draft_attachment_count(turn.session, draft_key=turn.draft.key)
        if not turn.data.get("parts") and not files and not turn.data.get("location"):
            turn.note(
                turn.t.gettext(
                    _("Please describe what happened first (a message, a photo or a file).")
                )
            )
            await self._show(turn)
            return True
        await self._go(turn, "review")
        return True

    async def _apply_review(self, turn: _Turn, value: str) -> bool:
        """Send, or go back to edit one part."""
        if value == "send":
            return await self._confirm(turn)
        turn.data["editing"] = True
        if value == "e:cat":
            await self._go(turn, "category")
        elif value == "e:place":
            await self._go(turn, "place")
        else:
            turn.data["edit_details"] = True
            await self._go(turn, "details")
        return True

    async def _confirm(self, turn: _Turn) -> bool:
        """Commit the tip, then (and only then) tell the citizen it was received."""
        t = turn.t
        key = turn.draft.key
        sent = await flood.count(turn.session, key=key, bucket="tip", now=turn.now, window=HOUR)
        if sent >= self.limits.tips_per_hour:
            turn.note(
                t.gettext(
                    _(
                        "You have sent many tips in the last hour. Your tip is kept here: please "
                        "press Send again later. If it is an emergency, call 113."
                    )
                )
            )
            await self._show(turn)
            return True
        data = turn.data
        code = new_receipt_code()
        channel, chat_id = self.keyring.decrypt_route(turn.draft.route)
        location = data.get("location")
        tip = await tips.create_tip(
            turn.session,
            new=tips.NewTip(
                channel=channel,
                category=str(data["category"]),
                urgent=bool(data.get("urgent")),
                commune_code=int(data["commune"]),
                text="\n\n".join(part["text"] for part in data.get("parts", [])),
                location=(float(location[0]), float(location[1])) if location else None,
                receipt_hash=self.keyring.receipt_hash(code),
                reply_route=self.keyring.encrypt_route(channel, chat_id),
                receipt_key_id=self.keyring.key_id,
            ),
            draft_key=key,
            now=turn.now,
        )
        set_deadlines(tip, turn.now)
        await routing.deliver(
            turn.session, tip=tip, t=self.police_t, now=turn.now, reason="new_tip"
        )
        turn.queued = True
        await flood.hit(turn.session, key=key, bucket="tip", now=turn.now, window=HOUR)
        receipt = code  # new_receipt_code() is already in its readable, grouped form
        turn.say(
            Reply(
                t.gettext(
                    _(
                        "✅ <b>Your tip was received.</b> Thank you!\n\n"
                        "Your receipt code: <code>{code}</code>\n"
                        "Keep it: it is the only way to follow up, because we do not know "
                        "who you are.\n"
                        "• /status {code} — see the status and the police's answers\n"
                        "• /add {code} — add information\n"
                        "Tip number for the police: {short_id}."
                    )
                ).format(code=receipt, short_id=tip.short_id)
            )
        )
        data.clear()
        await self._go(turn, "menu", show=False)
        return True

    async def _on_text(self, turn: _Turn, event: Text) -> bool:
        """A text message: content, a search, a code, or a typed-back choice."""
        state = turn.draft.state
        text = event.text.strip()
        flow = self._flow_for_state(state)
        if flow is not None:
            return await flow.on_text(turn, event.text)
        if state in ("details", "add"):
            typed = match_typed_choice(await self._render(turn), text)
            # With buttons, a bare number here is a detail (a house number); without, the choice.
            number_is_choice = text.isdigit() and not has_buttons(turn.channel)
            if typed is not None and len(text) < 20 and (number_is_choice or not text.isdigit()):
                return await self._apply(turn, typed.value)
            return await self._add_text(turn, event)
        if state in ("place", "place_results", "province", "commune"):
            typed = match_typed_choice(await self._render(turn), text)
            if typed is not None:
                return await self._apply(turn, typed.value)
            results = await communes.search_communes(turn.session, text)
            turn.data["query"] = text[:100]
            turn.data["results"] = [r.code for r in results]
            await self._go(turn, "place_results")
            return True
        if state == "status_code":
            typed = match_typed_choice(await self._render(turn), text)
            if typed is not None:
                return await self._apply(turn, typed.value)
            if turn.data.pop("after_code", None) == "add":
                await self._begin_add(turn, text)
            else:
                await self._show_status(turn, text)
            return True
        typed = match_typed_choice(await self._render(turn), text)
        if typed is not None:
            return await self._apply(turn, typed.value)
        turn.note(turn.t.gettext(_("Please choose one of the options below.")))
        await self._show(turn)
        return True

    async def _add_text(self, turn: _Turn, event: Text) -> bool:
        """Collect a text of the details, or of an addition to a sent tip."""
        t = turn.t
        if turn.draft.state == "add":
            await self._add_to_tip(turn, event.text)
            turn.note(t.gettext(_("Added to your tip. Send more, or press Done.")))
            await self._show(turn, quiet=True)
            return True
        parts: list[dict[str, Any]] = list(turn.data.get("parts", []))
        used = sum(len(part["text"]) for part in parts)
        if used + len(event.text) > self.limits.max_text_chars:
            turn.note(
                t.gettext(
                    _(
                        "This message would make the details too long (over {limit} characters) "
                        "and was not added. Please shorten it, or send a file instead."
                    )
                ).format(limit=t.number(self.limits.max_text_chars))
            )
            await self._show(turn, quiet=True)
            return True
        parts.append({"mid": event.message_id, "text": event.text})
        turn.data["parts"] = parts
        await self._acknowledge_details(turn)
        return True

    async def _on_edit(self, turn: _Turn, event: EditedText) -> bool:
        """An edited message: update the draft's copy while details are being collected."""
        t = turn.t
        parts = turn.data.get("parts", [])
        if turn.draft.state in ("details", "review"):
            for part in parts:
                if part.get("mid") == event.message_id:
                    part["text"] = event.text
                    turn.note(t.gettext(_("Your correction was saved.")))
                    await self._show(turn, quiet=turn.draft.state == "details")
                    return True
        turn.note(
            t.gettext(
                _(
                    "Edited messages cannot change a tip that was already sent or a past step. "
                    "Please send the correction as a new message (or use /add with your code)."
                )
            )
        )
        await self._show(turn, quiet=True)
        return True

    async def _on_media(self, turn: _Turn, media: Media) -> bool:
        """A file: kept (already stripped of metadata) in details or in an addition."""
        t = turn.t
        state = turn.draft.state
        flow = self._flow_for_state(state)
        if flow is not None:
            return await flow.on_media(turn, media)
        if state not in ("details", "add"):
            turn.note(
                t.gettext(
                    _(
                        "Files can be sent at the details step of a tip. Nothing was saved; "
                        "please send it again there."
                    )
                )
            )
            await self._show(turn)
            return True
        key = turn.draft.key
        # Details and additions have the same cap: /add must not be a way around it.
        if state == "details":
            count = await tips.draft_attachment_count(turn.session, draft_key=key)
        else:
            count = await tips.tip_attachment_count(turn.session, tip_id=int(turn.data["tip"]))
        if count >= self.limits.max_files:
            turn.note(
                t.gettext(_("A tip can carry at most {n} files; this one was not added.")).format(
                    n=self.limits.max_files
                )
            )
            await self._show(turn, quiet=True)
            return True
        attachment = TipAttachment(
            kind=media.kind,
            mime_type=media.mime_type,
            filename=media.filename,
            size=len(media.data),
            content=media.data,
            note=media.note,
            created_at=turn.now,
        )
        if state == "add":
            attachment.tip_id = int(turn.data["tip"])
            turn.session.add(attachment)
            await self._add_to_tip(turn, media.caption or "", attachment)
        else:
            attachment.draft_key = key
            if media.caption:
                parts = list(turn.data.get("parts", []))
                parts.append({"mid": media.message_id, "text": media.caption})
                turn.data["parts"] = parts
        turn.session.add(attachment)
        # An album arrives as one update per item: acknowledge it once, not ten times.
        groups: list[str] = list(turn.data.get("groups", []))
        if media.media_group_id and media.media_group_id in groups:
            return True
        if media.media_group_id:
            turn.data["groups"] = [*groups[-9:], media.media_group_id]
        if state == "add":
            turn.note(t.gettext(_("Added to your tip. Send more, or press Done.")))
            await self._show(turn, quiet=True)
        else:
            await turn.session.flush()
            await self._acknowledge_details(turn)
        return True

    async def _on_location(self, turn: _Turn, event: Location) -> bool:
        """A location pin: kept as a hint of where it happened."""
        t = turn.t
        state = turn.draft.state
        if state in TIP_STATES:
            turn.data["location"] = [event.latitude, event.longitude]
            if state == "details":
                await self._acknowledge_details(turn)
            else:
                turn.note(t.gettext(_("Location pin saved as a hint for the police.")))
                await self._show(turn)
            return True
        if state == "add":
            await self._add_to_tip(turn, f"📍 {event.latitude:.6f}, {event.longitude:.6f}")
            turn.note(t.gettext(_("Added to your tip. Send more, or press Done.")))
            await self._show(turn, quiet=True)
            return True
        turn.note(
            t.gettext(_("A location is useful inside a tip. Press “Send a tip” to start one."))
        )
        await self._show(turn)
        return True

    async def _add_to_tip(
        self, turn: _Turn, text: str, attachment: TipAttachment | None = None
    ) -> None:
        """Append a citizen's addition to a sent tip and thread it under the police card."""
        tip = await turn.session.get(Tip, int(turn.data["tip"]))
        if tip is None:
            return
        assert tip.id is not None
        turn.session.add(
            TipMessage(
                tip_id=tip.id,
                author="citizen",
                text=text,
                attachment_count=1 if attachment is not None else 0,
                created_at=turn.now,
            )
        )
        await InboxService.queue_citizen_message(
            turn.session, t=self.police_t, tip=tip, text=text, attachment=attachment, now=turn.now
        )
        turn.queued = True

    async def begin_reply(
        self, *, channel: str, user_id: int | str, chat_id: int | str, tip_id: int, locale: str
    ) -> Outcome:
        """The tipster pressed "Answer" under a police message: start an addition to that tip.

        Only the tip's own tipster may: the chat must match the tip's encrypted reply route.
        """
        t = translator(locale, self.timezone)
        async with self.db.session() as session:
            tip = await session.get(Tip, tip_id)
            route_ok = False
            if tip is not None and tip.reply_route is not None:
                # A route no configured key opens (its key was dropped) matches nobody.
                with contextlib.suppress(RouteError):
                    opened = self.keyring.decrypt_route(tip.reply_route)
                    route_ok = opened == (channel, str(chat_id))
            if tip is None or not route_ok:
                return Outcome([Reply(t.gettext(_("This button is no longer valid.")))])
            assert tip.id is not None
        return await self.handle(
            channel=channel,
            user_id=user_id,
            chat_id=chat_id,
            locale=locale,
            event=AnswerPolice(tip_id=tip.id),
        )

    async def _acknowledge_details(self, turn: _Turn) -> None:
        """Tell the citizen what has been collected and how to finish."""
        if turn.data.get("edit_details"):
            turn.say(steps.edit_details_step(turn.t, turn.draft.step_token))
            return
        files = await tips.draft_attachment_count(turn.session, draft_key=turn.draft.key)
        turn.say(
            steps.details_received(
                turn.t,
                turn.draft.step_token,
                texts=len(turn.data.get("parts", [])),
                files=files,
                located=bool(turn.data.get("location")),
            )
        )

    async def _show_status(self, turn: _Turn, code_text: str) -> None:
        """Show a tip's status and thread to whoever holds its receipt code."""
        tip = await self._tip_from_code(turn, code_text)
        if tip is not None:
            turn.say(await render_status(turn.session, turn.t, tip))
        await self._go(turn, "menu", show=False)

    async def _begin_add(self, turn: _Turn, code_text: str) -> None:
        """Start appending information to a sent tip."""
        tip = await self._tip_from_code(turn, code_text)
        if tip is None:
            await self._go(turn, "menu", show=False)
            return
        await self._enter_add(turn, tip)

    async def _enter_add(self, turn: _Turn, tip: Tip) -> None:
        """Collect additions to a sent tip."""
        turn.data.clear()
        turn.data["tip"] = tip.id
        turn.data["short_id"] = tip.short_id
        await self._go(turn, "add")

    async def _tip_from_code(self, turn: _Turn, code_text: str) -> Tip | None:
        """Find a tip by a typed receipt code, telling the citizen when it cannot."""
        t = turn.t
        code = normalize_receipt_code(code_text)
        if code is None:
            turn.note(
                t.gettext(
                    _("That is not a receipt code. A code looks like <code>7K3Q-XW2M-9TDA</code>.")
                )
            )
            return None
        # Every known key: a receipt hashed before a key rotation cannot be re-hashed.
        tip = await tips.find_by_receipt(turn.session, self.keyring.receipt_hashes(code))
        if tip is None:
            turn.note(t.gettext(_("No tip has this receipt code. Please check it.")))
        return tip

    async def _discard_files(self, turn: _Turn) -> None:
        """Delete files collected for the draft."""
        await turn.session.exec(
            delete(TipAttachment).where(col(TipAttachment.draft_key) == turn.draft.key)
        )

    # --- rendering ------------------------------------------------------------------------

    async def _go(self, turn: _Turn, state: str, *, show: bool = True) -> None:
        """Enter a state (new step token: older buttons become stale) and show it."""
        if state in TIP_STATES:
            turn.data["resume_state"] = state
        if state == "review":
            turn.data.pop("editing", None)
            turn.data.pop("edit_details", None)
        turn.draft.state = state
        turn.draft.step_token = (turn.draft.step_token + 1) % 1_000_000
        if show:
            turn.say(await self._render(turn))

    async def _show(self, turn: _Turn, *, quiet: bool = False) -> None:
        """Show the current step again (quiet: only its buttons under the last notice)."""
        reply = await self._render(turn)
        if quiet and turn.outcome.replies:
            last = turn.outcome.replies[-1]
            turn.outcome.replies[-1] = Reply(last.text, reply.choices, reply.token)
            return
        turn.say(reply)

    async def _render(self, turn: _Turn) -> Reply:
        """The current step as data."""
        t = turn.t
        token = turn.draft.step_token
        data = turn.data
        state = turn.draft.state
        session = turn.session
        flow = self._flow_for_state(state)
        if flow is not None:
            return await flow.render(turn)
        if state == "category":
            return steps.category_step(t, token)
        if state == "urgent":
            return steps.urgent_step(t, token)
        if state == "place_confirm":
            commune = await communes.get_commune(session, int(data["hint"]))
            if commune is not None:
                return steps.place_confirm_step(t, token, commune)
            return steps.place_step(t, token)
        if state == "place":
            purpose = data.get("purpose")
            prompt = next((f.place_prompt(t) for f in self.flows if purpose in f.purposes), None)
            return steps.place_step(t, token, prompt)
        if state == "place_results":
            results = [await communes.get_commune(session, code) for code in data["results"]]
            found = [r for r in results if r is not None]
            return steps.place_results_step(t, token, str(data.get("query", "")), found)
        if state == "province":
            provinces = [
                (p.code, communes.short_province_name(p.name))
                for p in await communes.list_provinces(session)
            ]
            return steps.province_step(t, token, provinces, int(data.get("page", 0)))
        if state == "commune":
            page = int(data.get("page", 0))
            page_items, total = await communes.page_communes(
                session, int(data["province"]), page=page, per_page=steps.COMMUNES_PER_PAGE
            )
            province_name = page_items[0].province_name if page_items else ""
            return steps.commune_step(t, token, province_name, page_items, page, total)
        if state == "details":
            if data.get("edit_details"):
                return steps.edit_details_step(t, token)
            return steps.details_step(t, token)
        if state == "review":
            commune = await communes.get_commune(session, int(data["commune"]))
            files = await tips.draft_attachment_count(session, draft_key=turn.draft.key)
            return steps.review_step(t, token, data, commune, files)
        if state == "status_code":
            return steps.status_code_step(t, token)
        if state == "add":
            return steps.add_step(t, token, str(data.get("short_id", "")))
        if state == "resume":
            return steps.resume_step(t, token)
        extra = [choice for flow in self.flows for choice in flow.menu_choices(t)]
        return steps.menu(t, token, extra)

    @staticmethod
    def _unsupported_text(t: Translator, kind: str) -> str:
        """Explain politely why something was not used."""
        if kind == "too_big":
            return t.gettext(
                _(
                    "This file is larger than 20 MB and cannot be received. Please send a smaller "
                    "file or a shorter video."
                )
            )
        if kind == "media_rejected":
            return t.gettext(_("This image could not be read. Please send another one."))
        return t.gettext(
            _(
                "Sorry, this kind of message cannot be used here. Please send text, photos, "
                "videos, voice notes, files or a location."
            )
        )


def help_text(t: Translator) -> str:
    """How to use the tip line."""
    return t.gettext(
        _(
            "<b>How to use the tip line</b>\n"
            "• /start — main menu; <b>Send a tip</b> guides you in 4 steps.\n"
            "• /status CODE — see the status of a tip and the police's answers.\n"
            "• /add CODE — add information to a tip you sent.\n"
            "• /cancel — stop what you are doing.\n"
            "Your name, account and phone number are never passed to the police. "
            "In an emergency call 113 (police), 114 (fire) or 115 (ambulance)."
        )
    )


def category_name(category_id: str, locale: str) -> str:
    """A category's display name (escaped for HTML)."""
    category = category_by_id().get(category_id)
    return html.escape(category.name(locale) if category else category_id)
