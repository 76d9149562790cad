"""A report as an XLSX workbook and as a Vietnamese summary paragraph in the press's style."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

from babel.dates import format_date
from openpyxl import Workbook
from openpyxl.styles import Font
from openpyxl.worksheet.worksheet import Worksheet

from bot.content.catalog import category_by_id
from bot.i18n import Translator, _
from bot.services.cards import CLOSE_REASONS
from bot.services.reports import MIN_TIPS_FOR_TIMINGS, GroupRow, Report, TipCounts

DATE_FORMAT = "dd/mm/yyyy"
DATETIME_FORMAT = "dd/mm/yyyy hh:mm"
MONTH_FORMAT = "mm/yyyy"
HOURS_FORMAT = "0.0"
BOLD = Font(bold=True)

SHEET_SUMMARY = _("Summary")
SHEET_COMMUNES = _("Per commune")
SHEET_CATEGORIES = _("Per category")
SHEET_MONTHS = _("Per month")

RECEIVED = _("Tips received")
URGENT = _("Urgent tips")
VALUABLE = _("Valuable")
ACKNOWLEDGED = _("Acknowledged")
CLOSED = _("Closed")
MISSED = _("Tips with a deadline missed")
MEDIAN_ACK = _("Median hours to acknowledge")
P90_ACK = _("90th percentile hours to acknowledge")
MEDIAN_CLOSE = _("Median hours to close")
P90_CLOSE = _("90th percentile hours to close")


def _pledge_title(pledge_id: str, locale: str) -> str:
    """A pledge template's title, or its id when the library does not know it."""
    try:
        from bot.content.library import pledges

        pledge = pledges().get(pledge_id)
    except Exception:  # a broken content library must not stop a statistics export
        return pledge_id
    return pledge.title(locale) if pledge is not None else pledge_id


def _category_name(key: int | str, locale: str) -> str:
    """A category's name in the locale, its id when unknown."""
    category = category_by_id().get(str(key))
    return category.name(locale) if category else str(key)


def _header(sheet: Worksheet, values: Sequence[str]) -> None:
    """Append a bold header row."""
    sheet.append(list(values))
    for cell in sheet[sheet.max_row]:
        cell.font = BOLD


def _hours_columns(sheet: Worksheet, first: int) -> None:
    """Format the hour columns from `first` (1-based) on as decimal numbers."""
    for row in sheet.iter_rows(min_row=2, min_col=first):
        for cell in row:
            cell.number_format = HOURS_FORMAT


def _summary_sheet(sheet: Worksheet, report: Report, t: Translator) -> None:
    """Label / value rows: the scope, the period, then every figure."""
    g = t.gettext
    sheet.append([g(_("Tip line report"))])
    sheet["A1"].font = BOLD
    sheet.append([g(_("Scope")), report.scope_name or g(_("Whole country"))])
    sheet.append([g(_("From")), report.period.first])
    sheet.append([g(_("To")), report.period.last])
    local = report.generated_at.astimezone(ZoneInfo(report.timezone)).replace(tzinfo=None)
    sheet.append([g(_("Generated at")), local])
    sheet["B3"].number_format = sheet["B4"].number_format = DATE_FORMAT
    sheet["B5"].number_format = DATETIME_FORMAT
    sheet.append([])
    c: TipCounts = report.totals
    rows: list[tuple[str, int | float | None]] = [
        (RECEIVED, c.received),
        (URGENT, c.urgent),
        (VALUABLE, c.valuable),
        (_("Not valuable"), c.not_valuable),
        (_("Not yet assessed"), c.undecided),
        (ACKNOWLEDGED, c.acknowledged),
        (CLOSED, c.closed),
        (_("Settled within 20 days (art. 147)"), c.art147_met),
        (_("Moved to another commune"), c.moved),
        (_("Escalated to the province"), c.escalated),
        (_("Acknowledgement deadline missed"), c.ack_missed),
        (_("Closing deadline missed"), c.close_missed),
        (MISSED, c.deadlines_missed),
        (MEDIAN_ACK, report.to_acknowledge.median),
        (P90_ACK, report.to_acknowledge.p90),
        (MEDIAN_CLOSE, report.to_close.median),
        (P90_CLOSE, report.to_close.p90),
        (_("Police replies"), report.police_replies),
        (_("Citizen answers"), report.citizen_answers),
        (_("Broadcasts sent"), report.broadcast_runs),
        (_("Messages delivered"), report.deliveries_sent),
        (_("People reached"), report.people_reached),
        (_("Active subscribers"), report.active_subscribers),
        (_("Outreach sessions held"), report.sessions.held),
        (_("Check-ins by QR code"), report.sessions.check_ins),
        (_("People counted by organisers"), report.sessions.head_counts),
        (_("Attendance (check-ins and head counts)"), report.sessions.attendance),
        (_("Pledges signed at sessions"), report.sessions.pledges),
        (_("Pledges signed"), sum(report.pledge_totals.values())),
    ]
    for label, value in rows:
        sheet.append([g(label), value])
        if isinstance(value, float):
            sheet.cell(sheet.max_row, 2).number_format = HOURS_FORMAT
    sheet.append([])
    _header(sheet, [g(_("By channel"))])
    for channel, count in sorted(report.by_channel.items()):
        sheet.append([channel, count])
    sheet.append([])
    _header(sheet, [g(_("Closed by reason"))])
    for reason, count in report.closed_by_reason.items():
        reason_label = CLOSE_REASONS.get(reason)
        sheet.append([g(reason_label) if reason_label else reason, count])
    sheet.append([])
    _header(sheet, [g(_("Pledges by template and commune"))])
    for pledge in report.pledges:
        sheet.append(
            [_pledge_title(pledge.pledge_id, t.locale), pledge.commune_name, pledge.signatures]
        )
    sheet.append([])
    sheet.append(
        [
            g(_("Timings are not shown for groups of fewer than {n} tips.")).format(
                n=MIN_TIPS_FOR_TIMINGS
            )
        ]
    )
    sheet.column_dimensions["A"].width = 44
    sheet.column_dimensions["B"].width = 24


def _group_sheet(
    sheet: Worksheet, rows: Sequence[GroupRow], t: Translator, *, communes: bool
) -> None:
    """One row per commune or category: counts, then hours (empty when withheld)."""
    g = t.gettext
    first = [g(_("Code")), g(_("Commune"))] if communes else [g(_("Category"))]
    labels = [RECEIVED, URGENT, VALUABLE, ACKNOWLEDGED, CLOSED, MISSED]
    labels += [MEDIAN_ACK, P90_ACK, MEDIAN_CLOSE, P90_CLOSE]
    _header(sheet, first + [g(label) for label in labels])
    for row in rows:
        c = row.counts
        head: list[int | str] = (
            [row.key, row.name] if communes else [_category_name(row.key, t.locale)]
        )
        sheet.append(
            [
                *head,
                c.received,
                c.urgent,
                c.valuable,
                c.acknowledged,
                c.closed,
                c.deadlines_missed,
                row.to_acknowledge.median,
                row.to_acknowledge.p90,
                row.to_close.median,
                row.to_close.p90,
            ]
        )
    _hours_columns(sheet, len(first) + 7)
    sheet.column_dimensions["A"].width = 10 if communes else 36
    if communes:
        sheet.column_dimensions["B"].width = 30


def _month_sheet(sheet: Worksheet, report: Report, t: Translator) -> None:
    """One row per local calendar month: the month as a date cell, then counts."""
    g = t.gettext
    labels = (RECEIVED, URGENT, VALUABLE, ACKNOWLEDGED, CLOSED)
    _header(sheet, [g(_("Month")), *(g(label) for label in labels)])
    for month in report.months:
        sheet.append(
            [
                month.month,
                month.received,
                month.urgent,
                month.valuable,
                month.acknowledged,
                month.closed,
            ]
        )
        sheet.cell(sheet.max_row, 1).number_format = MONTH_FORMAT


def write_xlsx(report: Report, path: Path | str, translator: Translator) -> Path:
    """Write the report as a workbook: Summary, Per commune, Per category, Per month sheets."""
    t = translator
    book = Workbook()
    summary = book.active
    assert summary is not None
    summary.title = t.gettext(SHEET_SUMMARY)
    _summary_sheet(summary, report, t)
    _group_sheet(book.create_sheet(t.gettext(SHEET_COMMUNES)), report.communes, t, communes=True)
    _group_sheet(
        book.create_sheet(t.gettext(SHEET_CATEGORIES)), report.categories, t, communes=False
    )
    _month_sheet(book.create_sheet(t.gettext(SHEET_MONTHS)), report, t)
    target = Path(path)
    book.save(target)
    return target


def _day(value: date | datetime, t: Translator) -> str:
    """A day as dd/MM/yyyy."""
    return format_date(value, "dd/MM/yyyy", locale=t.locale)


def summary_paragraph(report: Report, translator: Translator) -> str:
    """The report in one paragraph, as communes write it in the press."""
    t = translator
    n = t.number
    values = {
        "first": _day(report.period.first, t),
        "last": _day(report.period.last, t),
        "unit": report.scope_unit,
        "received": n(report.totals.received),
        "valuable": n(report.totals.valuable),
        "closed": n(report.totals.closed),
        "met": n(report.totals.art147_met),
        "broadcasts": n(report.broadcast_runs),
        "people": n(report.people_reached),
        "signatures": n(sum(report.pledge_totals.values())),
        "sessions": n(report.sessions.held),
        "attendance": n(report.sessions.attendance),
    }
    if report.scope_unit:
        template = _(
            "From {first} to {last}, the people gave the police of {unit} {received} tips, "
            "of which {valuable} were valuable; {closed} tips were settled, {met} of them within "
            "20 days; {sessions} outreach sessions were held with {attendance} attendances; "
            "{broadcasts} outreach broadcasts reached {people} people and {signatures} "
            "pledges were signed."
        )
    else:
        template = _(
            "From {first} to {last}, the people gave the police {received} tips, of which "
            "{valuable} were valuable; {closed} tips were settled, {met} of them within 20 days; "
            "{sessions} outreach sessions were held with {attendance} attendances; "
            "{broadcasts} outreach broadcasts reached {people} people and {signatures} pledges "
            "were signed."
        )
    return t.gettext(template).format(**values)
