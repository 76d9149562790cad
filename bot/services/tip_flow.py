"""The tip conversation: category, happening now, place, details, review, and the receipt.

The place is picked with the engine's shared place picker (purpose "tip"). The tip is committed
before the citizen is told it was received (DESIGN principle 5).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, TypedDict, cast

from bot.i18n import _
from bot.services import drafts, flood, outbox, routing, tips
from bot.services import intake_steps as steps
from bot.services.anonymity import RoutePurpose, new_receipt_code
from bot.services.events import EditedText, Location, Media
from bot.services.flow import Flow, Turn
from bot.services.inbox import set_deadlines
from bot.services.steps import Reply
from storage import communes

if TYPE_CHECKING:
    from bot.services.intake import IntakeService

DEEP_LINK_PREFIX = "c"
TIP_PURPOSE = "tip"
# Every state of an unfinished tip, the place picker's included: /start offers to resume them,
# and an expired draft in one of them is worth a notice.
TIP_STATES = drafts.STATES_WORTH_NOTICE - {"add"}


class DetailPart(TypedDict):
    """One text of the details (the message id lets an edit correct it)."""

    mid: int | None
    text: str


class TipData(TypedDict, total=False):
    """The draft data of this flow."""

    hint: int  # the commune a deep link named
    category: str
    urgent: bool
    commune: int
    parts: list[DetailPart]
    location: list[float]  # [latitude, longitude]
    groups: list[str]  # album ids already acknowledged
    editing: bool  # came from the review to change one part
    edit_details: bool
    resume_state: str


def _data(turn: Turn) -> TipData:
    """The draft data, typed for this flow."""
    return cast(TipData, turn.data)


class TipFlow(Flow):
    """A tip in four steps, with a review before it is sent."""

    states = frozenset({"resume", "category", "urgent", "place_confirm", "details", "review"})
    menu_values = frozenset({"report"})
    purposes = frozenset({TIP_PURPOSE})

    def __init__(self, engine: IntakeService) -> None:
        self.engine = engine

    # --- entering -------------------------------------------------------------------------

    async def on_start(self, turn: Turn, payload: str | None, fresh: bool) -> bool:
        """/start: resume an unfinished tip, or begin one at a deep link's commune."""
        data = _data(turn)
        commune = None
        if payload:
            commune = await self._commune_from_payload(turn, payload)
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
            data["hint"] = commune.code
        if not fresh and turn.draft.state in TIP_STATES:
            await self.engine.go(turn, "resume")
            return True
        if commune is not None:
            turn.data.clear()
            data["hint"] = commune.code
            await self.engine.go(turn, "category")
            return True
        return False

    async def _commune_from_payload(
        self, turn: Turn, payload: str
    ) -> communes.CommuneChoice | None:
        """Resolve a deep-link payload such as `c26734` to a commune."""
        if not payload.startswith(DEEP_LINK_PREFIX) or not payload[1:].isdigit():
            return None
        return await communes.get_commune(turn.session, int(payload[1:]))

    async def on_menu(self, turn: Turn, value: str) -> bool:
        """ "Send a tip" in the menu (a deep link's commune is kept as a hint)."""
        await self._begin(turn)
        return True

    async def _begin(self, turn: Turn) -> None:
        """Start a new tip, keeping only the commune hint."""
        hint = _data(turn).get("hint")
        turn.data.clear()
        if hint:
            _data(turn)["hint"] = hint
        await self.engine.go(turn, "category")

    def on_enter(self, turn: Turn, state: str) -> None:
        """Remember where an unfinished tip stands; the review ends any edit."""
        data = _data(turn)
        if state in TIP_STATES:
            data["resume_state"] = state
        if state == "review":
            data.pop("editing", None)
            data.pop("edit_details", None)

    # --- steps ----------------------------------------------------------------------------

    async def render(self, turn: Turn) -> Reply:
        """The current step of the tip."""
        t, token, state, session = turn.t, turn.draft.step_token, turn.draft.state, turn.session
        data = _data(turn)
        if state == "category":
            return steps.category_step(t, token)
        if state == "urgent":
            return steps.urgent_step(t, token)
        if state == "place_confirm":
            commune = await communes.get_commune(session, int(data["hint"]))
            if commune is not None:
                return steps.place_confirm_step(t, token, commune)
            return steps.place_step(t, token)
        if state == "details":
            if data.get("edit_details"):
                return steps.edit_details_step(t, token)
            return steps.details_step(t, token)
        if state == "review":
            commune = await communes.get_commune(session, int(data["commune"]))
            files = await tips.draft_attachment_count(session, draft_key=turn.draft.key)
            return steps.review_step(t, token, cast(dict[str, Any], data), commune, files)
        return steps.resume_step(t, token)

    def place_prompt(self, t: Any) -> str:
        """The tip's own wording of the place question (the default one)."""
        return ""

    async def apply(self, turn: Turn, value: str) -> bool:
        """A choice in one of the tip's steps."""
        state = turn.draft.state
        data = _data(turn)
        if state == "resume":
            if value == "restart":
                await self.engine.discard_files(turn)
                await self._begin(turn)
            else:
                await self.engine.go(turn, data.get("resume_state", "category"))
            return True
        if state == "category":
            data["category"] = value.removeprefix("c:")
            await self.engine.go(turn, "review" if data.get("editing") else "urgent")
            return True
        if state == "urgent":
            data["urgent"] = value == "y"
            if value == "y":
                turn.say(steps.hotline_notice(turn.t, str(data.get("category"))))
            if data.get("hint"):
                await self.engine.go(turn, "place_confirm")
            else:
                await self.engine.start_place_picker(turn, TIP_PURPOSE)
            return True
        if state == "place_confirm":
            if value == "ok":
                data["commune"] = data["hint"]
                await self.after_place(turn)
            else:
                await self.engine.start_place_picker(turn, TIP_PURPOSE)
            return True
        if state == "details":
            return await self._apply_details(turn, value)
        if state == "review":
            return await self._apply_review(turn, value)
        await self.engine.show(turn)
        return True

    async def after_place(self, turn: Turn) -> None:
        """Move on once the commune is known."""
        turn.data.pop("purpose", None)
        await self.engine.go(turn, "review" if _data(turn).get("editing") else "details")

    async def _apply_details(self, turn: Turn, value: str) -> bool:
        """Done collecting details, or clear them."""
        data = _data(turn)
        if value == "clear":
            data["parts"] = []
            data.pop("location", None)
            await self.engine.discard_files(turn)
            turn.note(turn.t.gettext(_("Details cleared. Send them again.")))
            await self.engine.show(turn)
            return True
        files = await tips.draft_attachment_count(turn.session, draft_key=turn.draft.key)
        if not data.get("parts") and not files and not data.get("location"):
            turn.note(
                turn.t.gettext(
                    _("Please describe what happened first (a message, a photo or a file).")
                )
            )
            await self.engine.show(turn)
            return True
        await self.engine.go(turn, "review")
        return True

    async def _apply_review(self, turn: Turn, value: str) -> bool:
        """Send, or go back to edit one part."""
        if value == "send":
            return await self._confirm(turn)
        data = _data(turn)
        data["editing"] = True
        if value == "e:cat":
            await self.engine.go(turn, "category")
        elif value == "e:place":
            await self.engine.start_place_picker(turn, TIP_PURPOSE)
        else:
            data["edit_details"] = True
            await self.engine.go(turn, "details")
        return True

    async def _confirm(self, turn: Turn) -> bool:
        """Commit the tip, then (and only then) tell the citizen it was received."""
        engine, t, key = self.engine, turn.t, turn.draft.key
        sent = await flood.count(
            turn.session, key=key, bucket="tip", now=turn.now, window=flood.LONGEST_WINDOW
        )
        if sent >= engine.limits.tips_per_hour:
            turn.note(
                t.gettext(
                    _(
                        "You have sent many tips in the last hour. Your tip is kept here: please "
                        "press Send again later. If it is an emergency, call 113."
                    )
                )
            )
            await engine.show(turn)
            return True
        data = _data(turn)
        code = new_receipt_code()
        channel, chat_id = engine.keyring.decrypt_route(turn.draft.route, RoutePurpose.DRAFT)
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
                receipt_hash=engine.keyring.receipt_hash(code),
                reply_route=engine.keyring.encrypt_route(
                    channel, chat_id, purpose=RoutePurpose.TIP
                ),
                receipt_key_id=engine.keyring.key_id,
            ),
            draft_key=key,
            now=turn.now,
        )
        set_deadlines(tip, turn.now)
        await routing.deliver(
            turn.session, tip=tip, t=engine.police_t, now=turn.now, reason="new_tip"
        )
        turn.queued = True
        await flood.hit(
            turn.session, key=key, bucket="tip", now=turn.now, window=flood.LONGEST_WINDOW
        )
        receipt = t.gettext(
            _(
                "✅ <b>Your tip was received.</b> Thank you!\n\n"
                "Your receipt code: <code>{code}</code>\n"
                "Keep it: it is the only way to follow up, because we do not know "
                "who you are.\n"
                "• /status {code} — see the status and the police's answers\n"
                "• /add {code} — add information\n"
                "Tip number for the police: {short_id}."
            )
        ).format(code=code, short_id=tip.short_id)  # code: already grouped, readable
        # The receipt goes through the outbox in the tip's own transaction, to a route sealed
        # afresh: if the platform fails right after the commit the sender retries it until it
        # is delivered, so a saved tip never loses its only key (and is never sent twice).
        outbox.enqueue(
            turn.session,
            kind="receipt",
            route=engine.keyring.encrypt_route(channel, chat_id, purpose=RoutePurpose.OUTBOX),
            tip_id=tip.id,  # retention treats it as the tip's other messages to the tipster
            now=turn.now,
            payload={"text": receipt},
        )
        turn.say(
            Reply(
                t.gettext(
                    _(
                        "✅ <b>Your tip was received.</b> Thank you! Tip number for the police: "
                        "{short_id}. Your receipt code comes in a message of its own: keep it."
                    )
                ).format(short_id=tip.short_id)
            )
        )
        turn.data.clear()
        await engine.go(turn, "menu", show=False)
        return True

    # --- what the citizen sends -----------------------------------------------------------

    async def on_text(self, turn: Turn, text: str) -> bool:
        """A text of the details (unless it is a typed-back choice)."""
        if turn.draft.state != "details":
            return await self.engine.choose_or_repeat(turn, text)
        typed = await self.engine.typed_choice(turn, text, free_text=True)
        if typed is not None:
            return await self.engine.apply(turn, typed.value)
        return await self._add_text(turn, text)

    async def _add_text(self, turn: Turn, text: str, message_id: int | None = None) -> bool:
        """Collect a text of the details, within the length limit."""
        t, data = turn.t, _data(turn)
        limit = self.engine.limits.max_text_chars
        parts = list(data.get("parts", []))
        if sum(len(part["text"]) for part in parts) + len(text) > limit:
            turn.note(
                t.gettext(
                    _(
                        "This message would make the details too long (over {limit} characters) "
                        "and was not added. Please shorten it, or send a file instead."
                    )
                ).format(limit=t.number(limit))
            )
            await self.engine.show(turn, quiet=True)
            return True
        parts.append({"mid": message_id, "text": text})
        data["parts"] = parts
        await self._acknowledge_details(turn)
        return True

    async def on_media(self, turn: Turn, media: Media) -> bool:
        """A file of the details, kept (already stripped of metadata) within the file cap."""
        if turn.draft.state != "details":
            return await self.engine.refuse_file(turn)
        key = turn.draft.key
        count = await tips.draft_attachment_count(turn.session, draft_key=key)
        if await self.engine.over_file_cap(turn, count):
            return True
        attachment = self.engine.attachment_of(turn, media)
        attachment.draft_key = key
        if media.caption:
            data = _data(turn)
            parts = list(data.get("parts", []))
            parts.append({"mid": media.message_id, "text": media.caption})
            data["parts"] = parts
        turn.session.add(attachment)
        if self.engine.repeat_of_album(turn, media):
            return True
        await turn.session.flush()
        await self._acknowledge_details(turn, warning=steps.kept_as_sent(turn.t, media.note))
        return True

    async def on_location(self, turn: Turn, event: Location) -> bool:
        """A location pin: kept as a hint of where it happened."""
        _data(turn)["location"] = [event.latitude, event.longitude]
        if turn.draft.state == "details":
            await self._acknowledge_details(turn)
        else:
            turn.note(turn.t.gettext(_("Location pin saved as a hint for the police.")))
            await self.engine.show(turn)
        return True

    async def on_edit(self, turn: Turn, event: EditedText) -> bool:
        """An edited message corrects the draft's copy while details are being collected."""
        if turn.draft.state not in ("details", "review"):
            return False
        for part in _data(turn).get("parts", []):
            if part.get("mid") == event.message_id:
                part["text"] = event.text
                turn.note(turn.t.gettext(_("Your correction was saved.")))
                await self.engine.show(turn, quiet=turn.draft.state == "details")
                return True
        return False

    async def add_details_text(self, turn: Turn, text: str, message_id: int | None) -> bool:
        """A text of the details that came with its message id (edits can correct it)."""
        typed = await self.engine.typed_choice(turn, text, free_text=True)
        if typed is not None:
            return await self.engine.apply(turn, typed.value)
        return await self._add_text(turn, text, message_id)

    async def _acknowledge_details(self, turn: Turn, *, warning: str | None = None) -> None:
        """Tell the citizen what has been collected, how to finish, and what was kept as sent."""
        data = _data(turn)
        if data.get("edit_details"):
            if warning:
                turn.note(warning)
            turn.say(steps.edit_details_step(turn.t, turn.draft.step_token))
            return
        files = await tips.draft_attachment_count(turn.session, draft_key=turn.draft.key)
        turn.say(
            steps.details_received(
                turn.t,
                turn.draft.step_token,
                texts=len(data.get("parts", [])),
                files=files,
                located=bool(data.get("location")),
                warning=warning,
            )
        )
