"""Outreach sessions in the browser: the area's sessions with their figures, creating one,
recording the organiser's head count, cancelling.

Every page checks `may(staff, SESSION)`; creating, counting and cancelling go through
`outreach_sessions`, which checks the commune with `authorization.allowed` and audits.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from bot.content.library import pledges as pledge_templates
from bot.content.library import topics
from bot.i18n import _
from bot.services import outreach_sessions, pledges
from bot.services.authorization import Action, may
from bot.services.session_flow import check_in_words, session_refusal
from storage import communes
from storage.models import Staff
from web.guard import console_of, route
from web.render import page, translator_for
from web.routes_outreach import _area_choices


def _staff(request: Request) -> Staff:
    """The reader, as a staff member."""
    staff = request.state.current.staff
    assert isinstance(staff, Staff)
    return staff


def _refused(request: Request, message: str, status_code: int = 403) -> Response:
    """A refusal page in the reader's language."""
    return page(request, "refused.html", {"message": message}, status_code=status_code)


def _not_allowed(request: Request) -> Response | None:
    """A 403 page for staff who hold no sessions, else None."""
    if may(_staff(request), Action.SESSION):
        return None
    t = translator_for(request)
    return _refused(request, t.gettext(_("Only enrolled police and outreach staff can do this.")))


def _number(text: str) -> int | None:
    """A non-negative whole number typed in a form, None when empty or not one."""
    text = text.strip()
    return int(text[:7]) if text.isdigit() else None


async def _create(request: Request, form: Any) -> Response | str:
    """Create the session the form describes: a redirect, or the refusal in words."""
    console = console_of(request)
    t = translator_for(request)
    try:
        local = datetime.fromisoformat(str(form.get("starts_at", "")))
        starts_at = local.replace(tzinfo=ZoneInfo(console.timezone))
        commune = _number(str(form.get("commune", "")))
        if commune is None:
            raise ValueError("no commune")
    except ValueError:
        return session_refusal(t, "bad_value")
    topic = str(form.get("topic", ""))
    title = str(form.get("title", "")).strip() or (
        topics()[topic].title(t.locale) if topic in topics() else ""
    )
    try:
        async with console.services.db.session() as session:
            await outreach_sessions.create_session(
                session,
                staff=_staff(request),
                commune_code=commune,
                place=str(form.get("place", "")),
                title=title,
                starts_at=starts_at,
                organiser=str(form.get("organiser", "")),
                now=console.clock(),
                topic_ids=[topic] if topic in topics() else [],
                expected_attendance=_number(str(form.get("expected", ""))),
                campaign_id=_number(str(form.get("campaign", ""))),
            )
    except outreach_sessions.SessionError as error:
        return session_refusal(t, error.reason)
    return RedirectResponse(f"{console.root}/sessions", 303)


@route()
async def sessions_page(request: Request) -> Response:
    """GET: the area's sessions with their figures and the creation form; POST: create one."""
    if (refusal := _not_allowed(request)) is not None:
        return refusal
    console = console_of(request)
    staff, t = _staff(request), translator_for(request)
    error = ""
    form: Any = request.state.form if request.method == "POST" else {}
    if request.method == "POST":
        created = await _create(request, form)
        if isinstance(created, Response):
            return created
        error = created
    async with console.services.db.session() as session:
        found = await outreach_sessions.visible_sessions(session, staff=staff, limit=50)
        rows = [await outreach_sessions.summary(session, item) for item in found]
        names = {
            item.commune_code: (await communes.get_commune(session, item.commune_code))
            for item in found
        }
        if staff.commune_code is not None:
            own = await communes.get_commune(session, staff.commune_code)
            provinces: list[Any] = []
            commune_list: list[Any] = [own] if own else []
        else:
            provinces, commune_list = await _area_choices(session, staff)
        campaigns = await pledges.open_campaigns(session)
    templates = pledge_templates()
    context = {
        "rows": rows,
        "names": {code: c.label if c else str(code) for code, c in names.items()},
        "provinces": provinces if not commune_list else [],
        "communes": commune_list,
        "topics": sorted(((k, v.title(t.locale)) for k, v in topics().items()), key=lambda x: x[1]),
        "campaigns": [
            (c.id, templates[c.pledge_id].title(t.locale))
            for c in campaigns
            if c.pledge_id in templates
        ],
        "words": {row.outreach.id: check_in_words(t, row.outreach.id or 0) for row in rows},
        "values": form,
        "error": error,
        "organiser": staff.display_name,
    }
    return page(request, "outreach_sessions.html", context, status_code=400 if error else 200)


@route()
async def session_change(request: Request) -> Response:
    """Record the head count of a session, or cancel it."""
    if (refusal := _not_allowed(request)) is not None:
        return refusal
    console = console_of(request)
    t = translator_for(request)
    session_id = request.path_params["session_id"]
    form = request.state.form
    try:
        async with console.services.db.session() as session:
            if str(form.get("action")) == "cancel":
                await outreach_sessions.cancel_session(
                    session, staff=_staff(request), session_id=session_id, now=console.clock()
                )
            else:
                count = _number(str(form.get("head_count", "")))
                if count is None:
                    raise outreach_sessions.SessionError("bad_value")
                await outreach_sessions.record_head_count(
                    session,
                    staff=_staff(request),
                    session_id=session_id,
                    count=count,
                    now=console.clock(),
                )
    except outreach_sessions.SessionError as error:
        status = 404 if error.reason == "unknown_session" else 400
        return _refused(request, session_refusal(t, error.reason), status)
    return RedirectResponse(f"{console.root}/sessions", 303)
