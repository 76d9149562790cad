"""A report as one PNG chart: tips per month (received, valuable) and tips per category.

Drawn on a bare `Figure` with the Agg canvas, never pyplot: pyplot keeps a global list of open
figures and picks a GUI backend, neither of which belongs in a server.
"""

from __future__ import annotations

import threading
from pathlib import Path

import matplotlib
from babel.dates import format_date
from matplotlib.axes import Axes
from matplotlib.axis import Axis
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter, MaxNLocator

from bot.content.catalog import category_by_id
from bot.i18n import Translator, _
from bot.services.reports import Report

WIDTH_PX, HEIGHT_PX, DPI = 1600, 1000, 100
# Bundled with matplotlib and covers every Vietnamese letter (ầ, ữ, ỵ ...); a font picked from
# the system could miss the stacked diacritics and draw empty boxes.
FONT = "DejaVu Sans"
RECEIVED_COLOUR = "#1f5fa8"
VALUABLE_COLOUR = "#e08a1e"

TITLE = _("Tip line report")
PERIOD_LINE = _("{scope}, from {first} to {last}")
WHOLE_COUNTRY = _("Whole country")
PER_MONTH = _("Tips per month")
PER_CATEGORY = _("Tips per category")
RECEIVED = _("Tips received")
VALUABLE = _("Valuable tips")
MONTH = _("Month")
TIPS = _("Tips")
NO_TIPS = _("No tips in this period.")

# rcParams are process-wide: one chart at a time, so two threads' rc_context blocks cannot
# interleave and restore each other's settings mid-drawing.
_RC_LOCK = threading.Lock()


def _category_name(key: int | str, locale: str) -> str:
    """A category's name in the locale, its id when unknown (as in the workbook)."""
    category = category_by_id().get(str(key))
    return category.name(locale) if category else str(key)


def _integer_axis(axis: Axis, t: Translator) -> None:
    """Whole-number ticks written the locale's way (vi: 1.234): counts have no halves."""
    axis.set_major_locator(MaxNLocator(integer=True))
    axis.set_major_formatter(FuncFormatter(lambda value, _pos: t.number(int(value))))


def _empty_note(ax: Axes, t: Translator) -> None:
    """Say so in the panel when the period has no tips, rather than leave it blank."""
    ax.text(
        0.5,
        0.5,
        t.gettext(NO_TIPS),
        transform=ax.transAxes,
        ha="center",
        va="center",
        fontsize=14,
        color="#666666",
    )


def _months_panel(ax: Axes, report: Report, t: Translator) -> None:
    """Grouped bars per local month: tips received and valuable tips."""
    months = report.months
    positions = list(range(len(months)))
    width = 0.4
    received = [row.received for row in months]
    valuable = [row.valuable for row in months]
    left = ax.bar([p - width / 2 for p in positions], received, width, color=RECEIVED_COLOUR)
    right = ax.bar([p + width / 2 for p in positions], valuable, width, color=VALUABLE_COLOUR)
    left.set_label(t.gettext(RECEIVED))
    right.set_label(t.gettext(VALUABLE))
    ax.bar_label(left, labels=[t.number(v) if v else "" for v in received], padding=2)
    ax.bar_label(right, labels=[t.number(v) if v else "" for v in valuable], padding=2)
    ax.set_xticks(positions)
    # More than a quarter of "MM/yyyy" labels overlap written flat in half the figure's width.
    slanted = len(months) > 6
    ax.set_xticklabels(
        [format_date(row.month, "MM/yyyy", locale=t.locale) for row in months],
        rotation=45 if slanted else 0,
        ha="right" if slanted else "center",
        rotation_mode="anchor",
    )
    ax.set_title(t.gettext(PER_MONTH), fontsize=15)
    ax.set_xlabel(t.gettext(MONTH))
    ax.set_ylabel(t.gettext(TIPS))
    _integer_axis(ax.yaxis, t)
    top = max([*received, 0])
    # Headroom for the value labels; an empty period still gets a 0..1 axis, not a flat line.
    ax.set_ylim(0, max(1, top * 1.12))
    ax.legend(loc="upper left")
    ax.grid(axis="y", alpha=0.3)
    ax.set_axisbelow(True)
    if report.totals.received == 0:
        _empty_note(ax, t)


def _categories_panel(ax: Axes, report: Report, t: Translator) -> None:
    """Horizontal bars per category, the largest on top; categories with no tips included."""
    rows = sorted(report.categories, key=lambda row: -row.counts.received)
    names = [_category_name(row.key, t.locale) for row in rows]
    counts = [row.counts.received for row in rows]
    positions = list(range(len(rows)))
    bars = ax.barh(positions, counts, color=RECEIVED_COLOUR)
    ax.bar_label(bars, labels=[t.number(v) for v in counts], padding=3)
    ax.set_yticks(positions)
    ax.set_yticklabels(names)
    ax.invert_yaxis()
    ax.set_title(t.gettext(PER_CATEGORY), fontsize=15)
    ax.set_xlabel(t.gettext(TIPS))
    _integer_axis(ax.xaxis, t)
    ax.set_xlim(0, max(1, max([*counts, 0]) * 1.15))
    ax.grid(axis="x", alpha=0.3)
    ax.set_axisbelow(True)
    if report.totals.received == 0:
        _empty_note(ax, t)


def render_chart(report: Report, translator: Translator) -> Figure:
    """The report's chart as a Figure (Agg canvas attached), WIDTH_PX x HEIGHT_PX at DPI."""
    t = translator
    figure = Figure(figsize=(WIDTH_PX / DPI, HEIGHT_PX / DPI), dpi=DPI, layout="constrained")
    FigureCanvasAgg(figure)
    left, right = figure.subplots(1, 2, width_ratios=[1.15, 1])
    _months_panel(left, report, t)
    _categories_panel(right, report, t)
    period = t.gettext(PERIOD_LINE).format(
        scope=report.scope_name or t.gettext(WHOLE_COUNTRY),
        first=format_date(report.period.first, "dd/MM/yyyy", locale=t.locale),
        last=format_date(report.period.last, "dd/MM/yyyy", locale=t.locale),
    )
    figure.suptitle(f"{t.gettext(TITLE)}\n{period}", fontsize=18, fontweight="bold")
    return figure


def write_chart(report: Report, path: Path | str, translator: Translator) -> Path:
    """Write the report's chart as a PNG of exactly WIDTH_PX x HEIGHT_PX pixels."""
    target = Path(path)
    with _RC_LOCK, matplotlib.rc_context({"font.family": FONT}):
        # Built inside the context: texts take their font when created and when drawn.
        figure = render_chart(report, translator)
        # No bbox_inches="tight": it would crop the canvas and change the size in pixels.
        figure.savefig(target, format="png", dpi=DPI)
    return target
