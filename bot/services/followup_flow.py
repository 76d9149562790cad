"""The follow-up conversation: a tip's status by its receipt code, and additions to a sent tip.

`/status CODE` (or "tra cứu MÃ") shows a tip's status and thread to whoever holds the code;
`/add CODE` and the "Answer" under a police message collect additions, each threaded under the
tip's card in the police inbox.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, TypedDict, cast

from bot.i18n import _
from bot.services import intake_steps as steps
from bot.services import tips
from bot.services.anonymity import normalize_receipt_code
from bot.services.events import Command, Location, Media
from bot.services.flow import Flow, Turn
from bot.services.inbox import InboxService
from bot.services.status import render_status
from bot.services.steps import Reply
from storage.models import Tip, TipAttachment, TipMessage

if TYPE_CHECKING:
    from bot.services.intake import IntakeService


class FollowUpData(TypedDict, total=False):
    """The draft data of this flow."""

    tip: int  # the tip being added to
    short_id: str
    after_code: str  # "add" when the receipt code asked for is for /add


def _data(turn: Turn) -> FollowUpData:
    """The draft data, typed for this flow."""
    return cast(FollowUpData, turn.data)


class FollowUpFlow(Flow):
    """Status by receipt code, and additions to a sent tip."""

    states = frozenset({"status_code", "add"})
    commands = frozenset({"status", "add"})
    menu_values = frozenset({"status"})

    def __init__(self, engine: IntakeService) -> None:
        self.engine = engine

    async def render(self, turn: Turn) -> Reply:
        """Ask for a receipt code, or collect additions."""
        if turn.draft.state == "status_code":
            return steps.status_code_step(turn.t, turn.draft.step_token)
        return steps.add_step(turn.t, turn.draft.step_token, str(_data(turn).get("short_id", "")))

    async def on_menu(self, turn: Turn, value: str) -> bool:
        """ "Follow up a tip" in the menu."""
        await self.engine.go(turn, "status_code")
        return True

    async def on_command(self, turn: Turn, command: Command) -> bool:
        """/status [CODE] and /add [CODE]."""
        if not command.argument.strip():
            if command.name == "add":
                _data(turn)["after_code"] = "add"
            await self.engine.go(turn, "status_code")
            return True
        if command.name == "status":
            await self.show_status(turn, command.argument)
        else:
            await self.begin_add(turn, command.argument)
        return True

    async def apply(self, turn: Turn, value: str) -> bool:
        """ "Done" after additions."""
        if turn.draft.state == "add" and value == "done":
            turn.note(turn.t.gettext(_("Thank you. The police will see what you added.")))
            turn.data.clear()
            await self.engine.go(turn, "menu")
            return True
        await self.engine.show(turn)
        return True

    async def on_text(self, turn: Turn, text: str) -> bool:
        """A receipt code, or an addition (unless it is a typed-back choice)."""
        if turn.draft.state == "add":
            typed = await self.engine.typed_choice(turn, text, free_text=True)
            if typed is not None:
                return await self.engine.apply(turn, typed.value)
            await self.add_to_tip(turn, text)
            await self._acknowledge(turn)
            return True
        typed = await self.engine.typed_choice(turn, text)
        if typed is not None:
            return await self.engine.apply(turn, typed.value)
        if _data(turn).pop("after_code", None) == "add":
            await self.begin_add(turn, text)
        else:
            await self.show_status(turn, text)
        return True

    async def on_media(self, turn: Turn, media: Media) -> bool:
        """A file added to a sent tip, within the tip's file cap."""
        if turn.draft.state != "add":
            return await self.engine.refuse_file(turn)
        tip_id = int(_data(turn)["tip"])
        # Details and additions have the same cap: /add must not be a way around it.
        count = await tips.tip_attachment_count(turn.session, tip_id=tip_id)
        if await self.engine.over_file_cap(turn, count):
            return True
        attachment = self.engine.attachment_of(turn, media)
        attachment.tip_id = tip_id
        turn.session.add(attachment)
        await self.add_to_tip(turn, media.caption or "", attachment)
        if self.engine.repeat_of_album(turn, media):
            return True
        await self._acknowledge(turn, warning=steps.kept_as_sent(turn.t, media.note))
        return True

    async def on_location(self, turn: Turn, event: Location) -> bool:
        """A location pin added to a sent tip."""
        if turn.draft.state != "add":
            return False
        await self.add_to_tip(turn, f"📍 {event.latitude:.6f}, {event.longitude:.6f}")
        await self._acknowledge(turn)
        return True

    async def answer_police(self, turn: Turn, tip_id: int) -> None:
        """The tipster answers a police message (the route was checked): collect additions."""
        tip = await turn.session.get(Tip, tip_id)
        if tip is not None:
            await self.enter_add(turn, tip)

    async def _acknowledge(self, turn: Turn, *, warning: str | None = None) -> None:
        """Confirm an addition (saying if a file was kept as sent), with the step's buttons."""
        text = turn.t.gettext(_("Added to your tip. Send more, or press Done."))
        turn.note(text + ("\n" + warning if warning else ""))
        await self.engine.show(turn, quiet=True)

    async def show_status(self, turn: Turn, code_text: str) -> None:
        """Show a tip's status and thread to whoever holds its receipt code."""
        tip = await self._tip_from_code(turn, code_text)
        if tip is not None:
            turn.say(await render_status(turn.session, turn.t, tip))
        await self.engine.go(turn, "menu", show=False)

    async def begin_add(self, turn: Turn, code_text: str) -> None:
        """Start appending information to a sent tip."""
        tip = await self._tip_from_code(turn, code_text)
        if tip is None:
            await self.engine.go(turn, "menu", show=False)
            return
        await self.enter_add(turn, tip)

    async def enter_add(self, turn: Turn, tip: Tip) -> None:
        """Collect additions to a sent tip."""
        turn.data.clear()
        data = _data(turn)
        assert tip.id is not None
        data["tip"] = tip.id
        data["short_id"] = tip.short_id
        await self.engine.go(turn, "add")

    async def add_to_tip(
        self, turn: Turn, text: str, attachment: TipAttachment | None = None
    ) -> None:
        """Append a citizen's addition to a sent tip and thread it under the police card."""
        tip = await turn.session.get(Tip, int(_data(turn)["tip"]))
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
            turn.session,
            t=self.engine.police_t,
            tip=tip,
            text=text,
            attachment=attachment,
            now=turn.now,
        )
        turn.queued = True

    async def _tip_from_code(self, turn: Turn, code_text: str) -> Tip | None:
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
        tip = await tips.find_by_receipt(turn.session, self.engine.keyring.receipt_hashes(code))
        if tip is None:
            turn.note(t.gettext(_("No tip has this receipt code. Please check it.")))
        return tip
