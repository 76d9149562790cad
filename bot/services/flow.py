"""Pluggable conversations sharing the citizen draft row and its engine (IntakeService).

The intake engine owns the draft, flood limits, stale-button checks and the place picker; a
flow owns a set of states and answers for them: the tip (`tip_flow`), the follow-up by receipt
code (`followup_flow`), outreach and broadcast composing. Each step stays data (DESIGN
principle 3), and each flow types its part of the draft's data (a TypedDict over the JSON).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlmodel.ext.asyncio.session import AsyncSession

from bot.i18n import Translator
from bot.services.events import Command, EditedText, Location, Media
from bot.services.steps import Choice, Outcome, Reply
from storage.models import ConversationDraft


@dataclass
class Turn:
    """Everything one event's handling needs; lives for one transaction."""

    session: AsyncSession
    draft: ConversationDraft
    t: Translator
    now: datetime
    outcome: Outcome
    channel: str = ""
    user_id: str = ""  # in memory for this event only (staff checks); never stored for citizens
    queued: bool = False  # outbox rows were written: wake the sender after commit

    @property
    def data(self) -> dict[str, Any]:
        """The draft's data (reassigned on save so JSON changes are detected)."""
        return self.draft.data

    def say(self, reply: Reply) -> None:
        """Queue a message to the citizen."""
        self.outcome.replies.append(reply)

    def note(self, text: str) -> None:
        """Queue a plain notice."""
        self.outcome.replies.append(Reply(text))


class Flow:
    """Base flow: owns nothing and refuses nothing; subclasses override what they handle."""

    states: frozenset[str] = frozenset()
    commands: frozenset[str] = frozenset()
    menu_values: frozenset[str] = frozenset()
    purposes: frozenset[str] = frozenset()  # place-picker purposes this flow continues

    def menu_choices(self, t: Translator) -> list[Choice]:
        """Entries this flow adds to the main menu."""
        return []

    def place_prompt(self, t: Translator) -> str:
        """The question shown by the place picker for this flow's purposes."""
        return ""

    async def render(self, turn: Turn) -> Reply:
        """The current step of one of this flow's states."""
        raise NotImplementedError

    async def apply(self, turn: Turn, value: str) -> bool:
        """A validated choice in one of this flow's states."""
        raise NotImplementedError

    async def on_text(self, turn: Turn, text: str) -> bool:
        """A text in one of this flow's states."""
        raise NotImplementedError

    async def on_media(self, turn: Turn, media: Media) -> bool:
        """A file in one of this flow's states."""
        raise NotImplementedError

    async def on_command(self, turn: Turn, command: Command) -> bool:
        """One of this flow's commands."""
        raise NotImplementedError

    async def on_menu(self, turn: Turn, value: str) -> bool:
        """One of this flow's menu entries."""
        raise NotImplementedError

    async def after_place(self, turn: Turn) -> None:
        """The place picker finished for one of this flow's purposes."""
        raise NotImplementedError

    async def on_start_payload(self, turn: Turn, payload: str) -> bool:
        """A /start deep link; True when this flow took it."""
        return False

    async def on_start(self, turn: Turn, payload: str | None, fresh: bool) -> bool:
        """/start once no flow took its payload: True when this flow answers it (resume...)."""
        return False

    def on_enter(self, turn: Turn, state: str) -> None:
        """Any state is being entered (the tip flow remembers where an unfinished tip is)."""

    async def on_location(self, turn: Turn, event: Location) -> bool:
        """A location pin in one of this flow's states; False when it has no use for one."""
        return False

    async def on_edit(self, turn: Turn, event: EditedText) -> bool:
        """An edited message; False when it changes nothing here."""
        return False
