"""Citizen outreach: read legal topics, subscribe to a commune's outreach, sign pledges."""

from __future__ import annotations

import html
from typing import TYPE_CHECKING

from bot.i18n import Translator, _
from bot.services import outreach_sessions, pledges, subscriptions
from bot.services.anonymity import RoutePurpose
from bot.services.events import Command, Media
from bot.services.flow import Flow, Turn
from bot.services.intake_steps import paging_row
from bot.services.steps import Choice, Reply, match_typed_choice, rows
from storage import communes
from storage.models import OutreachSession, PledgeCampaign
from storage.text import fold

if TYPE_CHECKING:
    from bot.services.intake import IntakeService

TOPICS_PER_PAGE = 8
TOPIC_PAYLOAD = "t_"  # /start t_<topic id> opens a topic (shared links)


def _library():  # type: ignore[no-untyped-def]
    """The content library (imported late: it validates every file on first use)."""
    from bot.content import library

    return library


class OutreachFlow(Flow):
    """Topics, subscriptions and pledges for citizens."""

    states = frozenset(
        {
            "topics",
            "topic",
            "sub_status",
            "sub_topics",
            "pledges",
            "pledge",
            "pledge_household",
            "checkin",
        }
    )
    commands = frozenset({"topics", "subscribe", "unsubscribe", "pledge"})
    menu_values = frozenset({"learn", "subscribe", "pledge"})
    purposes = frozenset({"subscribe", "pledge"})

    def __init__(self, engine: IntakeService) -> None:
        self.engine = engine

    def menu_choices(self, t: Translator) -> list[Choice]:
        """Menu entries: learn, subscribe, pledge."""
        return [
            Choice("learn", t.gettext(_("📚 Learn the law"))),
            Choice("subscribe", t.gettext(_("🔔 Outreach news"))),
            Choice("pledge", t.gettext(_("✍️ Sign a pledge"))),
        ]

    def place_prompt(self, t: Translator) -> str:
        """The place question for subscriptions and pledges."""
        return t.gettext(
            _(
                "Which commune or ward do you live in? Type its name (accents are not needed), "
                "or choose by province."
            )
        )

    # --- entry points -----------------------------------------------------------------------

    async def on_menu(self, turn: Turn, value: str) -> bool:
        """Menu entries."""
        return await self._enter(
            turn, {"learn": "topics", "subscribe": "subscribe"}.get(value, value)
        )

    async def on_command(self, turn: Turn, command: Command) -> bool:
        """/topics, /subscribe, /unsubscribe, /pledge."""
        if command.name == "unsubscribe":
            key = self._subscriber_key(turn)
            removed = await subscriptions.unsubscribe(
                turn.session, key, previous_keys=self._previous_subscriber_keys(turn)
            )
            turn.note(
                turn.t.gettext(_("You will no longer receive outreach messages."))
                if removed
                else turn.t.gettext(_("You are not subscribed."))
            )
            await self.engine.go(turn, "menu")
            return True
        return await self._enter(turn, command.name)

    async def on_start_payload(self, turn: Turn, payload: str) -> bool:
        """A shared topic link (/start t_<topic id>) or a session's QR code (/start s<id>)."""
        session_id = payload.removeprefix(outreach_sessions.START_PAYLOAD)
        if payload.startswith(outreach_sessions.START_PAYLOAD) and session_id.isdigit():
            await self._check_in(turn, int(session_id[:9]))
            return True
        if not payload.startswith(TOPIC_PAYLOAD):
            return False
        topic_id = payload[len(TOPIC_PAYLOAD) :]
        turn.data.clear()
        if topic_id in _library().topics():
            turn.data["topic"] = topic_id
            await self.engine.go(turn, "topic")
        else:
            turn.note(turn.t.gettext(_("This topic no longer exists.")))
            await self.engine.go(turn, "topics")
        return True

    async def _check_in(self, turn: Turn, session_id: int) -> None:
        """Check the citizen in at a session, then offer its commune's news and its pledge."""
        keyring = self.engine.keyring
        result = await outreach_sessions.check_in(
            turn.session,
            session_id=session_id,
            key=outreach_sessions.attendee_key(keyring, turn.channel, session_id, turn.user_id),
            channel=turn.channel,
            now=turn.now,
            previous_keys=outreach_sessions.previous_attendee_keys(
                keyring, turn.channel, session_id, turn.user_id
            ),
        )
        turn.data.clear()
        if result.outreach is None:
            turn.note(turn.t.gettext(_("This outreach session is not known or was cancelled.")))
            await self.engine.go(turn, "menu")
            return
        turn.data.update({"session": session_id, "checkin": result.status})
        await self.engine.go(turn, "checkin")

    async def _render_check_in(self, turn: Turn) -> Reply:
        """What the check-in did, with the session's commune news and pledge on offer."""
        t, token = turn.t, turn.draft.step_token
        menu_row = (Choice("menu", t.gettext(_("↩️ Menu"))),)
        outreach = await turn.session.get(OutreachSession, int(turn.data.get("session", 0)))
        if outreach is None:
            return Reply(
                t.gettext(_("This outreach session is not known or was cancelled.")),
                (menu_row,),
                token,
            )
        texts = {
            "checked_in": _(
                "✅ You are checked in at <b>{title}</b> ({place}, {when}). Thank you for coming!"
            ),
            "again": _(
                "You are already checked in at <b>{title}</b> ({place}, {when}). Thank you!"
            ),
            "not_open": _(
                "Check-in for <b>{title}</b> ({place}, {when}) opens two hours before it starts."
            ),
            "over": _("Check-in for <b>{title}</b> ({place}, {when}) has closed."),
        }
        text = t.gettext(texts.get(str(turn.data.get("checkin")), texts["again"])).format(
            title=html.escape(outreach.title),
            place=html.escape(outreach.place),
            when=t.datetime(outreach.starts_at),
        )
        choices: list[Choice] = []
        if await self._subscription(turn) is None:
            commune = await communes.get_commune(turn.session, outreach.commune_code)
            place = commune.label if commune else str(outreach.commune_code)
            choices.append(
                Choice("ci_sub", t.gettext(_("🔔 Outreach news for {place}")).format(place=place))
            )
        campaign = await self._session_campaign(turn, outreach)
        if campaign is not None:
            choices.append(Choice("ci_sign", t.gettext(_("✍️ Sign the session's pledge"))))
        return Reply(text, (*rows(choices, 1), menu_row), token)

    async def _session_campaign(
        self, turn: Turn, outreach: OutreachSession
    ) -> PledgeCampaign | None:
        """The session's pledge campaign while it is open."""
        if outreach.campaign_id is None:
            return None
        campaign = await turn.session.get(PledgeCampaign, outreach.campaign_id)
        return campaign if campaign is not None and campaign.closed_at is None else None

    async def _apply_check_in(self, turn: Turn, value: str) -> None:
        """Subscribe to the session's commune, or read and sign its pledge."""
        outreach = await turn.session.get(OutreachSession, int(turn.data.get("session", 0)))
        if outreach is None:
            await self.engine.go(turn, "menu")
            return
        session_id = outreach.id
        if value == "ci_sub":
            turn.data.clear()
            turn.data.update({"purpose": "subscribe", "commune": outreach.commune_code, "sel": []})
            await self.engine.go(turn, "sub_topics")
            return
        campaign = await self._session_campaign(turn, outreach)
        if campaign is None:
            turn.note(turn.t.gettext(_("This pledge is no longer open.")))
            await self.engine.go(turn, "checkin")
            return
        turn.data.clear()
        turn.data.update(
            {"campaign": campaign.id, "commune": outreach.commune_code, "session": session_id}
        )
        await self.engine.go(turn, "pledge")

    async def _enter(self, turn: Turn, what: str) -> bool:
        """Start one of the three journeys."""
        turn.data.clear()
        if what == "topics":
            turn.data["page"] = 0
            await self.engine.go(turn, "topics")
        elif what == "subscribe":
            if await self._subscription(turn) is not None:
                await self.engine.go(turn, "sub_status")
            else:
                await self.engine.start_place_picker(turn, "subscribe")
        else:
            await self.engine.go(turn, "pledges")
        return True

    async def after_place(self, turn: Turn) -> None:
        """The commune is known: choose topics (subscribe) or the household (pledge)."""
        if turn.data.get("purpose") == "subscribe":
            turn.data.setdefault("sel", [])
            await self.engine.go(turn, "sub_topics")
        else:
            await self.engine.go(turn, "pledge_household")

    # --- steps ------------------------------------------------------------------------------

    async def render(self, turn: Turn) -> Reply:
        """The current outreach step."""
        t, token, data, state = turn.t, turn.draft.step_token, turn.data, turn.draft.state
        library = _library()
        menu_row = (Choice("menu", t.gettext(_("↩️ Menu"))),)
        if state == "topics":
            topics = sorted(
                library.topics().values(), key=lambda topic: fold(topic.title(t.locale))
            )
            page = int(data.get("page", 0))
            shown = topics[page * TOPICS_PER_PAGE : (page + 1) * TOPICS_PER_PAGE]
            nav = paging_row(t, page, len(topics), TOPICS_PER_PAGE)
            return Reply(
                t.gettext(_("<b>Learn the law</b> — choose a topic:")),
                (
                    *rows([Choice(f"tp:{topic.id}", topic.title(t.locale)) for topic in shown], 1),
                    *((nav,) if nav else ()),
                    menu_row,
                ),
                token,
            )
        if state == "topic":
            topic = library.topics().get(str(data.get("topic")))
            if topic is None:
                return Reply(t.gettext(_("This topic no longer exists.")), (menu_row,), token)
            return Reply(
                library.render_topic(topic, t.locale),
                ((Choice("list", t.gettext(_("📚 Other topics"))),), menu_row),
                token,
                share=f"{TOPIC_PAYLOAD}{topic.id}",
            )
        if state == "sub_status":
            return await self._render_subscription(turn)
        if state == "checkin":
            return await self._render_check_in(turn)
        if state == "sub_topics":
            selected = set(data.get("sel", []))
            choices = [
                Choice(
                    f"tg:{topic.id}",
                    ("✅ " if topic.id in selected else "▫️ ") + topic.title(t.locale),
                )
                for topic in sorted(
                    library.topics().values(), key=lambda topic: fold(topic.title(t.locale))
                )
            ]
            return Reply(
                t.gettext(
                    _(
                        "Choose the topics you want to hear about (none chosen means all), "
                        "then press <b>Done</b>."
                    )
                ),
                (*rows(choices, 1), (Choice("done", t.gettext(_("✅ Done"))),), menu_row),
                token,
            )
        if state == "pledges":
            campaigns = await pledges.open_campaigns(turn.session)
            pledge_map = library.pledges()
            choices = [
                Choice(f"pl:{c.id}", pledge_map[c.pledge_id].title(t.locale))
                for c in campaigns
                if c.pledge_id in pledge_map
            ]
            text = (
                t.gettext(_("<b>Pledges open for signing</b> — choose one to read:"))
                if choices
                else t.gettext(_("No pledge is open for signing at the moment."))
            )
            return Reply(text, (*rows(choices, 1), menu_row), token)
        if state == "pledge":
            campaign = await turn.session.get(PledgeCampaign, int(data.get("campaign", 0)))
            pledge = library.pledges().get(campaign.pledge_id) if campaign else None
            if campaign is None or pledge is None or campaign.closed_at is not None:
                return Reply(t.gettext(_("This pledge is no longer open.")), (menu_row,), token)
            return Reply(
                library.render_pledge(pledge, t.locale),
                (
                    (Choice("sign", t.gettext(_("✍️ I pledge"))),),
                    (Choice("list", t.gettext(_("↩️ Other pledges"))),),
                    menu_row,
                ),
                token,
            )
        # pledge_household
        return Reply(
            t.gettext(
                _(
                    "Type the name of the head of your household (optional, it is counted with "
                    "your commune), or press <b>Skip</b>."
                )
            ),
            ((Choice("skip", t.gettext(_("Skip"))),), menu_row),
            token,
        )

    async def _render_subscription(self, turn: Turn) -> Reply:
        """What the citizen is subscribed to, with ways to change it."""
        t, token = turn.t, turn.draft.step_token
        current = await self._subscription(turn)
        if current is None:
            return Reply(
                t.gettext(_("You are not subscribed.")),
                ((Choice("menu", t.gettext(_("↩️ Menu"))),),),
                token,
            )
        commune = await communes.get_commune(turn.session, current.commune_code)
        library = _library()
        names = [
            library.topics()[tid].title(t.locale)
            for tid in current.topics
            if tid in library.topics()
        ]
        return Reply(
            t.gettext(_("You receive outreach news for <b>{place}</b>. Topics: {topics}.")).format(
                place=html.escape(commune.label if commune else str(current.commune_code)),
                topics=html.escape(", ".join(names)) if names else t.gettext(_("all")),
            ),
            (
                (Choice("chg_place", t.gettext(_("📍 Change commune"))),),
                (Choice("chg_topics", t.gettext(_("🏷 Change topics"))),),
                (Choice("unsub", t.gettext(_("🔕 Unsubscribe"))),),
                (Choice("menu", t.gettext(_("↩️ Menu"))),),
            ),
            token,
        )

    # --- choices and texts ------------------------------------------------------------------

    async def apply(self, turn: Turn, value: str) -> bool:
        """A validated choice in an outreach step."""
        state, data = turn.draft.state, turn.data
        if state == "topics":
            if value.startswith("pg:"):
                data["page"] = int(value[3:])
                await self.engine.go(turn, "topics")
            else:
                data["topic"] = value.removeprefix("tp:")
                await self.engine.go(turn, "topic")
        elif state == "topic":
            await self.engine.go(turn, "topics")
        elif state == "sub_status":
            await self._apply_sub_status(turn, value)
        elif state == "sub_topics":
            await self._apply_sub_topics(turn, value)
        elif state == "pledges":
            data["campaign"] = int(value.removeprefix("pl:"))
            await self.engine.go(turn, "pledge")
        elif state == "pledge":
            await self._apply_pledge(turn, value)
        elif state == "checkin":
            await self._apply_check_in(turn, value)
        else:  # pledge_household: skip
            await self._sign(turn, None)
        return True

    async def _apply_sub_status(self, turn: Turn, value: str) -> None:
        """Change or end a subscription."""
        current = await self._subscription(turn)
        if value == "unsub":
            await self.on_command(turn, Command("unsubscribe"))
        elif value == "chg_topics" and current is not None:
            turn.data.update(
                {
                    "purpose": "subscribe",
                    "commune": current.commune_code,
                    "sel": list(current.topics),
                }
            )
            await self.engine.go(turn, "sub_topics")
        else:
            turn.data["sel"] = list(current.topics) if current else []
            await self.engine.start_place_picker(turn, "subscribe")

    async def _apply_sub_topics(self, turn: Turn, value: str) -> None:
        """Toggle a topic, or save the subscription."""
        if value.startswith("tg:"):
            selected = set(turn.data.get("sel", []))
            selected ^= {value[3:]}
            turn.data["sel"] = sorted(selected)
            await self.engine.go(turn, "sub_topics")
            return
        commune_code = int(turn.data["commune"])
        keyring = self.engine.keyring
        await subscriptions.subscribe(
            turn.session,
            key=self._subscriber_key(turn),
            channel=turn.channel,
            # Sealed afresh under the subscribers' own subkey: no subscription shares a
            # ciphertext or a key with the draft (or any tip), so none can be joined to one.
            route=keyring.encrypt_route(
                *keyring.decrypt_route(turn.draft.route, RoutePurpose.DRAFT),
                purpose=RoutePurpose.SUBSCRIBER,
            ),
            commune_code=commune_code,
            topics=list(turn.data.get("sel", [])),
            locale=turn.t.locale,
            now=turn.now,
            previous_keys=self._previous_subscriber_keys(turn),
        )
        commune = await communes.get_commune(turn.session, commune_code)
        turn.note(
            turn.t.gettext(
                _(
                    "🔔 Subscribed: you will receive outreach news for {place}. "
                    "Send /unsubscribe to stop."
                )
            ).format(place=html.escape(commune.label if commune else str(commune_code)))
        )
        turn.data.clear()
        await self.engine.go(turn, "menu")

    async def _apply_pledge(self, turn: Turn, value: str) -> None:
        """Sign the pledge being read, or go back to the list."""
        if value == "list":
            await self.engine.go(turn, "pledges")
            return
        campaign = await turn.session.get(PledgeCampaign, int(turn.data["campaign"]))
        # Signed at a session: it counts for the session's commune, whatever the campaign's area.
        commune = turn.data.get("commune") if "session" in turn.data else None
        if campaign is not None and (commune or campaign.commune_code) is not None:
            turn.data["commune"] = commune or campaign.commune_code
            turn.data["purpose"] = "pledge"
            await self.engine.go(turn, "pledge_household")
            return
        await self.engine.start_place_picker(turn, "pledge")

    async def on_text(self, turn: Turn, text: str) -> bool:
        """Typed text: the household name, or a typed-back choice elsewhere."""
        if turn.draft.state == "pledge_household":
            await self._sign(turn, text)
            return True
        choice = match_typed_choice(await self.render(turn), text)
        if choice is not None:
            return await self.engine.apply(turn, choice.value)
        turn.note(turn.t.gettext(_("Please choose one of the options below.")))
        await self.engine.show(turn)
        return True

    async def on_media(self, turn: Turn, media: Media) -> bool:
        """Files have no place in outreach steps."""
        turn.note(turn.t.gettext(_("Files are not needed here. Please choose an option below.")))
        await self.engine.show(turn)
        return True

    async def _sign(self, turn: Turn, household: str | None) -> None:
        """Record the signature and give a receipt."""
        t = turn.t
        try:
            signature = await pledges.sign(
                turn.session,
                campaign_id=int(turn.data["campaign"]),
                commune_code=int(turn.data["commune"]),
                household=household,
                signer_key=self.engine.keyring.user_key(
                    pledges.KEY_PREFIX + turn.channel, turn.user_id
                ),
                now=turn.now,
                previous_keys=self.engine.keyring.previous_user_keys(
                    pledges.KEY_PREFIX + turn.channel, turn.user_id
                ),
                session_id=turn.data.get("session"),
            )
        except pledges.PledgeError as error:
            message = (
                _("You have already signed this pledge. Thank you!")
                if error.reason == "already_signed"
                else _("This pledge is no longer open.")
            )
            turn.note(t.gettext(message))
        else:
            turn.note(
                t.gettext(
                    _("✍️ Thank you for your pledge! Confirmation code: <code>{receipt}</code>")
                ).format(receipt=signature.receipt)
            )
        turn.data.clear()
        await self.engine.go(turn, "menu")

    def _subscriber_key(self, turn: Turn) -> str:
        """This citizen's subscription key."""
        return subscriptions.subscriber_key(self.engine.keyring, turn.channel, turn.user_id)

    def _previous_subscriber_keys(self, turn: Turn) -> list[str]:
        """This citizen's subscription keys under previous secrets (after a key rotation)."""
        return subscriptions.previous_subscriber_keys(
            self.engine.keyring, turn.channel, turn.user_id
        )

    async def _subscription(self, turn: Turn) -> subscriptions.Subscription | None:
        """This citizen's active subscription, under the current or a previous key."""
        return await subscriptions.current(
            turn.session,
            self._subscriber_key(turn),
            previous_keys=self._previous_subscriber_keys(turn),
        )
