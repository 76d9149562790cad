"""Statistics for leaders: one scope (commune, province, country) over a local-date period.

Every figure is an SQL aggregate (COUNT / SUM(CASE ...) / GROUP BY); no tip row is loaded into
Python, only grouped rows (at most one per commune and category). The same statements run on
SQLite and PostgreSQL, except the timings: durations go through `hours_between` (compiled per
dialect) and percentiles are nearest-rank, picked with ROW_NUMBER() and COUNT(*) windows on
SQLite and with percentile_disc in one GROUPING SETS pass on PostgreSQL, which is the same rank,
so both backends return the very same stored value. docs/reports.md says what each figure means
and how it is counted; docs/benchmarks.md ("Reports") why the statements are shaped as they are.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import astuple, dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import Any, Literal
from zoneinfo import ZoneInfo

from sqlalchemy import (
    Float,
    and_,
    case,
    false,
    func,
    literal,
    literal_column,
    or_,
    select,
    true,
    tuple_,
)
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql import ColumnElement
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.functions import FunctionElement
from sqlmodel import col
from sqlmodel.ext.asyncio.session import AsyncSession

from bot.content.catalog import categories
from bot.services.authorization import Action, allowed, may
from bot.services.cards import CLOSE_REASONS
from storage.models import (
    AuditEvent,
    Broadcast,
    BroadcastRun,
    Commune,
    Delivery,
    OutreachSession,
    PledgeSignature,
    Province,
    SessionCheckIn,
    Staff,
    StaffRole,
    Subscriber,
    Tip,
    TipMessage,
)

ScopeKind = Literal["commune", "province", "all"]
# Below this many tips in a group (a commune, a category, the whole scope) timings are withheld:
# with one or two tips a "median" is a particular tip's handling time.
MIN_TIPS_FOR_TIMINGS = 3
# Criminal Procedure Code 2015, art. 147: a tip is settled within 20 days.
ART147_HOURS = 20 * 24
DEFAULT_TIMEZONE = "Asia/Ho_Chi_Minh"


# -- scope and period ------------------------------------------------------------------------


class UnknownScopeError(ValueError):
    """The scope names a commune or province that the reference data does not have."""


@dataclass(frozen=True)
class Scope:
    """Which tips a report covers: one commune, one province, or the whole country."""

    kind: ScopeKind
    code: int | None = None

    def __post_init__(self) -> None:
        """Reject a commune/province scope without a code, or "all" with one."""
        if (self.kind == "all") != (self.code is None) or self.kind not in (
            "commune",
            "province",
            "all",
        ):
            raise ValueError(f"bad report scope: {self.kind} {self.code}")

    @classmethod
    def commune(cls, code: int) -> Scope:
        """One commune."""
        return cls("commune", code)

    @classmethod
    def province(cls, code: int) -> Scope:
        """Every commune of one province."""
        return cls("province", code)

    @classmethod
    def everywhere(cls) -> Scope:
        """The whole country."""
        return cls("all", None)


@dataclass(frozen=True)
class Period:
    """Local calendar days [first, last], both included."""

    first: date
    last: date

    def __post_init__(self) -> None:
        """Reject an empty period."""
        if self.last < self.first:
            raise ValueError("a period ends on or after the day it starts")

    def bounds(self, timezone: str = DEFAULT_TIMEZONE) -> tuple[datetime, datetime]:
        """The period as UTC instants [start, end): local midnight of `first` to after `last`."""
        zone = ZoneInfo(timezone)
        start = datetime.combine(self.first, time(0), zone).astimezone(UTC)
        end = datetime.combine(self.last + timedelta(days=1), time(0), zone).astimezone(UTC)
        return start, end

    def months(self) -> list[date]:
        """The first day of every calendar month the period touches."""
        months: list[date] = []
        current = self.first.replace(day=1)
        while current <= self.last:
            months.append(current)
            current = _next_month(current)
        return months


def _next_month(day: date) -> date:
    """The first day of the month after `day`'s."""
    return date(day.year + day.month // 12, day.month % 12 + 1, 1)


def report_scope(staff: Staff | None) -> Scope | None:
    """The area whose statistics `staff` reads: an officer their commune, a supervisor their
    province, an admin the country; None for anyone else (checked by `allowed` as well)."""
    if not may(staff, Action.REPORT):
        return None
    assert staff is not None
    if staff.role == StaffRole.ADMIN:
        scope = Scope.everywhere()
    elif staff.role == StaffRole.OFFICER and staff.commune_code is not None:
        scope = Scope.commune(staff.commune_code)
    elif staff.role == StaffRole.SUPERVISOR and staff.province_code is not None:
        scope = Scope.province(staff.province_code)
    else:
        return None
    commune = scope.code if scope.kind == "commune" else None
    province = scope.code if scope.kind == "province" else staff.province_code
    return (
        scope
        if allowed(staff, Action.REPORT, commune_code=commune, province_code=province)
        else None
    )


# Words for a period, as typed after /thongke (folded: no diacritics, lower case).
_PERIOD_WORDS = {
    "thang": "month",
    "month": "month",
    "quy": "quarter",
    "quarter": "quarter",
    "nam": "year",
    "year": "year",
}


def parse_period(words: list[str], today: date) -> Period:
    """A period from typed words: none (this month so far), "tháng"/"quý"/"năm" (the current
    one), "tháng 3/2026", "quý 1/2026", "năm 2025", or two days dd/mm/yyyy; ValueError else."""
    from storage.text import fold

    folded = [fold(word) for word in words]
    if not folded:
        return Period(today.replace(day=1), today)
    kind = _PERIOD_WORDS.get(folded[0])
    rest = folded[1:]
    if kind is None and len(folded) == 2:
        first, last = (datetime.strptime(word, "%d/%m/%Y").date() for word in folded)
        return Period(first, last)
    if kind is None or len(rest) > 1:
        raise ValueError("not a period")
    if kind == "year":
        return year_period(int(rest[0]) if rest else today.year)
    if not rest:
        number, year = (today.month if kind == "month" else (today.month + 2) // 3), today.year
    else:
        number_text, _, year_text = rest[0].partition("/")
        number, year = int(number_text), int(year_text or today.year)
    return month_period(year, number) if kind == "month" else quarter_period(year, number)


def month_period(year: int, month: int) -> Period:
    """One calendar month."""
    first = date(year, month, 1)
    return Period(first, _next_month(first) - timedelta(days=1))


def quarter_period(year: int, quarter: int) -> Period:
    """One calendar quarter (1-4)."""
    if not 1 <= quarter <= 4:
        raise ValueError("a quarter is 1 to 4")
    first = date(year, 3 * quarter - 2, 1)
    return Period(first, month_period(year, 3 * quarter).last)


def year_period(year: int) -> Period:
    """One calendar year."""
    return Period(date(year, 1, 1), date(year, 12, 31))


# -- portable SQL ----------------------------------------------------------------------------


class hours_between(FunctionElement[float]):  # noqa: N801 (reads like the SQL function it is)
    """Hours from the first datetime column to the second, as a float, on SQLite and PostgreSQL.

    UTCDateTime stores naive UTC: ISO text on SQLite (julianday parses it), `timestamp` on
    PostgreSQL (EXTRACT(EPOCH ...) of the interval, exact numeric since PG 14). Both are rounded
    to whole milliseconds first: julianday differences carry float noise of tens of
    microseconds, and without the rounding a tip closed exactly 480 hours after it came in could
    read 480.0000001 on SQLite and miss the 20-day clock it met on PostgreSQL. The whole
    milliseconds are then divided in double precision on both, so both give the same float.
    """

    type = Float()
    name = "hours_between"
    inherit_cache = True


@compiles(hours_between, "sqlite")
def _hours_sqlite(element: hours_between, compiler: SQLCompiler, **kw: Any) -> str:
    start, end = (compiler.process(clause, **kw) for clause in element.clauses)
    return f"(ROUND((julianday({end}) - julianday({start})) * 86400000.0) / 3600000.0)"


@compiles(hours_between, "postgresql")
def _hours_postgresql(element: hours_between, compiler: SQLCompiler, **kw: Any) -> str:
    start, end = (compiler.process(clause, **kw) for clause in element.clauses)
    # numeric -> bigint rounds half away from zero, as ROUND does on SQLite; the division is
    # then double, as on SQLite. Dividing in numeric first, as before, was slower and 1 ulp off
    # for 0.6% of the bench's durations (never at the 3 decimals shown, nor at 480 h).
    milliseconds = f"CAST(EXTRACT(EPOCH FROM ({end} - {start})) * 1000 AS BIGINT)"
    return f"(CAST({milliseconds} AS DOUBLE PRECISION) / 3600000.0)"


async def _all(session: AsyncSession, statement: Any) -> list[Any]:
    """Run a select of untyped SQL expressions (sqlmodel types only model selects); its rows."""
    # On the session's connection (its transaction), Core rows without the ORM's loading: 0.3 s
    # less for the country's 40,000 (commune, category) rows.
    connection = await session.connection()
    return list((await connection.execute(statement)).all())


def _count_if(condition: ColumnElement[bool]) -> ColumnElement[int]:
    """SUM(CASE WHEN condition THEN 1 ELSE 0 END), 0 over no rows."""
    return func.coalesce(func.sum(case((condition, 1), else_=0)), 0)


# -- the report ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Timing:
    """Hours to do something: how many tips it was measured on, median and 90th percentile.

    Nearest-rank percentiles: of n durations in ascending order, the p-th percentile is the one at
    rank ceil(p/100 * n); so the median of an even count is the lower middle value. None when no
    tip was measured, or the group has fewer than MIN_TIPS_FOR_TIMINGS tips.
    """

    count: int = 0
    median: float | None = None
    p90: float | None = None


@dataclass(frozen=True)
class TipCounts:
    """Counts of the tips received in the period in one group (all of them, a commune, ...)."""

    received: int = 0
    urgent: int = 0
    valuable: int = 0
    not_valuable: int = 0
    undecided: int = 0
    acknowledged: int = 0
    closed: int = 0
    moved: int = 0
    escalated: int = 0
    ack_missed: int = 0
    close_missed: int = 0
    deadlines_missed: int = 0  # tips with either deadline missed
    art147_met: int = 0


@dataclass(frozen=True)
class GroupRow:
    """One line of a table: a commune (key = code) or a category (key = id)."""

    key: int | str
    name: str
    counts: TipCounts
    to_acknowledge: Timing
    to_close: Timing


@dataclass(frozen=True)
class MonthRow:
    """Tips received in one local calendar month (the part of it inside the period)."""

    month: date
    received: int
    urgent: int
    valuable: int
    acknowledged: int
    closed: int


@dataclass(frozen=True)
class PledgeRow:
    """Signatures of one pledge template in one commune during the period."""

    pledge_id: str
    commune_code: int
    commune_name: str
    signatures: int


@dataclass(frozen=True)
class SessionCounts:
    """Outreach sessions held in the period: how many, QR check-ins, organisers' head counts."""

    held: int = 0
    check_ins: int = 0
    head_counts: int = 0
    pledges: int = 0  # signatures made from a session's QR code

    @property
    def attendance(self) -> int:
        """People who attended: check-ins plus those counted who had no phone to check in."""
        return self.check_ins + self.head_counts


@dataclass(frozen=True)
class Report:
    """Every figure of a report; no tip text, place or anything that identifies a person."""

    scope: Scope
    period: Period
    timezone: str
    generated_at: datetime
    scope_name: str  # "Xã Khả Cửu", "Tỉnh Phú Thọ", "" for the whole country
    scope_unit: str  # as in "Công an {unit}": "xã Khả Cửu", "tỉnh Phú Thọ", ""
    totals: TipCounts
    to_acknowledge: Timing
    to_close: Timing
    by_category: dict[str, int]
    by_channel: dict[str, int]
    closed_by_reason: dict[str, int]
    police_replies: int
    citizen_answers: int
    broadcast_runs: int
    deliveries_sent: int
    people_reached: int
    active_subscribers: int
    pledges: tuple[PledgeRow, ...]
    communes: tuple[GroupRow, ...]
    categories: tuple[GroupRow, ...]
    months: tuple[MonthRow, ...]
    pledge_totals: dict[str, int] = field(default_factory=dict)
    sessions: SessionCounts = field(default_factory=SessionCounts)


@dataclass(frozen=True)
class _Context:
    """What every query of one report shares."""

    scope: Scope
    start: datetime
    end: datetime
    now: datetime
    # The province's commune codes (province scope), loaded with their names before any tip
    # query: a literal IN list lets PostgreSQL walk ix_tip_commune_created for exactly those
    # communes, where a subquery hid them and it walked every tip of the period by date.
    codes: tuple[int, ...] = ()

    def on_commune(self, column: Any) -> ColumnElement[bool]:
        """The scope as a condition on a commune-code column."""
        if self.scope.kind == "commune":
            return column == self.scope.code
        if self.scope.kind == "province":
            return column.in_(self.codes)
        return true()

    def received(self) -> list[ColumnElement[bool]]:
        """Tips received in the period, in scope (by the commune they are in now)."""
        return [
            col(Tip.created_at) >= self.start,
            col(Tip.created_at) < self.end,
            self.on_commune(col(Tip.commune_code)),
        ]


def _count_columns(ctx: _Context) -> list[Any]:
    """The TipCounts aggregates, in field order, over tips."""
    ack, closed = col(Tip.acknowledged_at), col(Tip.closed_at)
    ack_due, close_due = col(Tip.ack_due_at), col(Tip.close_due_at)
    # A deadline is missed when the work was done after it, or is still not done and it passed.
    ack_missed = and_(
        ack_due.is_not(None),
        or_(and_(ack.is_not(None), ack > ack_due), and_(ack.is_(None), ack_due <= ctx.now)),
    )
    close_missed = and_(
        close_due.is_not(None),
        or_(
            and_(closed.is_not(None), closed > close_due),
            and_(closed.is_(None), close_due <= ctx.now),
        ),
    )
    # One uncorrelated set of moved tips (ix_auditevent_move, hashed once) rather than a probe
    # per tip; 'move' inline, not a parameter, so that a generic plan still matches the partial
    # index's predicate.
    moved = col(Tip.id).in_(
        select(col(AuditEvent.tip_id)).where(
            col(AuditEvent.action) == literal_column("'move'"),
            col(AuditEvent.allowed) == true(),
        )
    )
    return [
        func.count(col(Tip.id)),
        _count_if(col(Tip.urgent) == true()),
        _count_if(col(Tip.valuable) == true()),
        _count_if(col(Tip.valuable) == false()),
        _count_if(col(Tip.valuable).is_(None)),
        _count_if(ack.is_not(None)),
        _count_if(closed.is_not(None)),
        _count_if(moved),
        _count_if(col(Tip.escalated_at).is_not(None)),
        _count_if(ack_missed),
        _count_if(close_missed),
        _count_if(or_(ack_missed, close_missed)),
        _count_if(
            and_(closed.is_not(None), hours_between(col(Tip.created_at), closed) <= ART147_HOURS)
        ),
    ]


# The TipCounts fields of one (commune, category) cell, in field order.
_Cell = tuple[int, ...]


def _sum_counts(cells: Iterable[_Cell]) -> TipCounts:
    """Field-wise sum of cells (every TipCounts field counts tips, so groups add up)."""
    # Plain tuples, not TipCounts: the country has 40,000 cells, summed per commune and category.
    return TipCounts(*map(sum, zip(*cells, strict=True)))


async def _counts(session: AsyncSession, ctx: _Context) -> dict[tuple[int, str], _Cell]:
    """The TipCounts fields per (commune, category): one pass, which the scope, category and
    commune figures are summed from."""
    commune, category = col(Tip.commune_code), col(Tip.category)
    statement = (
        select(commune, category, *_count_columns(ctx))
        .where(*ctx.received())
        .group_by(commune, category)
    )
    return {
        (int(row[0]), str(row[1])): tuple(map(int, row[2:]))
        for row in await _all(session, statement)
    }


# A timing's group: ("scope", None), ("category", id) or ("commune", code).
_TimingKey = tuple[str, Any]
_LEVELS: tuple[tuple[str, Any], ...] = (
    ("scope", None),
    ("category", col(Tip.category)),
    ("commune", col(Tip.commune_code)),
)


async def _timings(
    session: AsyncSession, ctx: _Context
) -> tuple[dict[_TimingKey, Timing], dict[_TimingKey, Timing]]:
    """Timings to acknowledge and to close, for the scope and per category and commune."""
    if session.get_bind().dialect.name == "postgresql":
        return await _timings_postgresql(session, ctx)
    ack: dict[_TimingKey, Timing] = {}
    close: dict[_TimingKey, Timing] = {}
    for level, key in _LEVELS:
        for done, found in ((col(Tip.acknowledged_at), ack), (col(Tip.closed_at), close)):
            for grp, timing in (await _ranked_timings(session, ctx, done, key)).items():
                found[(level, grp)] = timing
    return ack, close


def _hours(duration: timedelta) -> float:
    """An interval in hours, rounded to whole milliseconds as `hours_between` rounds it."""
    micro = (duration.days * 86400 + duration.seconds) * 1_000_000 + duration.microseconds
    milliseconds = (abs(micro) + 500) // 1000  # half away from zero, as ROUND(numeric)
    return (milliseconds if micro >= 0 else -milliseconds) / 3_600_000


def _timing(count: int, median: float | None, p90: float | None) -> Timing | None:
    """A Timing shown to 3.6 s; None when no tip of the group was measured."""
    if not count or median is None or p90 is None:
        return None
    return Timing(count, round(median, 3), round(p90, 3))


async def _timings_postgresql(
    session: AsyncSession, ctx: _Context
) -> tuple[dict[_TimingKey, Timing], dict[_TimingKey, Timing]]:
    """`_timings` in one pass: percentile_disc is nearest-rank (the value at rank
    ceil(p * n)), and GROUPING SETS gives the scope, each category and each commune at once."""
    # ceil(0.5 * n) and ceil(0.9 * n) in double precision, as PostgreSQL computes the rank, equal
    # the integer ranks of `_ranked_timings` (checked for every n up to 3,000,000).
    created = col(Tip.created_at)
    inner = (
        select(
            col(Tip.category).label("category"),
            col(Tip.commune_code).label("commune"),
            # Ordered by the exact interval, converted (to milliseconds, then hours) only for
            # the few values picked: the conversion is monotonic, so the picks are the same.
            (col(Tip.acknowledged_at) - created).label("ack"),
            (col(Tip.closed_at) - created).label("close"),
        )
        .where(*ctx.received())
        # OFFSET 0 keeps the subquery a subquery: pulled up, its GROUP BY order made the planner
        # walk ix_tip_category over the whole heap instead of scanning and sorting (4.4 s
        # against 3.0 s for the country's year, docs/benchmarks.md).
        .offset(0)
        .subquery()
    )
    category, commune = inner.c.category, inner.c.commune
    aggregates: list[Any] = []
    for duration in (inner.c.ack, inner.c.close):
        # NULL durations (not acknowledged / not closed yet) are skipped by both aggregates.
        aggregates += [
            func.count(duration),
            func.percentile_disc(literal_column("0.5")).within_group(duration),
            func.percentile_disc(literal_column("0.9")).within_group(duration),
        ]
    statement = select(category, commune, *aggregates).group_by(
        func.grouping_sets(tuple_(), tuple_(category), tuple_(commune))
    )
    ack: dict[_TimingKey, Timing] = {}
    close: dict[_TimingKey, Timing] = {}
    for row in await _all(session, statement):
        # Both columns are NOT NULL, so a NULL names the grouping set the row belongs to.
        if row[0] is not None:
            key: _TimingKey = ("category", row[0])
        elif row[1] is not None:
            key = ("commune", int(row[1]))
        else:
            key = ("scope", None)
        for found, (count, median, p90) in ((ack, row[2:5]), (close, row[5:8])):
            timing = _timing(
                int(count),
                None if median is None else _hours(median),
                None if p90 is None else _hours(p90),
            )
            if timing is not None:
                found[key] = timing
    return ack, close


async def _ranked_timings(
    session: AsyncSession, ctx: _Context, done: Any, key: Any | None
) -> dict[Any, Timing]:
    """Nearest-rank median and p90 of hours from receipt to `done`, per value of `key`: the
    portable form, ROW_NUMBER() and COUNT(*) windows (SQLite)."""
    duration = hours_between(col(Tip.created_at), done).label("hours")
    partition = [key] if key is not None else None
    inner = (
        select(
            (key if key is not None else literal(0)).label("grp"),
            duration,
            func.row_number()
            .over(partition_by=partition, order_by=(duration, col(Tip.id)))
            .label("rn"),
            func.count().over(partition_by=partition).label("n"),
        )
        .where(*ctx.received(), done.is_not(None))
        .subquery()
    )
    # ceil(p * n / 100) in integer arithmetic, the same on both backends.
    rank50 = (inner.c.n * 50 + 99) // 100
    rank90 = (inner.c.n * 90 + 99) // 100
    statement = select(
        inner.c.grp,
        func.max(inner.c.n),
        func.max(case((inner.c.rn == rank50, inner.c.hours))),
        func.max(case((inner.c.rn == rank90, inner.c.hours))),
    ).group_by(inner.c.grp)
    result: dict[Any, Timing] = {}
    for grp, count, median, p90 in await _all(session, statement):
        # Shown to 3.6 s; the millisecond durations above already agree on both backends.
        timing = _timing(int(count), float(median), float(p90))
        if timing is not None:
            result[grp if key is not None else None] = timing
    return result


def _guarded(timing: Timing | None, counts: TipCounts) -> Timing:
    """The timing, without its values when the group is too small to show them."""
    if timing is None:
        return Timing()
    if counts.received < MIN_TIPS_FOR_TIMINGS:
        return Timing(timing.count, None, None)
    return timing


def _group_rows(
    level: str,
    counts: dict[Any, TipCounts],
    names: dict[Any, str],
    ack: dict[_TimingKey, Timing],
    close: dict[_TimingKey, Timing],
) -> list[GroupRow]:
    """Counts and timings per key; every key of `names` gets a row, zeros included."""
    keys = list(names) + sorted(set(counts) - set(names), key=str)
    rows = []
    for item in keys:
        found = counts.get(item, TipCounts())
        rows.append(
            GroupRow(
                key=item,
                name=names.get(item, str(item)),
                counts=found,
                to_acknowledge=_guarded(ack.get((level, item)), found),
                to_close=_guarded(close.get((level, item)), found),
            )
        )
    return rows


def _per(cells: dict[tuple[int, str], _Cell], position: int) -> dict[Any, TipCounts]:
    """The (commune, category) counts summed per commune (position 0) or category (1)."""
    groups: dict[Any, list[_Cell]] = {}
    for key, cell in cells.items():
        groups.setdefault(key[position], []).append(cell)
    return {group: _sum_counts(items) for group, items in groups.items()}


@dataclass(frozen=True)
class _Tallies:
    """Received tips per channel, closed tips per close reason, and the months' rows."""

    by_channel: dict[str, int]
    closed_by_reason: dict[str, int]
    months: list[MonthRow]


async def _tallies(session: AsyncSession, ctx: _Context, period: Period, tz: str) -> _Tallies:
    """Channels, close reasons and months in one pass: GROUP BY (month, channel, reason,
    closed), a few hundred rows at most, summed here (each was a scan of its own)."""
    starts = period.months()
    # The local month: a CASE on the months' UTC bounds, portable and DST-safe.
    edges = [Period(m, m).bounds(tz)[0] for m in starts[1:]]
    index: Any = literal(0)
    if edges:  # CASE needs at least one WHEN: a single-month period has none
        index = case(
            *((col(Tip.created_at) < edge, number) for number, edge in enumerate(edges)),
            else_=len(edges),
        )
    inner = (
        select(
            index.label("month"),
            col(Tip.channel).label("channel"),
            col(Tip.close_reason).label("reason"),
            col(Tip.closed_at).is_not(None).label("closed"),
            col(Tip.urgent).label("urgent"),
            col(Tip.valuable).label("valuable"),
            col(Tip.acknowledged_at).label("ack"),
        )
        .where(*ctx.received())
        .subquery()
    )
    # Grouped in an outer query: PostgreSQL will not match a GROUP BY CASE with bound parameters
    # to the same CASE in the select list.
    keys = (inner.c.month, inner.c.channel, inner.c.reason, inner.c.closed)
    statement = select(
        *keys,
        func.count(),
        _count_if(inner.c.urgent == true()),
        _count_if(inner.c.valuable == true()),
        _count_if(inner.c.ack.is_not(None)),
    ).group_by(*keys)
    channels: dict[str, int] = {}
    reasons: dict[str, int] = {}
    months = [[0] * 5 for _ in starts]
    for month, channel, reason, closed, *values in await _all(session, statement):
        received, urgent, valuable, acknowledged = (int(value) for value in values)
        channels[str(channel)] = channels.get(str(channel), 0) + received
        if closed:
            reasons[str(reason)] = reasons.get(str(reason), 0) + received
        totals = months[int(month)]
        for position, value in enumerate(
            (received, urgent, valuable, acknowledged, received if closed else 0)
        ):
            totals[position] += value
    return _Tallies(
        by_channel=dict(sorted(channels.items())),
        closed_by_reason=dict(sorted(reasons.items())),
        months=[MonthRow(month, *totals) for month, totals in zip(starts, months, strict=True)],
    )


async def _messages(session: AsyncSession, ctx: _Context) -> dict[str, int]:
    """Thread messages written in the period on tips in scope, per author (police/citizen)."""
    statement = (
        select(col(TipMessage.author), func.count())
        .where(col(TipMessage.created_at) >= ctx.start, col(TipMessage.created_at) < ctx.end)
        .group_by(col(TipMessage.author))
    )
    if ctx.scope.kind != "all":
        # The whole country needs no join: tip_id is NOT NULL and a foreign key, so every
        # message has its tip (on the bench's 500,000 messages: 0.4-0.6 s with it, 0.12 s
        # without).
        statement = statement.join(Tip, col(Tip.id) == col(TipMessage.tip_id)).where(
            ctx.on_commune(col(Tip.commune_code))
        )
    return {str(a): int(n) for a, n in await _all(session, statement)}


def _runs_in_scope(ctx: _Context) -> Any:
    """Ids of runs scheduled in the period, with recipients, whose audience is in scope."""
    audience, code = col(Broadcast.audience), col(Broadcast.audience_code)
    if ctx.scope.kind == "commune":
        in_scope: ColumnElement[bool] = and_(audience == "commune", code == ctx.scope.code)
    elif ctx.scope.kind == "province":
        in_scope = or_(
            and_(audience == "province", code == ctx.scope.code),
            and_(audience == "commune", code.in_(ctx.codes)),
        )
    else:
        in_scope = true()
    return (
        select(col(BroadcastRun.id))
        .join(Broadcast, col(Broadcast.id) == col(BroadcastRun.broadcast_id))
        .where(
            col(BroadcastRun.scheduled_for) >= ctx.start,
            col(BroadcastRun.scheduled_for) < ctx.end,
            col(BroadcastRun.planned) > 0,
            in_scope,
        )
    )


async def _outreach(session: AsyncSession, ctx: _Context) -> tuple[int, int, int, int]:
    """Broadcast runs, deliveries sent, distinct people reached, active subscribers now."""
    runs = _runs_in_scope(ctx)
    run_count = (await _all(session, select(func.count()).select_from(runs.subquery())))[0]
    deliveries = select(func.count(), func.count(func.distinct(col(Delivery.subscriber_id))))
    sent = (
        await _all(
            session,
            deliveries.where(col(Delivery.run_id).in_(runs), col(Delivery.status) == "sent"),
        )
    )[0]
    # Runs whose delivery rows retention deleted kept their sent count: their recipients count
    # once per run (who got two of them can no longer be told apart).
    kept = (
        await _all(
            session,
            select(func.coalesce(func.sum(col(BroadcastRun.sent_count)), 0)).where(
                col(BroadcastRun.id).in_(runs), col(BroadcastRun.sent_count).is_not(None)
            ),
        )
    )[0][0]
    if ctx.scope.kind == "province":
        where: ColumnElement[bool] = col(Subscriber.province_code) == ctx.scope.code
    else:
        where = ctx.on_commune(col(Subscriber.commune_code))
    active = select(func.count()).where(
        col(Subscriber.active) == true(), col(Subscriber.created_at) <= ctx.now, where
    )
    subscribers = (await _all(session, active))[0]
    delivered, reached = int(sent[0]) + int(kept), int(sent[1]) + int(kept)
    return int(run_count[0]), delivered, reached, int(subscribers[0])


async def _pledges(session: AsyncSession, ctx: _Context) -> list[tuple[str, int, int]]:
    """Signatures in the period per (pledge template, commune)."""
    pledge, commune = col(PledgeSignature.pledge_id), col(PledgeSignature.commune_code)
    statement = (
        select(pledge, commune, func.count())
        .where(
            col(PledgeSignature.created_at) >= ctx.start,
            col(PledgeSignature.created_at) < ctx.end,
            ctx.on_commune(commune),
        )
        .group_by(pledge, commune)
        .order_by(pledge, commune)
    )
    return [(str(p), int(c), int(n)) for p, c, n in await _all(session, statement)]


async def _sessions(session: AsyncSession, ctx: _Context) -> SessionCounts:
    """Sessions that started in the period in scope (not cancelled) and their attendance."""
    held = (
        select(col(OutreachSession.id))
        .where(
            col(OutreachSession.starts_at) >= ctx.start,
            col(OutreachSession.starts_at) < ctx.end,
            col(OutreachSession.cancelled_at).is_(None),
            ctx.on_commune(col(OutreachSession.commune_code)),
        )
        .subquery()
    )
    ids = select(held.c.id)
    sessions, head_counts = (
        await _all(
            session,
            select(func.count(), func.coalesce(func.sum(col(OutreachSession.head_count)), 0)).where(
                col(OutreachSession.id).in_(ids)
            ),
        )
    )[0]
    check_ins = (
        await _all(session, select(func.count()).where(col(SessionCheckIn.session_id).in_(ids)))
    )[0][0]
    signed = (
        await _all(session, select(func.count()).where(col(PledgeSignature.session_id).in_(ids)))
    )[0][0]
    return SessionCounts(int(sessions), int(check_ins), int(head_counts), int(signed))


async def _names(session: AsyncSession, scope: Scope) -> tuple[dict[int, str], str, str]:
    """Names of the scope's communes (by code), the scope's name and its "unit" wording."""
    statement = select(col(Commune.code), col(Commune.name)).order_by(col(Commune.code))
    if scope.kind == "commune":
        statement = statement.where(col(Commune.code) == scope.code)
    elif scope.kind == "province":
        statement = statement.where(col(Commune.province_code) == scope.code)
    communes = {int(c): str(n) for c, n in await _all(session, statement)}
    if scope.kind == "commune":
        if scope.code not in communes:
            raise UnknownScopeError(f"no commune has code {scope.code}")
        name = communes[int(scope.code)]
        return communes, name, _lower_first(name)
    if scope.kind == "province":
        province = await session.get(Province, scope.code)
        if province is None:
            raise UnknownScopeError(f"no province has code {scope.code}")
        # "Thành phố Hà Nội" carries its type; provinces are stored bare ("Phú Thọ").
        if province.division_type == "tỉnh" and not province.name.startswith("Tỉnh "):
            return communes, f"Tỉnh {province.name}", f"tỉnh {province.name}"
        return communes, province.name, _lower_first(province.name)
    return communes, "", ""


def _lower_first(name: str) -> str:
    """'Xã Khả Cửu' -> 'xã Khả Cửu', as the name reads after "Công an"."""
    return name[:1].lower() + name[1:]


async def build_report(
    session: AsyncSession,
    *,
    scope: Scope,
    period: Period,
    now: datetime,
    timezone: str = DEFAULT_TIMEZONE,
) -> Report:
    """Compute every figure of one report (read-only; the caller owns the session)."""
    start, end = period.bounds(timezone)
    commune_names, scope_name, scope_unit = await _names(session, scope)
    codes = tuple(commune_names) if scope.kind == "province" else ()
    ctx = _Context(scope=scope, start=start, end=end, now=now, codes=codes)
    cells = await _counts(session, ctx)
    by_category = _per(cells, 1)
    totals = _sum_counts(astuple(counts) for counts in by_category.values())
    ack, close = await _timings(session, ctx)
    category_names = {category.id: category.name("vi") for category in categories()}
    category_rows = _group_rows("category", by_category, category_names, ack, close)
    commune_rows = _group_rows("commune", _per(cells, 0), commune_names, ack, close)
    reasons = {reason: 0 for reason in CLOSE_REASONS}
    tallies = await _tallies(session, ctx, period, timezone)
    reasons.update(tallies.closed_by_reason)
    messages = await _messages(session, ctx)
    runs, deliveries, people, subscribers = await _outreach(session, ctx)
    pledges = [
        PledgeRow(pledge_id, code, commune_names.get(code, str(code)), signatures)
        for pledge_id, code, signatures in await _pledges(session, ctx)
    ]
    pledge_totals: dict[str, int] = {}
    for row in pledges:
        pledge_totals[row.pledge_id] = pledge_totals.get(row.pledge_id, 0) + row.signatures
    return Report(
        scope=scope,
        period=period,
        timezone=timezone,
        generated_at=now,
        scope_name=scope_name,
        scope_unit=scope_unit,
        totals=totals,
        to_acknowledge=_guarded(ack.get(("scope", None)), totals),
        to_close=_guarded(close.get(("scope", None)), totals),
        by_category={str(row.key): row.counts.received for row in category_rows},
        by_channel=tallies.by_channel,
        closed_by_reason=reasons,
        police_replies=messages.get("police", 0),
        citizen_answers=messages.get("citizen", 0),
        broadcast_runs=runs,
        deliveries_sent=deliveries,
        people_reached=people,
        active_subscribers=subscribers,
        pledges=tuple(pledges),
        communes=tuple(commune_rows),
        categories=tuple(category_rows),
        months=tuple(tallies.months),
        pledge_totals=pledge_totals,
        sessions=await _sessions(session, ctx),
    )
