"""Staff create outreach sessions in a private chat and read their summaries (/session, /sessions).

A guided conversation like /broadcast: the commune (skipped for staff of one commune), the
subject (a library topic or a typed title), the place, the local date and time, the organiser,
the expected attendance and an optional pledge; then a preview. After creating, the reply
carries the check-in link (Telegram shares `?start=s<id>`) and the Zalo words "tham dự <id>".
/sessions lists the staff member's sessions; each shows its check-ins, head count and pledges,
and takes the organiser's head count.
"""

from __future__ import annotations

import html
from datetime import datetime
from typing import TYPE_CHECKING, Any

from bot.i18n import Translator, _
from bot.services import enrollment, outreach_sessions, pledges
from bot.services.authorization import Action, may
from bot.services.broadcasts import BroadcastError, parse_local_time
from bot.services.events import Command, Media
from bot.services.flow import Flow, Turn
from bot.services.intake_steps import paging_row
from bot.services.steps import Choice, Reply, match_typed_choice, rows
from storage import communes
from storage.models import OutreachSession, Staff
from storage.text import fold

if TYPE_CHECKING:
    from bot.services.intake import IntakeService

TOPICS_PER_PAGE = 8
TEXT_STATES = {"ss_place": "place", "ss_title_text": "title", "ss_organiser": "organiser"}


def _library():  # type: ignore[no-untyped-def]
    """The content library (imported late: it validates every file on first use)."""
    from bot.content import library

    return library


def session_refusal(t: Translator, reason: str) -> str:
    """A `SessionError` reason in words, for the bot and the console."""
    messages = {
        "not_allowed": _("You may hold sessions only in your own area."),
        "unknown_session": _("That session does not exist or is outside your area."),
        "unknown_commune": _("That commune does not exist."),
        "bad_value": _("Some of the details are not valid; please start again."),
    }
    return t.gettext(messages.get(reason, messages["bad_value"]))


class SessionFlow(Flow):
    """The guided /session conversation and /sessions summaries, for staff who hold sessions."""

    states = frozenset(
        {
            "ss_commune",
            "ss_title",
            "ss_title_text",
            "ss_place",
            "ss_when",
            "ss_organiser",
            "ss_expected",
            "ss_pledge",
            "ss_preview",
            "ss_list",
            "ss_show",
            "ss_headcount",
        }
    )
    commands = frozenset({"session", "sessions"})

    def __init__(self, engine: IntakeService, timezone: str) -> None:
        self.engine = engine
        self.timezone = timezone

    async def _staff(self, turn: Turn) -> Staff | None:
        """The acting staff member when they hold sessions at all (the commune is checked by
        `outreach_sessions` on every change)."""
        if not turn.user_id:
            return None
        staff = await enrollment.active_staff(
            turn.session, platform=turn.channel, platform_user_id=turn.user_id
        )
        return staff if may(staff, Action.SESSION) else None

    async def _refuse_stranger(self, turn: Turn) -> None:
        """Someone who is not enrolled for sessions: say so, back to the menu."""
        turn.data.clear()
        turn.note(turn.t.gettext(_("Only enrolled police and outreach staff can do this.")))
        await self.engine.go(turn, "menu")

    async def on_command(self, turn: Turn, command: Command) -> bool:
        """/session starts creating one; /sessions lists them."""
        staff = await self._staff(turn)
        if staff is None:
            await self._refuse_stranger(turn)
            return True
        turn.data.clear()
        if command.name == "sessions":
            await self.engine.go(turn, "ss_list")
        elif staff.commune_code is not None:
            turn.data["commune"] = staff.commune_code
            await self.engine.go(turn, "ss_title")
        else:
            await self.engine.go(turn, "ss_commune")
        return True

    # --- rendering --------------------------------------------------------------------------

    async def render(self, turn: Turn) -> Reply:
        """The current step."""
        t, token, data, state = turn.t, turn.draft.step_token, turn.data, turn.draft.state
        cancel = (Choice("x", t.gettext(_("✖️ Cancel"))),)
        if state == "ss_commune":
            found = [await communes.get_commune(turn.session, c) for c in data.get("results", [])]
            return Reply(
                t.gettext(_("<b>New outreach session.</b> In which commune? Type its name:")),
                (*rows([Choice(f"m:{c.code}", c.label) for c in found if c], 1), cancel),
                token,
            )
        if state == "ss_title":
            return self._topic_list(t, token, int(data.get("page", 0)), cancel)
        questions = {
            "ss_title_text": _("Type the session's title:"),
            "ss_place": _("Where is it held? (for example: Nhà văn hóa thôn Đông)"),
            "ss_when": _("When does it start? Type the date and time as dd/mm/yyyy hh:mm."),
        }
        if state in questions:
            return Reply(t.gettext(questions[state]), (cancel,), token)
        if state == "ss_organiser":
            staff = await self._staff(turn)
            me = (Choice("me", staff.display_name[:60]),) if staff else ()
            return Reply(
                t.gettext(_("Who organises it? Type the unit or person, or choose:")),
                (me, cancel) if me else (cancel,),
                token,
            )
        if state == "ss_expected":
            return Reply(
                t.gettext(_("How many people do you expect? Type a number, or skip.")),
                ((Choice("skip", t.gettext(_("Skip"))),), cancel),
                token,
            )
        if state == "ss_pledge":
            return await self._pledge_choices(turn, cancel)
        if state == "ss_preview":
            return await self._preview(turn, cancel)
        if state == "ss_list":
            return await self._list(turn)
        if state == "ss_show":
            return await self._show(turn)
        return Reply(  # ss_headcount
            t.gettext(_("How many people were counted at the session? Type a number.")),
            ((Choice("back", t.gettext(_("↩️ Back"))),),),
            token,
        )

    def _topic_list(
        self, t: Translator, token: int, page: int, cancel: tuple[Choice, ...]
    ) -> Reply:
        """Library topics to take the subject from, or a typed title."""
        topics = sorted(_library().topics().values(), key=lambda topic: fold(topic.title(t.locale)))
        shown = topics[page * TOPICS_PER_PAGE : (page + 1) * TOPICS_PER_PAGE]
        nav = paging_row(t, page, len(topics), TOPICS_PER_PAGE)
        return Reply(
            t.gettext(_("What is the session about? Choose a topic or type your own title.")),
            (
                *rows([Choice(f"tp:{topic.id}", topic.title(t.locale)) for topic in shown], 1),
                *((nav,) if nav else ()),
                (Choice("own", t.gettext(_("✏️ My own title"))),),
                cancel,
            ),
            token,
        )

    async def _pledge_choices(self, turn: Turn, cancel: tuple[Choice, ...]) -> Reply:
        """Open pledge campaigns covering the commune, or none."""
        t = turn.t
        library = _library()
        campaigns = await pledges.open_campaigns(turn.session, commune_code=turn.data["commune"])
        choices = [
            Choice(f"pl:{c.id}", library.pledges()[c.pledge_id].title(t.locale))
            for c in campaigns
            if c.pledge_id in library.pledges()
        ]
        return Reply(
            t.gettext(_("Should attendees be offered a pledge to sign?")),
            (*rows(choices, 1), (Choice("none", t.gettext(_("No pledge"))),), cancel),
            token=turn.draft.step_token,
        )

    async def _details(self, turn: Turn, outreach: dict[str, Any]) -> str:
        """The session's details as lines of HTML."""
        t = turn.t
        commune = await communes.get_commune(turn.session, int(outreach["commune"]))
        expected = outreach.get("expected")
        lines = [
            t.gettext(_("Title: {value}")).format(value=html.escape(str(outreach["title"]))),
            t.gettext(_("Commune: {value}")).format(
                value=html.escape(commune.label if commune else str(outreach["commune"]))
            ),
            t.gettext(_("Place: {value}")).format(value=html.escape(str(outreach["place"]))),
            t.gettext(_("Starts: {value}")).format(
                value=t.datetime(datetime.fromisoformat(str(outreach["starts_at"])))
            ),
            t.gettext(_("Organiser: {value}")).format(
                value=html.escape(str(outreach["organiser"]))
            ),
        ]
        if expected is not None:
            lines.append(t.gettext(_("Expected: {value}")).format(value=t.number(int(expected))))
        return "\n".join(lines)

    async def _preview(self, turn: Turn, cancel: tuple[Choice, ...]) -> Reply:
        """Everything entered, with Create."""
        t = turn.t
        return Reply(
            t.gettext(_("<b>Check the session:</b>")) + "\n" + await self._details(turn, turn.data),
            ((Choice("create", t.gettext(_("✅ Create"))),), cancel),
            turn.draft.step_token,
        )

    async def _list(self, turn: Turn) -> Reply:
        """The latest sessions in the staff member's area."""
        t = turn.t
        staff = await self._staff(turn)
        found = await outreach_sessions.visible_sessions(turn.session, staff=staff) if staff else []
        choices = [
            Choice(
                f"ss:{item.id}",
                f"#{item.id} · {t.datetime(item.starts_at)} · {item.title}"[:64],
            )
            for item in found
        ]
        text = (
            t.gettext(_("<b>Outreach sessions</b> — choose one for its figures:"))
            if choices
            else t.gettext(_("No outreach sessions yet. Send /session to create one."))
        )
        return Reply(
            text,
            (*rows(choices, 1), (Choice("menu", t.gettext(_("↩️ Menu"))),)),
            turn.draft.step_token,
        )

    async def _show(self, turn: Turn) -> Reply:
        """One session's summary: check-ins, head count, pledges; the check-in words."""
        t = turn.t
        outreach = await turn.session.get(OutreachSession, int(turn.data.get("session", 0)))
        back = (Choice("list", t.gettext(_("↩️ Other sessions"))),)
        if outreach is None or outreach.cancelled_at is not None:
            return Reply(
                t.gettext(_("That session does not exist or is outside your area.")),
                (back,),
                turn.draft.step_token,
            )
        figures = await outreach_sessions.summary(turn.session, outreach)
        details = await self._details(turn, _as_data(outreach))
        head_count = (
            t.number(figures.head_count)
            if figures.head_count is not None
            else t.gettext(_("not recorded"))
        )
        lines = [
            f"<b>#{outreach.id}</b>",
            details,
            t.gettext(_("Checked in by QR code: {n}")).format(n=t.number(figures.check_ins)),
            t.gettext(_("Head count: {n}")).format(n=head_count),
            t.gettext(_("Pledges signed at the session: {n}")).format(n=t.number(figures.pledges)),
            check_in_words(t, outreach.id or 0),
        ]
        return Reply(
            "\n".join(lines),
            (
                (Choice("hc", t.gettext(_("👥 Record the head count"))),),
                (Choice("cancel_session", t.gettext(_("🗑 Cancel the session"))),),
                back,
            ),
            turn.draft.step_token,
            share=f"{outreach_sessions.START_PAYLOAD}{outreach.id}",
        )

    # --- choices and texts ------------------------------------------------------------------

    async def apply(self, turn: Turn, value: str) -> bool:
        """A validated choice."""
        staff = await self._staff(turn)
        if staff is None:
            await self._refuse_stranger(turn)
            return True
        state, data = turn.draft.state, turn.data
        if value == "x":
            data.clear()
            turn.note(turn.t.gettext(_("Cancelled. Nothing was sent.")))
            await self.engine.go(turn, "menu")
        elif value.startswith("pg:"):
            data["page"] = int(value[3:])
            await self.engine.go(turn, state)
        elif state == "ss_commune":
            data["commune"] = int(value.removeprefix("m:"))
            await self.engine.go(turn, "ss_title")
        elif state == "ss_title":
            await self._apply_title(turn, value)
        elif state == "ss_organiser":
            data["organiser"] = staff.display_name
            await self.engine.go(turn, "ss_expected")
        elif state == "ss_expected":
            data["expected"] = None
            await self.engine.go(turn, "ss_pledge")
        elif state == "ss_pledge":
            data["campaign"] = int(value[3:]) if value.startswith("pl:") else None
            await self.engine.go(turn, "ss_preview")
        elif state == "ss_preview":
            await self._create(turn, staff)
        elif state == "ss_list":
            data["session"] = int(value.removeprefix("ss:"))
            await self.engine.go(turn, "ss_show")
        elif state == "ss_show":
            await self._apply_show(turn, staff, value)
        else:  # ss_headcount: back
            await self.engine.go(turn, "ss_show")
        return True

    async def _apply_title(self, turn: Turn, value: str) -> None:
        """A library topic as the subject, or ask for a typed title."""
        if value == "own":
            await self.engine.go(turn, "ss_title_text")
            return
        topic = _library().topics().get(value.removeprefix("tp:"))
        if topic is None:
            turn.note(turn.t.gettext(_("That topic does not exist.")))
            await self.engine.go(turn, "ss_title")
            return
        turn.data["title"] = topic.title(turn.t.locale)
        turn.data["topics"] = [topic.id]
        await self.engine.go(turn, "ss_place")

    async def _apply_show(self, turn: Turn, staff: Staff, value: str) -> None:
        """Head count, cancel, or back to the list."""
        if value == "hc":
            await self.engine.go(turn, "ss_headcount")
            return
        if value == "cancel_session":
            try:
                await outreach_sessions.cancel_session(
                    turn.session,
                    staff=staff,
                    session_id=int(turn.data.get("session", 0)),
                    now=turn.now,
                )
            except outreach_sessions.SessionError as error:
                turn.note(session_refusal(turn.t, error.reason))
            else:
                turn.note(
                    turn.t.gettext(_("The session is cancelled; its QR code no longer works."))
                )
        await self.engine.go(turn, "ss_list")

    async def _create(self, turn: Turn, staff: Staff) -> None:
        """Create the session from the draft's data and show it."""
        data = turn.data
        try:
            outreach = await outreach_sessions.create_session(
                turn.session,
                staff=staff,
                commune_code=int(data["commune"]),
                place=str(data["place"]),
                title=str(data["title"]),
                starts_at=datetime.fromisoformat(str(data["starts_at"])),
                organiser=str(data["organiser"]),
                now=turn.now,
                topic_ids=list(data.get("topics", [])),
                expected_attendance=data.get("expected"),
                campaign_id=data.get("campaign"),
            )
        except (outreach_sessions.SessionError, KeyError, ValueError) as error:
            reason = getattr(error, "reason", "bad_value")
            data.clear()
            turn.note(session_refusal(turn.t, reason))
            await self.engine.go(turn, "menu")
            return
        data.clear()
        data["session"] = outreach.id
        turn.note(
            turn.t.gettext(
                _(
                    "✅ Session #{id} is created. Print its poster with "
                    "<code>tinbao poster --session {id}</code>, or share the link below."
                )
            ).format(id=outreach.id)
        )
        await self.engine.go(turn, "ss_show")

    async def on_text(self, turn: Turn, text: str) -> bool:
        """Typed input: a commune name, a title, place, time, organiser, or a number."""
        state, data, t = turn.draft.state, turn.data, turn.t
        if await self._staff(turn) is None:
            await self._refuse_stranger(turn)
            return True
        if state == "ss_commune":
            data["results"] = [r.code for r in await communes.search_communes(turn.session, text)]
            await self.engine.go(turn, "ss_commune")
            return True
        if state in TEXT_STATES:
            value = " ".join(text.split())
            if not value or len(value) > outreach_sessions.MAX_TEXT:
                turn.note(
                    t.gettext(_("Please type at most {n} characters.")).format(
                        n=outreach_sessions.MAX_TEXT
                    )
                )
                await self.engine.show(turn, quiet=True)
                return True
            data[TEXT_STATES[state]] = value
            following = {"ss_title_text": "ss_place", "ss_place": "ss_when"}
            await self.engine.go(turn, following.get(state, "ss_expected"))
            return True
        if state == "ss_when":
            try:
                data["starts_at"] = parse_local_time(text.strip(), self.timezone).isoformat()
            except BroadcastError:
                turn.note(t.gettext(_("I could not read that time.")))
                await self.engine.show(turn, quiet=True)
                return True
            await self.engine.go(turn, "ss_organiser")
            return True
        if state in ("ss_expected", "ss_headcount") and text.strip().isdigit():
            return await self._number(turn, state, int(text.strip()[:7]))
        choice = match_typed_choice(await self.render(turn), text)
        if choice is not None:
            return await self.engine.apply(turn, choice.value)
        turn.note(t.gettext(_("Please choose one of the options below.")))
        await self.engine.show(turn)
        return True

    async def _number(self, turn: Turn, state: str, number: int) -> bool:
        """The expected attendance, or the head count (recorded at once)."""
        if state == "ss_expected":
            turn.data["expected"] = number
            await self.engine.go(turn, "ss_pledge")
            return True
        staff = await self._staff(turn)
        assert staff is not None
        try:
            await outreach_sessions.record_head_count(
                turn.session,
                staff=staff,
                session_id=int(turn.data.get("session", 0)),
                count=number,
                now=turn.now,
            )
        except outreach_sessions.SessionError as error:
            turn.note(session_refusal(turn.t, error.reason))
        else:
            turn.note(
                turn.t.gettext(_("Head count recorded: {n}.")).format(n=turn.t.number(number))
            )
        await self.engine.go(turn, "ss_show")
        return True

    async def on_media(self, turn: Turn, media: Media) -> bool:
        """Files have no place here."""
        turn.note(turn.t.gettext(_("Files are not needed here. Please choose an option below.")))
        await self.engine.show(turn)
        return True


def check_in_words(t: Translator, session_id: int) -> str:
    """How attendees check in without a QR scanner or on Zalo."""
    return t.gettext(_("On Zalo, attendees check in by sending: <code>tham dự {id}</code>")).format(
        id=session_id
    )


def _as_data(outreach: OutreachSession) -> dict[str, Any]:
    """A stored session in the shape `_details` reads."""
    return {
        "title": outreach.title,
        "commune": outreach.commune_code,
        "place": outreach.place,
        "starts_at": outreach.starts_at.isoformat(),
        "organiser": outreach.organiser,
        "expected": outreach.expected_attendance,
    }
