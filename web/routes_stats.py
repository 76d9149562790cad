"""The statistics page: the reader's tips of the last 30 days by category and status, and the
report of their area (commune, province, country) for any period as XLSX and a PNG chart."""

from __future__ import annotations

import asyncio
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

from babel.dates import format_date
from starlette.requests import Request
from starlette.responses import Response

from bot.content.catalog import category_by_id
from bot.i18n import _
from bot.services.authorization import Action, may
from bot.services.cards import STATUS_LABELS
from bot.services.report_files import chart_bytes, file_stem, workbook_bytes
from bot.services.report_xlsx import summary_paragraph
from bot.services.reports import Period, Report, build_report, report_scope
from storage.models import Staff
from web import stats
from web.guard import console_of, harden, route
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
    month = _this_month(now, console.timezone)
    report = await _report(request, month)
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
        "summary": summary_paragraph(report, t) if report else "",
        "report_from": month.first.isoformat(),
        "report_to": month.last.isoformat(),
    }
    return page(request, "stats.html", context)


# A decade: any period a leader asks for, and a bound on what one request may make the
# database count.
MAX_REPORT_DAYS = 3660
FORMATS = {
    "xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
    "png": "image/png",
}


def _this_month(now: datetime, timezone: str) -> Period:
    """From the first of the current local month to today."""
    today = now.astimezone(ZoneInfo(timezone)).date()
    return Period(today.replace(day=1), today)


async def _report(request: Request, period: Period) -> Report | None:
    """The report of the reader's area for the period, None when they read no statistics."""
    console = console_of(request)
    scope = report_scope(request.state.current.staff)
    if scope is None:
        return None
    async with console.services.db.session() as session:
        return await build_report(
            session, scope=scope, period=period, now=console.clock(), timezone=console.timezone
        )


def _period(request: Request) -> Period | None:
    """The period the form asked for (yyyy-mm-dd, as date inputs send it), None if not valid."""
    try:
        first = date.fromisoformat(request.query_params.get("from", ""))
        last = date.fromisoformat(request.query_params.get("to", ""))
        period = Period(first, last)
    except ValueError:
        return None
    return period if last - first <= timedelta(days=MAX_REPORT_DAYS) else None


@route()
async def report_file(request: Request) -> Response:
    """The report of the reader's area as an XLSX download or a PNG chart; counts only."""
    t = translator_for(request)
    fmt = request.path_params["fmt"]
    period = _period(request)
    if fmt not in FORMATS or period is None:
        message = t.gettext(_("Choose a first and a last day, the last on or after the first."))
        return page(request, "refused.html", {"message": message}, status_code=400)
    report = await _report(request, period)
    if report is None:
        message = t.gettext(_("You are not allowed to see the tip statistics."))
        return page(request, "refused.html", {"message": message}, status_code=403)
    render = workbook_bytes if fmt == "xlsx" else chart_bytes
    body = await asyncio.to_thread(render, report, t)
    response = Response(body, media_type=FORMATS[fmt])
    response.headers["Cache-Control"] = "no-store"
    if fmt == "xlsx":
        response.headers["Content-Disposition"] = f'attachment; filename="{file_stem(report)}.xlsx"'
    return harden(response)
