"""The statistics page: the reader's tips of the last 30 days by category and status."""

from __future__ import annotations

from babel.dates import format_date
from starlette.requests import Request
from starlette.responses import Response

from bot.content.catalog import category_by_id
from bot.i18n import _
from bot.services.authorization import Action, may
from bot.services.cards import STATUS_LABELS
from storage.models import Staff
from web import stats
from web.guard import console_of, route
from web.render import page, translator_for


@route()
async def stats_page(request: Request) -> Response:
    """Counts per category and status for the reader's scope, as a table and a bar chart."""
    console = console_of(request)
    staff = request.state.current.staff
    assert isinstance(staff, Staff)
    t = translator_for(request)
    if not may(staff, Action.TIP):
        # Outreach staff handle no tip, so they count none. Nothing of a tip is shown, so
        # unlike a refused tip this needs no audit row.
        message = t.gettext(_("You are not allowed to see the tip statistics."))
        return page(request, "refused.html", {"message": message}, status_code=403)
    now = console.clock()
    async with console.services.db.session() as session:
        counts = await stats.tip_counts(session, staff=staff, now=now, timezone=console.timezone)
    known = category_by_id()
    context = {
        "counts": counts,
        "chart": stats.chart(counts),
        # An id no longer in the catalog is shown as stored: the count must not vanish.
        "names": {
            row.category: known[row.category].name(t.locale)
            if row.category in known
            else row.category
            for row in counts.rows
        },
        "statuses": {
            status: t.gettext(STATUS_LABELS[status]) if status in STATUS_LABELS else status
            for status in counts.statuses
        },
        "first_day": format_date(counts.first_day, "dd/MM/yyyy", locale=t.locale),
        "last_day": format_date(counts.last_day, "dd/MM/yyyy", locale=t.locale),
    }
    return page(request, "stats.html", context)
