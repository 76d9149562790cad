"""Outreach in the browser: the broadcast calendar, composing with previews, delivery progress,
pause/resume/cancel, pledge campaigns and subscriber counts.

Every page checks `may(staff, OUTREACH)`; what a page lists and every change go through
`outreach_control`, which scopes them to the staff member's area and audits them.
"""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from babel.dates import format_date
from sqlmodel import col, select
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from bot.channels.markup import to_plain
from bot.content.library import pledges as pledge_templates
from bot.content.library import topics
from bot.i18n import Translator, _
from bot.services import broadcasts, outreach_control
from bot.services.authorization import Action, allowed, may
from bot.services.broadcast_flow import refusal_text
from bot.services.broadcasts import BroadcastError, BroadcastReach
from bot.services.pledges import PledgeError
from storage import communes
from storage.models import Broadcast, BroadcastRun, Commune, Province, Staff
from web import outreach_view
from web.guard import console_of, route
from web.render import page, translator_for

STATE_ACTIONS = frozenset(broadcasts.ACTIONS)
LIVE_AHEAD = timedelta(minutes=2)
STATUS_LABELS = {
    broadcasts.BroadcastStatus.SCHEDULED: _("scheduled"),
    broadcasts.BroadcastStatus.PAUSED: _("paused"),
    broadcasts.BroadcastStatus.CANCELLED: _("cancelled"),
    broadcasts.BroadcastStatus.FINISHED: _("finished"),
}


def _staff(request: Request) -> Staff:
    """The reader, as a staff member."""
    staff = request.state.current.staff
    assert isinstance(staff, Staff)
    return staff


def _refused(request: Request, message: str, status_code: int = 403) -> Response:
    """A refusal page in the reader's language."""
    return page(request, "refused.html", {"message": message}, status_code=status_code)


def _not_outreach(request: Request) -> Response | None:
    """A 403 page for staff who do no outreach work, else None."""
    if may(_staff(request), Action.OUTREACH):
        return None
    t = translator_for(request)
    return _refused(
        request, t.gettext(_("Only outreach staff, supervisors and admins can do this."))
    )


def _quiet(console: Any) -> tuple[int, int]:
    """The deployment's quiet hours (TINBAO_QUIET_START/END), as the refusals name them."""
    settings = console.services.settings
    return settings.quiet_start, settings.quiet_end


def _title(broadcast: Broadcast, locale: str) -> str:
    """A short name for a broadcast: its topic's title or the start of its text."""
    if broadcast.topic_id and broadcast.topic_id in topics():
        return str(topics()[broadcast.topic_id].title(locale))
    plain = to_plain(broadcast.text or "").strip()
    return plain[:60] + ("…" if len(plain) > 60 else "")


async def _place_names(session: Any, codes: set[int]) -> dict[str, str]:
    """Names of communes and provinces by "c:code" / "p:code" (one query each)."""
    names: dict[str, str] = {}
    if codes:
        for code, name in (
            await session.exec(
                select(Commune.code, Commune.name).where(col(Commune.code).in_(codes))
            )
        ).all():
            names[f"c:{code}"] = name
        for code, name in (
            await session.exec(
                select(Province.code, Province.name).where(col(Province.code).in_(codes))
            )
        ).all():
            names[f"p:{code}"] = name
    return names


def _audience_label(t: Translator, broadcast: Broadcast, names: dict[str, str]) -> str:
    """Who a broadcast is for, in words."""
    if broadcast.audience == "commune":
        return names.get(f"c:{broadcast.audience_code}", str(broadcast.audience_code))
    if broadcast.audience == "province":
        return names.get(f"p:{broadcast.audience_code}", str(broadcast.audience_code))
    if broadcast.audience == "topic" and broadcast.audience_topic in topics():
        topic = topics()[broadcast.audience_topic or ""]
        return t.gettext(_("Subscribers of “{topic}”")).format(topic=topic.title(t.locale))
    return t.gettext(_("Everyone subscribed"))


def _describe(
    t: Translator, reaches: list[BroadcastReach], names: dict[str, str]
) -> list[dict[str, Any]]:
    """Rows for the broadcast tables."""
    return [
        {
            "reach": item,
            "b": item.broadcast,
            "title": _title(item.broadcast, t.locale),
            "audience": _audience_label(t, item.broadcast, names),
            "status": t.gettext(STATUS_LABELS.get(item.broadcast.status, item.broadcast.status)),
        }
        for item in reaches
    ]


def _anchor(request: Request, today: date) -> date:
    """The day the calendar is about (?date=YYYY-MM-DD), today by default."""
    try:
        return date.fromisoformat(request.query_params.get("date", ""))
    except ValueError:
        return today


@route()
async def calendar(request: Request) -> Response:
    """Broadcasts in a month or week, the newest with their reach, subscribers by commune."""
    if (refusal := _not_outreach(request)) is not None:
        return refusal
    console = console_of(request)
    settings = console.services.settings
    quiet = (settings.quiet_start, settings.quiet_end)
    staff, now, tz = _staff(request), console.clock(), console.timezone
    t = translator_for(request)
    today = now.astimezone(ZoneInfo(tz)).date()
    shown = outreach_view.period(request.query_params.get("view", "month"), _anchor(request, today))
    start, end = shown.bounds(tz)
    async with console.services.db.session() as session:
        reaches = await outreach_control.visible_broadcasts(session, staff=staff, limit=200)
        ids = [item.broadcast.id for item in reaches if item.broadcast.id is not None]
        runs = (
            await session.exec(
                select(BroadcastRun.broadcast_id, BroadcastRun.scheduled_for).where(
                    col(BroadcastRun.broadcast_id).in_(ids),
                    col(BroadcastRun.scheduled_for) >= start,
                    col(BroadcastRun.scheduled_for) < end,
                )
            )
        ).all()
        counts = await outreach_control.subscriber_counts(session, staff=staff)
        codes = {item.broadcast.audience_code for item in reaches if item.broadcast.audience_code}
        names = await _place_names(session, codes | {code for code, _n in counts})
    by_id = {item.broadcast.id: item.broadcast for item in reaches}
    events = [outreach_view.CalendarEvent(by_id[b], at, True) for b, at in runs if b in by_id]
    for item in reaches:
        for at in outreach_view.future_times(
            item.broadcast, start=start, end=end, tz=tz, quiet=quiet
        ):
            events.append(outreach_view.CalendarEvent(item.broadcast, at, False))
    rows = _describe(t, reaches, names)
    context = {
        "shown": shown,
        "today": today,
        "days": outreach_view.by_day(events, tz),
        "titles": {row["b"].id: row["title"] for row in rows},
        "rows": rows[:20],
        "weekdays": [t.gettext(label) for label in WEEKDAY_LABELS],
        "month_name": format_date(shown.anchor, "LLLL y", locale=t.locale),
        "previous": shown.step(-1).isoformat(),
        "following": shown.step(1).isoformat(),
        "subscribers": [(names.get(f"c:{code}", str(code)), n) for code, n in counts],
        "subscriber_total": sum(n for _c, n in counts),
    }
    return page(request, "outreach.html", context)


WEEKDAY_LABELS = (_("Mon"), _("Tue"), _("Wed"), _("Thu"), _("Fri"), _("Sat"), _("Sun"))


async def _area_choices(session: Any, staff: Staff) -> tuple[list[Province], list[Any]]:
    """The provinces a staff member may pick, and the communes when the area is one province."""
    area = outreach_control.area_of(staff)
    if area is None:
        return [], []
    commune_code, province_code = area
    if commune_code is not None:
        found = await communes.get_commune(session, commune_code)
        return [], [found] if found else []
    if province_code is not None:
        province = await session.get(Province, province_code)
        listed, _total = await communes.page_communes(session, province_code, page=0, per_page=500)
        return ([province] if province else []), listed
    return await communes.list_provinces(session), []


def _compose_context(
    t: Translator, staff: Staff, form: Any, provinces: list[Province], commune_list: list[Any]
) -> dict[str, Any]:
    """What the compose form needs besides the values typed so far."""
    return {
        "values": form,
        "topics": sorted(
            ((tid, top.title(t.locale)) for tid, top in topics().items()), key=lambda x: x[1]
        ),
        "provinces": provinces,
        "communes": commune_list,
        "country": outreach_control.reaches_country(staff),
        "may_urgent": may(staff, Action.URGENT),
        "weekdays": [t.gettext(label) for label in WEEKDAY_LABELS],
    }


@route()
async def compose(request: Request) -> Response:
    """GET: the compose form; POST: schedule the broadcast (scoped and audited)."""
    if (refusal := _not_outreach(request)) is not None:
        return refusal
    console = console_of(request)
    settings = console.services.settings
    staff, t = _staff(request), translator_for(request)
    form = request.state.form if request.method == "POST" else {}
    error = ""
    if request.method == "POST":
        try:
            spec = outreach_view.spec_from_form(form, tz=console.timezone)
            async with console.services.db.session() as session:
                created = await outreach_control.create_broadcast(
                    session,
                    staff=staff,
                    spec=spec,
                    now=console.clock(),
                    tz=console.timezone,
                    quiet=(settings.quiet_start, settings.quiet_end),
                )
            console.services.wake_outbox()  # and this instance's scheduler, if it leads
            return RedirectResponse(f"{console.root}/outreach/{created.id}", 303)
        except BroadcastError as refused:
            error = refusal_text(t, refused.reason, quiet=_quiet(console))
    async with console.services.db.session() as session:
        provinces, commune_list = await _area_choices(session, staff)
    context = {**_compose_context(t, staff, form, provinces, commune_list), "error": error}
    return page(request, "compose.html", context, status_code=400 if error else 200)


@route()
async def preview(request: Request) -> Response:
    """The broadcast as Telegram and Zalo users will see it, and how many it reaches (htmx)."""
    if (refusal := _not_outreach(request)) is not None:
        return refusal
    console = console_of(request)
    staff, t = _staff(request), translator_for(request)
    context: dict[str, Any] = {"error": "", "count": None}
    try:
        spec = outreach_view.spec_from_form(request.state.form, tz=console.timezone)
        markup, _photo = broadcasts.render_spec(spec, t.locale)
        broadcasts.check_content(spec)
    except BroadcastError as refused:
        context["error"] = refusal_text(t, refused.reason, quiet=_quiet(console))
        return page(request, "preview.html", context)
    context["telegram"] = outreach_view.telegram_preview(markup)
    context["zalo"] = outreach_view.zalo_preview(markup)
    if spec.audience in broadcasts.AUDIENCES:
        async with console.services.db.session() as session:
            mine = await outreach_control.may_target(
                session,
                staff,
                audience=spec.audience,
                audience_code=spec.audience_code,
                urgent=spec.urgent,
            )
            # Counts of places outside the reader's area are not theirs to see.
            if mine:
                context["count"] = await broadcasts.audience_size(session, spec)
        if not mine:
            context["error"] = refusal_text(t, "not_allowed")
    return page(request, "preview.html", context)


def _broadcast_id(request: Request) -> int:
    """The broadcast id of the path."""
    value = request.path_params["broadcast_id"]
    assert isinstance(value, int)
    return value


async def _show_broadcast(request: Request, *, notice: str = "", ok: bool = True) -> Response:
    """One broadcast: content, audience, schedule, delivery progress; `partial=1`: the progress."""
    console = console_of(request)
    staff, t = _staff(request), translator_for(request)
    try:
        async with console.services.db.session() as session:
            found = await outreach_control.visible_reach(
                session, staff=staff, broadcast_id=_broadcast_id(request)
            )
            names = await _place_names(session, {found.broadcast.audience_code or 0})
            sending = bool(
                (
                    await session.exec(
                        select(BroadcastRun.id).where(
                            BroadcastRun.broadcast_id == found.broadcast.id,
                            col(BroadcastRun.status) != broadcasts.RunStatus.DONE,
                        )
                    )
                ).first()
            )
    except BroadcastError:
        return _refused(request, t.gettext(_("That broadcast does not exist.")), 404)
    (row,) = _describe(t, [found], names)
    due = found.broadcast.next_run_at
    # Follow the delivery live while a run is open or about to start (the leader starts a
    # run within seconds of its time; a page opened just before must not miss it).
    live = sending or (due is not None and due <= console.clock() + LIVE_AHEAD)
    markup, _photo = broadcasts.render(found.broadcast, t.locale)
    context = {
        "row": row,
        "b": found.broadcast,
        "reach": found,
        "sending": sending,
        "live": live,
        "done": found.sent + found.failed + found.blocked + found.cancelled + found.refused,
        "telegram": outreach_view.telegram_preview(markup),
        "notice": notice,
        "ok": ok,
    }
    name = "reach.html" if request.query_params.get("partial") == "1" else "broadcast.html"
    return page(request, name, context, status_code=200 if ok else 409)


@route()
async def broadcast_page(request: Request) -> Response:
    """One broadcast with its live delivery progress."""
    if (refusal := _not_outreach(request)) is not None:
        return refusal
    return await _show_broadcast(request)


@route()
async def change_state(request: Request) -> Response:
    """Pause, resume or cancel a broadcast."""
    if (refusal := _not_outreach(request)) is not None:
        return refusal
    console = console_of(request)
    settings = console.services.settings
    t = translator_for(request)
    action = str(request.state.form.get("action", ""))
    if action not in STATE_ACTIONS:
        return await _show_broadcast(request, notice=refusal_text(t, "bad_state"), ok=False)
    try:
        async with console.services.db.session() as session:
            await outreach_control.change_broadcast(
                session,
                staff=_staff(request),
                broadcast_id=_broadcast_id(request),
                action=action,
                now=console.clock(),
                tz=console.timezone,
                quiet=(settings.quiet_start, settings.quiet_end),
            )
    except BroadcastError as refused:
        if refused.reason == "not_found":
            return _refused(request, refusal_text(t, "not_found"), 404)
        notice = refusal_text(t, refused.reason, quiet=_quiet(console))
        return await _show_broadcast(request, notice=notice, ok=False)
    console.services.wake_outbox()  # and this instance's scheduler, if it leads
    done = {
        "pause": _("Broadcast paused."),
        "resume": _("Broadcast resumed."),
        "cancel": _("Broadcast cancelled."),
    }
    return await _show_broadcast(request, notice=t.gettext(done[action]))


# -- pledge campaigns ----------------------------------------------------------------------------


@route()
async def campaigns(request: Request) -> Response:
    """GET: campaigns in the reader's area with their signatures; POST: open one."""
    if (refusal := _not_outreach(request)) is not None:
        return refusal
    console = console_of(request)
    staff, t = _staff(request), translator_for(request)
    error, status = "", 200
    if request.method == "POST":
        form = request.state.form
        place = str(form.get("place", ""))
        commune_code = int(place[2:]) if place.startswith("c:") and place[2:].isdigit() else None
        province_code = int(place[2:]) if place.startswith("p:") and place[2:].isdigit() else None
        try:
            async with console.services.db.session() as session:
                await outreach_control.open_campaign(
                    session,
                    staff=staff,
                    pledge_id=str(form.get("pledge", ""))[:64],
                    commune_code=commune_code,
                    province_code=province_code,
                    now=console.clock(),
                )
            return RedirectResponse(f"{console.root}/campaigns", 303)
        except PledgeError as refused:
            status = 403 if refused.reason == "not_allowed" else 400
            error = t.gettext(
                _("That place is outside your area.")
                if refused.reason == "not_allowed"
                else _("Unknown pledge, commune or campaign.")
            )
    return await _campaign_page(request, error=error, status=status)


async def _campaign_page(request: Request, *, error: str = "", status: int = 200) -> Response:
    """The campaigns page."""
    console = console_of(request)
    staff, t = _staff(request), translator_for(request)
    async with console.services.db.session() as session:
        found = await outreach_control.visible_campaigns(session, staff=staff)
        provinces, commune_list = await _area_choices(session, staff)
        codes = {c.campaign.commune_code or c.campaign.province_code or 0 for c in found}
        names = await _place_names(session, codes)
    templates = pledge_templates()
    rows = [
        {
            "item": item,
            "pledge": templates[item.campaign.pledge_id].title(t.locale)
            if item.campaign.pledge_id in templates
            else item.campaign.pledge_id,
            "place": names.get(f"c:{item.campaign.commune_code}")
            or names.get(f"p:{item.campaign.province_code}")
            or t.gettext(_("The whole country")),
        }
        for item in found
    ]
    area = outreach_control.area_of(staff)
    context = {
        "rows": rows,
        "pledges": sorted(
            ((pid, p.title(t.locale)) for pid, p in templates.items()), key=lambda x: x[1]
        ),
        "country": area == (None, None),
        "provinces": provinces if area and area[0] is None else [],
        "communes": commune_list,
        "error": error,
    }
    return page(request, "campaigns.html", context, status_code=status)


@route()
async def close(request: Request) -> Response:
    """Close a pledge campaign."""
    if (refusal := _not_outreach(request)) is not None:
        return refusal
    console = console_of(request)
    t = translator_for(request)
    campaign_id = request.path_params["campaign_id"]
    try:
        async with console.services.db.session() as session:
            await outreach_control.close_campaign(
                session, staff=_staff(request), campaign_id=campaign_id, now=console.clock()
            )
    except PledgeError:
        return _refused(request, t.gettext(_("Unknown pledge, commune or campaign.")), 404)
    return RedirectResponse(f"{console.root}/campaigns", 303)


@route()
async def commune_options(request: Request) -> Response:
    """The communes of a province in the reader's area, as <option>s (htmx)."""
    if (refusal := _not_outreach(request)) is not None:
        return refusal
    console = console_of(request)
    staff = _staff(request)
    code = request.query_params.get("province", "")
    listed: list[Any] = []
    if code.isdigit() and outreach_control.area_of(staff) is not None:
        province = int(code)
        if allowed(staff, Action.OUTREACH, province_code=province):
            async with console.services.db.session() as session:
                listed, _total = await communes.page_communes(
                    session, province, page=0, per_page=500
                )
    return page(request, "commune_options.html", {"communes": listed})
