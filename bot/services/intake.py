"""The conversation engine: every citizen event, over the draft row, handed to its flow.

Messenger-agnostic (DESIGN principle 3): events in, replies out. The draft row is the whole
state (principle 2), so a restart or a second process changes nothing for the citizen. The
engine owns what all conversations share: the draft and its lock, flood limits, stale buttons,
the menu, the place picker, /cancel and /help. Each conversation is a flow: the tip
(`tip_flow`), the follow-up by receipt code (`followup_flow`), outreach and broadcast
composing (added by `bot.app`).
"""

from __future__ import annotations

import contextlib
import html
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import delete
from sqlalchemy.orm.attributes import flag_modified
from sqlmodel import col
from sqlmodel.ext.asyncio.session import AsyncSession

from bot.content.catalog import category_by_id
from bot.i18n import Translator, _, translator
from bot.services import drafts, flood, outbox
from bot.services import intake_steps as steps
from bot.services.anonymity import Keyring, RouteError, RoutePurpose
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
from bot.services.followup_flow import FollowUpFlow
from bot.services.steps import Choice, Outcome, Reply, match_typed_choice
from bot.services.tip_flow import TIP_PURPOSE, TIP_STATES, TipFlow
from storage import communes
from storage.db import Database
from storage.models import ConversationDraft, Tip, TipAttachment
from storage.types import utcnow

MINUTE = timedelta(minutes=1)
PLACE_STATES = frozenset({"place", "place_results", "province", "commune"})


@dataclass(frozen=True)
class IntakeLimits:
    """Limits that keep the tip line usable and bounded."""

    draft_ttl: timedelta = timedelta(hours=24)
    tips_per_hour: int = 5
    messages_per_minute: int = 30
    max_text_chars: int = 20_000
    max_files: int = 30
    max_file_bytes: int = 20 * 1024 * 1024  # TINBAO_MAX_FILE_BYTES: what the channels refuse


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
        self.tip = TipFlow(self)
        self.followup = FollowUpFlow(self)
        self.flows: list[Flow] = [self.tip, self.followup]

    def add_flow(self, flow: Flow) -> None:
        """Plug in another conversation (outreach, broadcasts) sharing the draft row."""
        self.flows.append(flow)

    async def go(self, turn: _Turn, state: str, *, show: bool = True) -> None:
        """Enter a state (for flows): new step token, shown unless `show` is False."""
        await self._go(turn, state, show=show)

    async def show(self, turn: _Turn, *, quiet: bool = False) -> None:
        """Show the current step again (for flows)."""
        await self._show(turn, quiet=quiet)

    async def apply(self, turn: _Turn, value: str) -> bool:
        """Apply a choice as if pressed (for flows: a typed-back choice)."""
        return await self._apply(turn, value)

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
                    route=self.keyring.encrypt_route(channel, chat_id, purpose=RoutePurpose.DRAFT),
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

    async def expire_drafts(self) -> int:
        """Remove silent drafts, queueing a notice to those worth telling; return how many.

        Nothing is sent here: each notice is an outbox row committed with its draft's delete,
        so the sender delivers it through the citizen's channel and retries it until it goes.
        """
        async with self.db.session() as session:
            expired = await drafts.expire(session, now=self.clock(), notify=self._queue_notice)
        queued = sum(1 for item in expired if item.queued)
        if queued:
            self.on_outbox()
        return queued

    def _queue_notice(self, session: AsyncSession, item: drafts.ExpiredDraft) -> bool:
        """Add an expired draft's notice to the outbox (no commit); whether one was added."""
        if not item.notify:
            return False
        try:
            channel, chat_id = self.keyring.decrypt_route(item.route, RoutePurpose.DRAFT)
        except RouteError:
            # Its key was dropped from TINBAO_PREVIOUS_SECRET_KEYS: the sender could not open
            # the route either, so the draft goes without a notice.
            return False
        outbox.enqueue(
            session,
            kind="draft_expired",
            # Sealed afresh, as the receipt is: no two rows share a ciphertext (principle 4).
            route=self.keyring.encrypt_route(channel, chat_id, purpose=RoutePurpose.OUTBOX),
            now=self.clock(),
            payload={"text": self.expiry_notice(translator(item.locale, self.timezone))},
        )
        return True

    def expiry_notice(self, t: Translator) -> str:
        """The notice that a silent draft was deleted, with the configured time to live."""
        hours = self.limits.draft_ttl.total_seconds() / 3600
        # English says "hour" only for exactly one; a fraction (TTL 1.5) reads as plural.
        n = int(hours) if hours.is_integer() else 2
        return t.ngettext(
            "Your unfinished tip was deleted after {hours} hour without activity. "
            "Nothing was sent. Press /start to begin again.",
            "Your unfinished tip was deleted after {hours} hours without activity. "
            "Nothing was sent. Press /start to begin again.",
            n,
        ).format(hours=t.number(round(hours, 2)))

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
                await self.followup.answer_police(turn, tip_id)
                return True
            case Unsupported(kind=kind):
                turn.note(self._unsupported_text(turn.t, kind))
                await self._show(turn)
                return True
        return True  # pragma: no cover - exhaustive match

    async def _on_start(self, turn: _Turn, payload: str | None, fresh: bool) -> bool:
        """/start: a flow's deep link, an unfinished tip to resume, or the menu."""
        for flow in self.flows:
            if payload and await flow.on_start_payload(turn, payload):
                return True
        for flow in self.flows:
            if await flow.on_start(turn, payload, fresh):
                return True
        await self._go(turn, "menu")
        return True

    async def _on_command(self, turn: _Turn, command: Command) -> bool:
        """/cancel and /help work everywhere; flows take theirs; others are unknown."""
        t = turn.t
        name = command.name
        if name == "cancel":
            turn.data.clear()
            turn.note(t.gettext(_("Cancelled. Nothing was sent.")))
            await self._go(turn, "menu")
            await self.discard_files(turn)
            return True
        if name == "help":
            turn.note(help_text(t))
            await self._show(turn)
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
        if value == "x":
            return await self._on_command(turn, Command("cancel"))
        if value == "menu":
            turn.data.pop("after_code", None)
            await self._go(turn, "menu")
            return True
        if state == "menu":
            return await self._apply_menu(turn, value)
        flow = self._flow_for_state(state)
        if flow is not None:
            return await flow.apply(turn, value)
        if state in PLACE_STATES:
            return await self._apply_place(turn, value)
        await self._show(turn)
        return True

    async def _apply_menu(self, turn: _Turn, value: str) -> bool:
        """Main menu entries: a flow's, the hotlines, or help."""
        for flow in self.flows:
            if value in flow.menu_values:
                return await flow.on_menu(turn, value)
        if value == "hotlines":
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

    def _place_flow(self, turn: _Turn) -> Flow:
        """The flow the place picker works for (a tip when none is named: older drafts)."""
        purpose = turn.data.get("purpose") or TIP_PURPOSE
        return next((flow for flow in self.flows if purpose in flow.purposes), self.tip)

    async def _after_place(self, turn: _Turn) -> None:
        """The commune is known: the flow that asked for it goes on."""
        for key in ("results", "query", "page", "province"):
            turn.data.pop(key, None)
        await self._place_flow(turn).after_place(turn)

    async def _on_text(self, turn: _Turn, event: Text) -> bool:
        """A text: to the flow of the current state, a place search, or a typed-back choice."""
        state = turn.draft.state
        text = event.text.strip()
        if state == "details":
            # Kept with its message id, so that editing the message corrects the draft.
            return await self.tip.add_details_text(turn, event.text, event.message_id)
        flow = self._flow_for_state(state)
        if flow is not None:
            return await flow.on_text(turn, event.text)
        if state in PLACE_STATES:
            typed = await self.typed_choice(turn, text)
            if typed is not None:
                return await self._apply(turn, typed.value)
            results = await communes.search_communes(turn.session, text)
            turn.data["query"] = text[:100]
            turn.data["results"] = [r.code for r in results]
            await self._go(turn, "place_results")
            return True
        return await self.choose_or_repeat(turn, text)

    async def _on_edit(self, turn: _Turn, event: EditedText) -> bool:
        """An edited message: a flow may use it; otherwise it changes nothing, and we say so."""
        for flow in self.flows:
            if await flow.on_edit(turn, event):
                return True
        turn.note(
            turn.t.gettext(
                _(
                    "Edited messages cannot change a tip that was already sent or a past step. "
                    "Please send the correction as a new message (or use /add with your code)."
                )
            )
        )
        await self._show(turn, quiet=True)
        return True

    async def _on_media(self, turn: _Turn, media: Media) -> bool:
        """A file: to the flow of the current state, which knows whether it can use one."""
        flow = self._flow_for_state(turn.draft.state)
        if flow is not None:
            return await flow.on_media(turn, media)
        return await self.refuse_file(turn)

    async def _on_location(self, turn: _Turn, event: Location) -> bool:
        """A location pin: a tip keeps it as a hint, an addition adds it; else we explain."""
        state = turn.draft.state
        owner = self.tip if state in TIP_STATES else self._flow_for_state(state)
        if owner is not None and await owner.on_location(turn, event):
            return True
        turn.note(
            turn.t.gettext(_("A location is useful inside a tip. Press “Send a tip” to start one."))
        )
        await self._show(turn)
        return True

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
                    opened = self.keyring.decrypt_route(tip.reply_route, RoutePurpose.TIP)
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

    # --- what flows share -----------------------------------------------------------------

    async def typed_choice(
        self, turn: _Turn, text: str, *, free_text: bool = False
    ) -> Choice | None:
        """The current step's choice a citizen typed back, if the text is one.

        With `free_text` (steps that collect what the citizen writes) only a short text counts,
        and a bare number only on a channel without buttons: on Telegram "5" is a house number.
        """
        cleaned = text.strip()
        typed = match_typed_choice(await self._render(turn), cleaned)
        if typed is None or not free_text:
            return typed
        number_is_choice = cleaned.isdigit() and not has_buttons(turn.channel)
        if len(cleaned) < 20 and (number_is_choice or not cleaned.isdigit()):
            return typed
        return None

    async def choose_or_repeat(self, turn: _Turn, text: str) -> bool:
        """A typed-back choice is applied; any other text gets the step again."""
        typed = await self.typed_choice(turn, text)
        if typed is not None:
            return await self._apply(turn, typed.value)
        turn.note(turn.t.gettext(_("Please choose one of the options below.")))
        await self._show(turn)
        return True

    async def refuse_file(self, turn: _Turn) -> bool:
        """A file where none is collected: nothing saved, and where to send it."""
        turn.note(
            turn.t.gettext(
                _(
                    "Files can be sent at the details step of a tip. Nothing was saved; "
                    "please send it again there."
                )
            )
        )
        await self._show(turn)
        return True

    async def over_file_cap(self, turn: _Turn, count: int) -> bool:
        """Refuse a file past the cap (True when refused)."""
        if count < self.limits.max_files:
            return False
        turn.note(
            turn.t.gettext(_("A tip can carry at most {n} files; this one was not added.")).format(
                n=self.limits.max_files
            )
        )
        await self._show(turn, quiet=True)
        return True

    @staticmethod
    def attachment_of(turn: _Turn, media: Media) -> TipAttachment:
        """A kept file from a (sanitized) media event; the flow says whose it is."""
        return TipAttachment(
            kind=media.kind,
            mime_type=media.mime_type,
            filename=media.filename,
            size=len(media.data),
            content=media.data,
            note=media.note,
            created_at=turn.now,
        )

    @staticmethod
    def repeat_of_album(turn: _Turn, media: Media) -> bool:
        """An album arrives as one update per item: True for items after the first."""
        groups: list[str] = list(turn.data.get("groups", []))
        if media.media_group_id and media.media_group_id in groups:
            return True
        if media.media_group_id:
            turn.data["groups"] = [*groups[-9:], media.media_group_id]
        return False

    async def discard_files(self, turn: _Turn) -> None:
        """Delete files collected for the draft."""
        await turn.session.exec(
            delete(TipAttachment).where(col(TipAttachment.draft_key) == turn.draft.key)
        )

    # --- rendering ------------------------------------------------------------------------

    async def _go(self, turn: _Turn, state: str, *, show: bool = True) -> None:
        """Enter a state (new step token: older buttons become stale) and show it."""
        for flow in self.flows:
            flow.on_enter(turn, state)
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
        if state == "place":
            prompt = self._place_flow(turn).place_prompt(t) or None
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
        extra = [choice for flow in self.flows for choice in flow.menu_choices(t)]
        return steps.menu(t, token, extra)

    def _unsupported_text(self, t: Translator, kind: str) -> str:
        """Explain politely why something was not used."""
        if kind == "too_big":
            size = round(self.limits.max_file_bytes / (1024 * 1024), 1)
            return t.gettext(
                _(
                    "This file is larger than {size} MB and cannot be received. Please send a "
                    "smaller file or a shorter video."
                )
            ).format(size=t.number(size))
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
