"""Outreach staff compose broadcasts in a private chat: content, audience, time, preview."""

from __future__ import annotations

import html
from typing import TYPE_CHECKING, Any

from sqlalchemy import delete
from sqlmodel import col, select

from bot.i18n import Translator, _
from bot.services import enrollment, outreach_control
from bot.services.authorization import Action, may
from bot.services.events import Command, Media
from bot.services.flow import Flow, Turn
from bot.services.intake_steps import PROVINCES_PER_PAGE, paging_row
from bot.services.steps import Choice, Reply, match_typed_choice, rows
from storage import communes
from storage.models import Staff, TipAttachment
from storage.text import fold

if TYPE_CHECKING:
    from bot.services.intake import IntakeService

PHOTO_KIND = "broadcast_photo"
TOPICS_PER_PAGE = 8
WEEKDAYS = {"t2": 0, "t3": 1, "t4": 2, "t5": 3, "t6": 4, "t7": 5, "cn": 6}
TIME_KINDS = ("once", "daily", "weekly", "monthly", "cron")


def _broadcasts():  # type: ignore[no-untyped-def]
    """The broadcast service (scheduling rules live there)."""
    from bot.services import broadcasts

    return broadcasts


def _library():  # type: ignore[no-untyped-def]
    """The content library."""
    from bot.content import library

    return library


class BroadcastFlow(Flow):
    """The guided /broadcast conversation and /broadcasts management, for outreach staff."""

    states = frozenset(
        {
            "bc_content",
            "bc_topic",
            "bc_text",
            "bc_audience",
            "bc_aud_province",
            "bc_aud_commune",
            "bc_aud_topic",
            "bc_time",
            "bc_time_text",
            "bc_preview",
            "bc_list",
        }
    )
    commands = frozenset({"broadcast", "broadcasts"})

    def __init__(
        self, engine: IntakeService, timezone: str, quiet: tuple[int, int] = (21, 7)
    ) -> None:
        self.engine = engine
        self.timezone = timezone
        self.quiet = quiet  # TINBAO_QUIET_START/END: what the leader holds broadcasts to

    async def _staff(self, turn: Turn) -> Staff | None:
        """The acting staff member, when they do outreach work at all (their scope is checked
        on each broadcast by outreach_control)."""
        if not turn.user_id:
            return None
        staff = await enrollment.active_staff(
            turn.session, platform=turn.channel, platform_user_id=turn.user_id
        )
        return staff if may(staff, Action.OUTREACH) else None

    async def on_command(self, turn: Turn, command: Command) -> bool:
        """/broadcast starts composing; /broadcasts lists them."""
        if await self._staff(turn) is None:
            turn.note(turn.t.gettext(_("Only enrolled outreach staff can send broadcasts.")))
            await self.engine.go(turn, "menu")
            return True
        await self._clear_photo(turn)
        turn.data.clear()
        await self.engine.go(turn, "bc_list" if command.name == "broadcasts" else "bc_content")
        return True

    # --- rendering --------------------------------------------------------------------------

    async def render(self, turn: Turn) -> Reply:
        """The current composing step."""
        t, token, data, state = turn.t, turn.draft.step_token, turn.data, turn.draft.state
        cancel = (Choice("x", t.gettext(_("✖️ Cancel"))),)
        if state == "bc_content":
            return Reply(
                t.gettext(_("<b>New broadcast.</b> What do you want to send?")),
                (
                    (Choice("topic", t.gettext(_("📚 A topic from the library"))),),
                    (Choice("new", t.gettext(_("✏️ A new message"))),),
                    cancel,
                ),
                token,
            )
        if state in ("bc_topic", "bc_aud_topic"):
            return self._topic_list(t, token, int(data.get("page", 0)), cancel)
        if state == "bc_text":
            return Reply(
                t.gettext(
                    _(
                        "Send the message (Telegram HTML allowed: &lt;b&gt;, &lt;i&gt;, links). "
                        "You may send one photo with the text as its caption."
                    )
                ),
                (cancel,),
                token,
            )
        if state == "bc_audience":
            # Country-wide audiences are offered only to staff whose outreach covers it.
            country = outreach_control.reaches_country(await self._staff(turn))
            everyone = (Choice("all", t.gettext(_("Everyone subscribed"))),)
            by_topic = (Choice("topic", t.gettext(_("Subscribers of a topic"))),)
            return Reply(
                t.gettext(_("Who should receive it?")),
                (
                    *((everyone,) if country else ()),
                    (Choice("province", t.gettext(_("A province"))),),
                    (Choice("commune", t.gettext(_("A commune"))),),
                    *((by_topic,) if country else ()),
                    cancel,
                ),
                token,
            )
        if state == "bc_aud_province":
            provinces = await communes.list_provinces(turn.session)
            page = int(data.get("page", 0))
            shown = provinces[page * PROVINCES_PER_PAGE : (page + 1) * PROVINCES_PER_PAGE]
            nav = paging_row(t, page, len(provinces), PROVINCES_PER_PAGE)
            return Reply(
                t.gettext(_("Choose the province:")),
                (
                    *rows(
                        [
                            Choice(f"p:{p.code}", communes.short_province_name(p.name))
                            for p in shown
                        ],
                        2,
                    ),
                    *((nav,) if nav else ()),
                    cancel,
                ),
                token,
            )
        if state == "bc_aud_commune":
            results = [
                await communes.get_commune(turn.session, code) for code in data.get("results", [])
            ]
            return Reply(
                t.gettext(_("Type the commune's name (accents optional) and choose it:")),
                (*rows([Choice(f"m:{r.code}", r.label) for r in results if r], 1), cancel),
                token,
            )
        if state == "bc_time":
            return Reply(
                t.gettext(
                    _("When? (No broadcast goes out between {start} and {end} unless urgent.)")
                ).format(**_quiet_words(self.quiet)),
                (
                    (Choice("now", t.gettext(_("Now"))), Choice("once", t.gettext(_("At a time")))),
                    (
                        Choice("daily", t.gettext(_("Daily"))),
                        Choice("weekly", t.gettext(_("Weekly"))),
                    ),
                    (
                        Choice("monthly", t.gettext(_("Monthly"))),
                        Choice("cron", t.gettext(_("Cron"))),
                    ),
                    cancel,
                ),
                token,
            )
        if state == "bc_time_text":
            return Reply(self._time_question(t, str(data.get("time_kind"))), (cancel,), token)
        if state == "bc_preview":
            return await self._preview(turn, cancel)
        return await self._list(turn)

    def _topic_list(
        self, t: Translator, token: int, page: int, cancel: tuple[Choice, ...]
    ) -> Reply:
        """One page of library topics."""
        topics = sorted(_library().topics().values(), key=lambda topic: fold(topic.title(t.locale)))
        shown = topics[page * TOPICS_PER_PAGE : (page + 1) * TOPICS_PER_PAGE]
        nav = paging_row(t, page, len(topics), TOPICS_PER_PAGE)
        return Reply(
            t.gettext(_("Choose a topic:")),
            (
                *rows([Choice(f"tp:{topic.id}", topic.title(t.locale)) for topic in shown], 1),
                *((nav,) if nav else ()),
                cancel,
            ),
            token,
        )

    @staticmethod
    def _time_question(t: Translator, kind: str) -> str:
        """What to type for each kind of schedule."""
        questions = {
            "once": _("Type the date and time: dd/MM/yyyy HH:mm (for example 25/11/2026 08:00)."),
            "daily": _("Type the time of day: HH:mm (for example 08:00)."),
            "weekly": _("Type the day and time, for example T2 08:00 (T2…T7, CN)."),
            "monthly": _("Type the day of the month and the time, for example 15 08:00."),
            "cron": _("Type a cron expression (minute hour day month weekday), local time."),
        }
        return t.gettext(questions.get(kind, questions["once"]))

    async def _preview(self, turn: Turn, cancel: tuple[Choice, ...]) -> Reply:
        """The broadcast as subscribers will see it, with its audience and schedule."""
        t, data = turn.t, turn.data
        service = _broadcasts()
        spec = await self._spec(turn)
        size = await service.audience_size(turn.session, spec)
        urgent = bool(data.get("urgent"))
        may_urgent = may(await self._staff(turn), Action.URGENT)
        summary = t.gettext(
            _(
                "<b>Preview above.</b> Audience: {audience} ({count} subscribers). "
                "When: {when}.{urgent}"
            )
        ).format(
            audience=html.escape(await self._audience_label(turn)),
            count=t.number(size),
            when=html.escape(self._when_label(t, data)),
            urgent=" " + t.gettext(_("🚨 Urgent: quiet hours ignored.")) if urgent else "",
        )
        return Reply(
            summary,
            (
                (Choice("ok", t.gettext(_("✅ Confirm"))),),
                *(
                    (
                        (
                            Choice(
                                "urgent",
                                t.gettext(_("🚨 Mark urgent"))
                                if not urgent
                                else t.gettext(_("Not urgent")),
                            ),
                        ),
                    )
                    if may_urgent or urgent
                    else ()
                ),
                cancel,
            ),
            turn.draft.step_token,
        )

    async def _list(self, turn: Turn) -> Reply:
        """Scheduled and past broadcasts with their reach, and buttons to manage them."""
        t = turn.t
        staff = await self._staff(turn)
        assert staff is not None  # apply() and on_command() checked
        items = await outreach_control.visible_broadcasts(turn.session, staff=staff, limit=10)
        lines = [t.gettext(_("<b>Broadcasts</b> (planned · sent · failed · blocked):"))]
        choices: list[tuple[Choice, ...]] = []
        for item in items:
            b = item.broadcast
            title = b.topic_id or (b.text or "")[:30]
            lines.append(
                f"#{b.id} · {html.escape(title)} · {html.escape(b.status)} · "
                f"{item.planned} · {item.sent} · {item.failed} · {item.blocked}"
            )
            if b.status == "scheduled":
                choices.append(
                    (Choice(f"pause:{b.id}", f"⏸ #{b.id}"), Choice(f"cancel:{b.id}", f"🗑 #{b.id}"))
                )
            elif b.status == "paused":
                choices.append(
                    (Choice(f"resume:{b.id}", f"▶️ #{b.id}"), Choice(f"cancel:{b.id}", f"🗑 #{b.id}"))
                )
        if not items:
            lines.append(t.gettext(_("No broadcasts yet. Use /broadcast to create one.")))
        return Reply(
            "\n".join(lines),
            (*choices, (Choice("menu", t.gettext(_("↩️ Menu"))),)),
            turn.draft.step_token,
        )

    # --- choices and input ------------------------------------------------------------------

    async def apply(self, turn: Turn, value: str) -> bool:
        """A validated choice while composing."""
        if await self._staff(turn) is None:
            turn.note(turn.t.gettext(_("Only enrolled outreach staff can send broadcasts.")))
            await self.engine.go(turn, "menu")
            return True
        state, data = turn.draft.state, turn.data
        if value.startswith("pg:"):
            data["page"] = int(value[3:])
            await self.engine.go(turn, state)
        elif state == "bc_content":
            data["page"] = 0
            await self.engine.go(turn, "bc_topic" if value == "topic" else "bc_text")
        elif state == "bc_topic":
            data["topic"] = value.removeprefix("tp:")
            await self.engine.go(turn, "bc_audience")
        elif state == "bc_audience":
            data["audience"] = value
            data["page"] = 0
            target = {"all": "bc_time", "province": "bc_aud_province", "commune": "bc_aud_commune"}
            await self.engine.go(turn, target.get(value, "bc_aud_topic"))
        elif state in ("bc_aud_province", "bc_aud_commune"):
            data["audience_code"] = int(value.split(":", 1)[1])
            await self.engine.go(turn, "bc_time")
        elif state == "bc_aud_topic":
            data["audience_topic"] = value.removeprefix("tp:")
            await self.engine.go(turn, "bc_time")
        elif state == "bc_time":
            data["time_kind"] = value
            if value == "now":
                await self._enter_preview(turn)
            else:
                await self.engine.go(turn, "bc_time_text")
        elif state == "bc_preview":
            await self._apply_preview(turn, value)
        elif state == "bc_list":
            await self._apply_list(turn, value)
        return True

    async def _apply_preview(self, turn: Turn, value: str) -> None:
        """Confirm, or toggle urgency."""
        if value == "urgent":
            turn.data["urgent"] = not turn.data.get("urgent")
            await self.engine.go(turn, "bc_preview")
            return
        if value == "x":
            return
        service = _broadcasts()
        staff = await self._staff(turn)
        assert staff is not None  # apply() checked
        try:
            broadcast = await outreach_control.create_broadcast(
                turn.session,
                staff=staff,
                spec=await self._spec(turn),
                now=turn.now,
                tz=self.timezone,
                quiet=self.quiet,
            )
        except service.BroadcastError as error:
            turn.note(refusal_text(turn.t, error.reason, quiet=self.quiet))
            await self.engine.go(
                turn, "bc_audience" if error.reason == "not_allowed" else "bc_time"
            )
            return
        await self._clear_photo(turn)
        turn.queued = True  # wakes this process's runtime so the schedule is picked up at once
        turn.note(
            turn.t.gettext(
                _("✅ Broadcast #{id} scheduled. See /broadcasts for its reach.")
            ).format(id=broadcast.id)
        )
        turn.data.clear()
        await self.engine.go(turn, "menu")

    async def _apply_list(self, turn: Turn, value: str) -> None:
        """Pause, resume or cancel a broadcast."""
        service = _broadcasts()
        action, _sep, raw_id = value.partition(":")
        staff = await self._staff(turn)
        assert staff is not None  # apply() checked
        try:
            await outreach_control.change_broadcast(
                turn.session,
                staff=staff,
                broadcast_id=int(raw_id),
                action=action,
                now=turn.now,
                tz=self.timezone,
                quiet=self.quiet,
            )
        except service.BroadcastError as error:
            turn.note(refusal_text(turn.t, error.reason, quiet=self.quiet))
        turn.queued = True
        await self.engine.go(turn, "bc_list")

    async def on_text(self, turn: Turn, text: str) -> bool:
        """Typed input: the message, a commune name, a time, or a typed-back choice."""
        state, data, t = turn.draft.state, turn.data, turn.t
        if await self._staff(turn) is None:
            turn.note(t.gettext(_("Only enrolled outreach staff can send broadcasts.")))
            await self.engine.go(turn, "menu")
            return True
        if state == "bc_text":
            data["text"] = text[:3500]
            await self.engine.go(turn, "bc_audience")
            return True
        if state == "bc_aud_commune":
            data["results"] = [r.code for r in await communes.search_communes(turn.session, text)]
            await self.engine.go(turn, "bc_aud_commune")
            return True
        if state == "bc_time_text":
            return await self._read_time(turn, text)
        choice = match_typed_choice(await self.render(turn), text)
        if choice is not None:
            return await self.engine.apply(turn, choice.value)
        turn.note(t.gettext(_("Please choose one of the options below.")))
        await self.engine.show(turn)
        return True

    async def _read_time(self, turn: Turn, text: str) -> bool:
        """Parse the typed schedule for the chosen kind."""
        service = _broadcasts()
        kind = str(turn.data.get("time_kind"))
        parts = text.strip().lower().split()
        try:
            if kind == "once":
                when = service.parse_local_time(text.strip(), self.timezone)
                turn.data["run_at"] = when.isoformat()
            elif kind == "cron":
                turn.data["cron"] = service.validate_cron(text.strip())
            else:
                hour, minute = _hour_minute(parts[-1])
                if kind == "daily":
                    turn.data["cron"] = service.cron_daily(hour, minute)
                elif kind == "weekly":
                    day = parts[0].replace("thứ", "t").replace(" ", "")
                    day = day if day in WEEKDAYS else f"t{day}"
                    turn.data["cron"] = service.cron_weekly(WEEKDAYS[day], hour, minute)
                else:
                    turn.data["cron"] = service.cron_monthly(int(parts[0]), hour, minute)
        except (service.BroadcastError, ValueError, KeyError, IndexError):
            turn.note(
                turn.t.gettext(_("I could not read that time."))
                + " "
                + self._time_question(turn.t, kind)
            )
            await self.engine.show(turn, quiet=True)
            return True
        turn.data["time_text"] = text.strip()[:40]
        await self._enter_preview(turn)
        return True

    async def on_media(self, turn: Turn, media: Media) -> bool:
        """A photo for a new message (its caption is the text)."""
        if turn.draft.state != "bc_text" or media.kind != "photo":
            turn.note(turn.t.gettext(_("Only one photo can be attached, at the message step.")))
            await self.engine.show(turn)
            return True
        await self._clear_photo(turn)
        turn.session.add(
            TipAttachment(
                draft_key=turn.draft.key,
                kind=PHOTO_KIND,
                mime_type=media.mime_type,
                filename=media.filename,
                size=len(media.data),
                content=media.data,
                created_at=turn.now,
            )
        )
        turn.data["text"] = (media.caption or "")[:1000]
        turn.data["photo"] = True
        await self.engine.go(turn, "bc_audience")
        return True

    # --- helpers ----------------------------------------------------------------------------

    async def _spec(self, turn: Turn) -> Any:
        """The broadcast spec the draft describes."""
        from datetime import datetime

        service = _broadcasts()
        data = turn.data
        kind = str(data.get("time_kind", "now"))
        photo = await self._photo(turn) if data.get("photo") else None
        return service.BroadcastSpec(
            topic_id=data.get("topic"),
            text=data.get("text"),
            photo=photo,
            audience=str(data.get("audience", "all")),
            audience_code=data.get("audience_code"),
            audience_topic=data.get("audience_topic"),
            trigger="now" if kind == "now" else ("once" if kind == "once" else "cron"),
            run_at=datetime.fromisoformat(data["run_at"]) if data.get("run_at") else None,
            cron=data.get("cron"),
            urgent=bool(data.get("urgent")),
        )

    async def _photo(self, turn: Turn) -> bytes | None:
        """The photo attached while composing."""
        statement = select(TipAttachment).where(
            TipAttachment.draft_key == turn.draft.key, TipAttachment.kind == PHOTO_KIND
        )
        row = (await turn.session.exec(statement)).first()
        return row.content if row else None

    async def _clear_photo(self, turn: Turn) -> None:
        """Drop a photo attached while composing."""
        await turn.session.exec(
            delete(TipAttachment).where(
                col(TipAttachment.draft_key) == turn.draft.key,
                col(TipAttachment.kind) == PHOTO_KIND,
            )
        )

    async def _audience_label(self, turn: Turn) -> str:
        """The audience in words."""
        t, data = turn.t, turn.data
        audience = data.get("audience")
        if audience == "commune":
            commune = await communes.get_commune(turn.session, int(data["audience_code"]))
            return commune.label if commune else "?"
        if audience == "province":
            provinces = {p.code: p.name for p in await communes.list_provinces(turn.session)}
            return provinces.get(int(data["audience_code"]), "?")
        if audience == "topic":
            topic = _library().topics().get(str(data.get("audience_topic")))
            return t.gettext(_("subscribers of “{topic}”")).format(
                topic=topic.title(t.locale) if topic else "?"
            )
        return t.gettext(_("everyone subscribed"))

    def _when_label(self, t: Translator, data: dict[str, Any]) -> str:
        """The schedule in words: now, a date, or what the staff member typed."""
        kind = str(data.get("time_kind", "now"))
        if kind == "now":
            return t.gettext(_("now"))
        if kind == "once" and data.get("run_at"):
            from datetime import datetime

            return t.datetime(datetime.fromisoformat(str(data["run_at"])))
        names = {
            "daily": _("daily"),
            "weekly": _("weekly"),
            "monthly": _("monthly"),
            "cron": _("cron"),
        }
        return f"{t.gettext(names.get(kind, names['cron']))} {data.get('time_text', '')}".strip()

    async def _enter_preview(self, turn: Turn) -> None:
        """Show the broadcast exactly as subscribers will get it, then the summary."""
        text, photo = _broadcasts().render_spec(await self._spec(turn), turn.t.locale)
        turn.say(Reply(text, photo=photo))
        await self.engine.go(turn, "bc_preview")


def _quiet_words(quiet: tuple[int, int]) -> dict[str, str]:
    """Quiet hours (local start and end hour) as the texts show them: 21:00 and 07:00."""
    start, end = quiet
    return {"start": f"{start:02d}:00", "end": f"{end:02d}:00"}


def refusal_text(t: Translator, reason: str, quiet: tuple[int, int] = (21, 7)) -> str:
    """A scheduling refusal (`BroadcastError.reason`) in words, for the bot and the console."""
    if reason == "quiet_hours":
        return t.gettext(
            _(
                "That time falls in quiet hours ({start}–{end}). Choose another time or mark it "
                "urgent."
            )
        ).format(**_quiet_words(quiet))
    messages = {
        "in_past": _("That time is in the past."),
        "bad_cron": _("That cron expression is not valid."),
        "bad_time": _("I could not read that time."),
        "empty": _("The broadcast has no content."),
        "unknown_topic": _("That topic does not exist."),
        "not_found": _("That broadcast does not exist."),
        "bad_state": _("That cannot be done in the broadcast's current state."),
        "not_allowed": _(
            "You may send only to subscribers in your own area, and only supervisors "
            "may mark a broadcast urgent. Choose another audience."
        ),
        "too_long": _("The message is too long for Telegram."),
        "bad_html": _("The message has formatting Telegram does not accept."),
        "bad_audience": _("Choose who should receive it."),
    }
    return t.gettext(messages.get(reason, _("The broadcast could not be scheduled.")))


def _hour_minute(text: str) -> tuple[int, int]:
    """Parse HH:mm."""
    hour_text, minute_text = text.replace("h", ":").split(":", 1)
    hour, minute = int(hour_text), int(minute_text or 0)
    if not (0 <= hour < 24 and 0 <= minute < 60):
        raise ValueError("time out of range")
    return hour, minute
