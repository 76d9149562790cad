"""What the statistics page counts: tips by category and status over the last days, and a chart.

Counting is done by the database (GROUP BY category and status): the page never loads a tip
row, so it costs the same for ten tips or a province's year, and it shows counts only, never
content. The reader's scope is `authorization.tip_scope`, the same condition as the inbox, so
the figures add up to exactly the tips the reader could open.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import case, func
from sqlalchemy import select as sa_select
from sqlmodel import col
from sqlmodel.ext.asyncio.session import AsyncSession

from bot.content.catalog import categories
from bot.services.authorization import tip_scope
from storage.models import Staff, Tip, TipStatus

DAYS = 30
# The chart's geometry, in SVG user units. The SVG scales to the page's width, and its texts
# with it: narrow enough that labels stay readable on a phone, not huge on a desktop.
CHART_WIDTH = 480
BAR_LENGTH = 400  # the longest bar; what is left of the width holds its number
LABEL_HEIGHT = 20
TOTAL_HEIGHT = 16
VALUABLE_HEIGHT = 10
GAP = 14
TEXT_PAD = 6
MIN_BAR = 2.0  # a count of one must still show as a bar next to a count of thousands


@dataclass(frozen=True)
class CategoryCounts:
    """One category's tips in the period: per status, in all, and how many are valuable."""

    category: str
    by_status: Mapping[str, int]
    total: int
    valuable: int


@dataclass(frozen=True)
class TipCounts:
    """The reader's tips of a period, per category (rows) and per status (columns)."""

    first_day: date  # local calendar days, both included
    last_day: date
    days: int
    statuses: tuple[str, ...]  # the columns: every known status, then any unknown one found
    rows: tuple[CategoryCounts, ...]
    by_status: Mapping[str, int]  # column totals
    valuable: int
    total: int


@dataclass(frozen=True)
class Bar:
    """One category of the chart: where its label and two bars go, and how long they are."""

    category: str
    total: int
    valuable: int
    label_y: float  # baselines of the texts, tops of the bars
    total_y: float
    total_width: float
    total_text: tuple[float, float]  # where the bar's number goes (x, baseline)
    valuable_y: float
    valuable_width: float
    valuable_text: tuple[float, float]


@dataclass(frozen=True)
class Chart:
    """A horizontal bar chart of tips per category, laid out for an SVG viewBox."""

    width: int
    height: int
    bar_length: int
    total_height: int
    valuable_height: int
    bars: tuple[Bar, ...]


def period_start(now: datetime, timezone: str, days: int = DAYS) -> datetime:
    """Local midnight `days - 1` days before today: the period is `days` calendar days."""
    zone = ZoneInfo(timezone)
    today = now.astimezone(zone).date()
    # Combined with the zone, not shifted by hours: a day is a calendar day even across DST.
    return datetime.combine(today - timedelta(days=days - 1), time.min, zone)


async def tip_counts(
    session: AsyncSession, *, staff: Staff, now: datetime, timezone: str, days: int = DAYS
) -> TipCounts:
    """Count the reader's tips received in the last `days` local calendar days, up to `now`."""
    start = period_start(now, timezone, days)
    # SUM(CASE) rather than a second query: one pass over the same rows; IS TRUE leaves out
    # the tips nobody has assessed yet (NULL) as well as those marked not valuable.
    valuable: Any = func.sum(case((col(Tip.valuable).is_(True), 1), else_=0))
    statement: Any = (
        sa_select(col(Tip.category), col(Tip.status), func.count(), valuable)
        .where(tip_scope(staff), col(Tip.created_at) >= start, col(Tip.created_at) <= now)
        .group_by(col(Tip.category), col(Tip.status))
    )
    found = (await session.exec(statement)).all()

    per_category: dict[str, dict[str, int]] = {}
    valuable_of: dict[str, int] = {}
    for category, status, tips, valuable_tips in found:
        per_category.setdefault(category, {})[status] = int(tips)
        valuable_of[category] = valuable_of.get(category, 0) + int(valuable_tips)
    # A status the code does not know (an older or newer deployment's) still gets its column,
    # so the row totals always add up across the table.
    extra = sorted({s for counts in per_category.values() for s in counts} - set(TipStatus.ALL))
    statuses = (*TipStatus.ALL, *extra)
    rows = tuple(
        CategoryCounts(
            category=category,
            by_status={status: counts.get(status, 0) for status in statuses},
            total=sum(counts.values()),
            valuable=valuable_of[category],
        )
        for category, counts in per_category.items()
    )
    columns = {status: sum(row.by_status[status] for row in rows) for status in statuses}
    return TipCounts(
        first_day=start.date(),
        last_day=now.astimezone(ZoneInfo(timezone)).date(),
        days=days,
        statuses=statuses,
        rows=_ordered(rows),
        by_status=columns,
        valuable=sum(row.valuable for row in rows),
        total=sum(columns.values()),
    )


def _ordered(rows: tuple[CategoryCounts, ...]) -> tuple[CategoryCounts, ...]:
    """Most tips first (what a leader looks for); ties in menu order, unknown ids last."""
    menu = {category.id: index for index, category in enumerate(categories())}
    return tuple(
        sorted(rows, key=lambda row: (-row.total, menu.get(row.category, len(menu)), row.category))
    )


def chart(counts: TipCounts) -> Chart:
    """Lay out the bar chart: per category a label line, its total bar and its valuable bar."""
    longest = max((row.total for row in counts.rows), default=0)
    step = LABEL_HEIGHT + TOTAL_HEIGHT + VALUABLE_HEIGHT + GAP
    bars = []
    for index, row in enumerate(counts.rows):
        top = index * step
        total_y, valuable_y = top + LABEL_HEIGHT, top + LABEL_HEIGHT + TOTAL_HEIGHT
        total_width, valuable_width = _length(row.total, longest), _length(row.valuable, longest)
        bars.append(
            Bar(
                category=row.category,
                total=row.total,
                valuable=row.valuable,
                label_y=top + LABEL_HEIGHT - 6,  # a little above its bar
                total_y=total_y,
                total_width=total_width,
                # Numbers just past the bar's end, their baselines near the bar's bottom.
                total_text=(total_width + TEXT_PAD, total_y + TOTAL_HEIGHT - 3),
                valuable_y=valuable_y,
                valuable_width=valuable_width,
                valuable_text=(valuable_width + TEXT_PAD, valuable_y + VALUABLE_HEIGHT - 1),
            )
        )
    return Chart(
        width=CHART_WIDTH,
        height=max(step * len(bars) - GAP, 0),
        bar_length=BAR_LENGTH,
        total_height=TOTAL_HEIGHT,
        valuable_height=VALUABLE_HEIGHT,
        bars=tuple(bars),
    )


def _length(count: int, longest: int) -> float:
    """A bar's length on the common scale (the longest total spans BAR_LENGTH); 0 stays 0."""
    if count <= 0 or longest <= 0:
        return 0.0
    return round(max(MIN_BAR, BAR_LENGTH * count / longest), 1)
