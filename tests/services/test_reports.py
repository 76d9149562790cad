"""The report service: every figure checked against counts made here from the factory's list."""

from __future__ import annotations

import math
import random
from collections import Counter
from dataclasses import asdict, dataclass, field
from datetime import UTC, date, datetime, timedelta

import pytest

from bot.content.catalog import categories
from bot.services.cards import CLOSE_REASONS
from bot.services.reports import (
    ART147_HOURS,
    Period,
    Scope,
    Timing,
    TipCounts,
    build_report,
    month_period,
    quarter_period,
    year_period,
)
from storage.db import Database
from storage.models import (
    AuditEvent,
    Broadcast,
    BroadcastRun,
    Delivery,
    PledgeCampaign,
    PledgeSignature,
    Subscriber,
    Tip,
    TipMessage,
)
from tests.conftest import FakeClock

# Two communes of Phú Thọ (25) and one of Hà Nội (1), from the reference data.
KHA_CUU, TAN_HOA, BA_DINH = 8635, 4792, 4
PHU_THO, HA_NOI = 25, 1
PROVINCE_OF = {KHA_CUU: PHU_THO, TAN_HOA: PHU_THO, BA_DINH: HA_NOI}
PERIOD = quarter_period(2026, 1)
# Local midnight in Asia/Ho_Chi_Minh (UTC+7) of 01/01/2026 and of 01/04/2026.
START = datetime(2025, 12, 31, 17, 0, tzinfo=UTC)
END = datetime(2026, 3, 31, 17, 0, tzinfo=UTC)
NOW = datetime(2026, 4, 20, 3, 0, tzinfo=UTC)
SECRET = "SECRET-TIP-TEXT Nguyễn Văn A, số 12 ngõ 3"
CHANNELS = ("telegram", "zalo_oa", "zalo_bot")
CATEGORIES = ("drugs", "theft", "fraud", "gambling")


@dataclass
class TipSpec:
    """One tip as the factory writes it; the expected figures are computed from these."""

    commune: int
    created: datetime
    category: str = "drugs"
    channel: str = "telegram"
    urgent: bool = False
    valuable: bool | None = None
    acknowledged: datetime | None = None
    closed: datetime | None = None
    reason: str | None = None
    ack_due: datetime | None = None
    close_due: datetime | None = None
    moved: bool = False
    move_refused: bool = False
    escalated: bool = False
    messages: list[tuple[str, datetime]] = field(default_factory=list)


@dataclass
class RunSpec:
    """A broadcast run and its deliveries (subscriber index, status)."""

    audience: str
    code: int | None
    scheduled: datetime
    deliveries: list[tuple[int, str]]


@dataclass
class SubscriberSpec:
    """A subscriber."""

    commune: int
    active: bool
    created: datetime


@dataclass
class SignatureSpec:
    """A pledge signature."""

    pledge: str
    commune: int
    created: datetime


@dataclass
class World:
    """Everything the factory wrote."""

    tips: list[TipSpec]
    runs: list[RunSpec]
    subscribers: list[SubscriberSpec]
    signatures: list[SignatureSpec]


def _minutes(rng: random.Random, low: int, high: int) -> timedelta:
    """A whole number of minutes, so durations in hours are exact enough to compare."""
    return timedelta(minutes=rng.randint(low, high))


def make_world(seed: int = 12) -> World:
    """Generated tips around the period's edges plus the hand-made cases the rules turn on."""
    rng = random.Random(seed)
    tips: list[TipSpec] = []
    for _ in range(90):
        created = START - timedelta(days=12) + _minutes(rng, 0, 115 * 24 * 60)
        spec = TipSpec(
            commune=rng.choice((KHA_CUU, KHA_CUU, BA_DINH)),
            created=created,
            category=rng.choice(CATEGORIES),
            channel=rng.choice(CHANNELS),
            urgent=rng.random() < 0.2,
            valuable=rng.choice((True, False, None)),
            ack_due=created + timedelta(hours=rng.choice((2, 24))),
            close_due=created + timedelta(days=rng.choice((10, 30))),
            moved=rng.random() < 0.15,
            move_refused=rng.random() < 0.1,
            escalated=rng.random() < 0.15,
        )
        if rng.random() < 0.75:
            spec.acknowledged = created + _minutes(rng, 5, 72 * 60)
            if rng.random() < 0.6:
                spec.closed = spec.acknowledged + _minutes(rng, 60, 40 * 24 * 60)
                spec.reason = rng.choice(tuple(CLOSE_REASONS))
        # Nothing is done after the report's "now": such a tip is still open.
        if spec.closed and spec.closed > NOW:
            spec.closed = spec.reason = None
        if spec.acknowledged and spec.acknowledged > NOW:
            spec.acknowledged = None
        if rng.random() < 0.2:
            spec.ack_due = None  # tips from before deadlines existed
        for _ in range(rng.randint(0, 3)):
            author = rng.choice(("police", "citizen"))
            spec.messages.append((author, created + _minutes(rng, 1, 20 * 24 * 60)))
        tips.append(spec)
    # The period's edges in local time: 23:59:59 on 31/12 is out, 00:00 on 01/01 is in, ...
    tips += [
        TipSpec(KHA_CUU, START - timedelta(seconds=1), valuable=True),
        TipSpec(KHA_CUU, START, valuable=True, acknowledged=START + timedelta(hours=1)),
        TipSpec(KHA_CUU, END - timedelta(seconds=1), channel="zalo_oa", urgent=True),
        TipSpec(KHA_CUU, END, channel="zalo_oa"),
    ]
    # Tân Hòa has exactly two tips in the period, Ba Đình two "weapons" tips: counts, no timings.
    for hours in (3, 5):
        created = datetime(2026, 2, 10, 2, 0, tzinfo=UTC)
        acked = created + timedelta(hours=hours)
        tips.append(TipSpec(TAN_HOA, created, category="theft", acknowledged=acked))
        tips.append(TipSpec(BA_DINH, created, category="weapons", acknowledged=acked))
    # Closed exactly at, and just after, the 20-day clock.
    day = datetime(2026, 2, 1, 1, 0, tzinfo=UTC)
    for extra in (timedelta(0), timedelta(minutes=1)):
        tips.append(
            TipSpec(
                KHA_CUU,
                day,
                acknowledged=day + timedelta(hours=1),
                closed=day + timedelta(hours=ART147_HOURS) + extra,
                reason="done",
            )
        )
    subscribers = [
        SubscriberSpec(rng.choice(tuple(PROVINCE_OF)), rng.random() < 0.8, START) for _ in range(12)
    ]
    subscribers.append(SubscriberSpec(KHA_CUU, True, NOW + timedelta(days=1)))  # after "now"
    in_period = START + timedelta(days=20)
    runs = [
        RunSpec("all", None, in_period, [(0, "sent"), (1, "sent"), (2, "failed")]),
        RunSpec("province", PHU_THO, in_period, [(0, "sent"), (3, "sent"), (4, "blocked")]),
        RunSpec("province", HA_NOI, in_period, [(5, "sent")]),
        RunSpec("commune", KHA_CUU, in_period, [(0, "sent"), (6, "pending"), (7, "sent")]),
        RunSpec("commune", KHA_CUU, START - timedelta(minutes=1), [(0, "sent")]),
        RunSpec("commune", KHA_CUU, END, [(8, "sent")]),
        RunSpec("commune", TAN_HOA, END - timedelta(minutes=1), [(9, "sent")]),
        RunSpec("commune", BA_DINH, START, [(10, "sent"), (11, "sent")]),
        RunSpec("commune", KHA_CUU, in_period + timedelta(days=1), []),  # nobody to send to
    ]
    signatures = [
        SignatureSpec(
            rng.choice(("khong_ma_tuy", "an_toan_giao_thong")),
            rng.choice(tuple(PROVINCE_OF)),
            START - timedelta(days=5) + _minutes(rng, 0, 100 * 24 * 60),
        )
        for _ in range(25)
    ]
    return World(tips, runs, subscribers, signatures)


async def write_world(db: Database, world: World) -> None:
    """Write the world as the app stores it: moves and escalations in the audit log too."""
    async with db.session() as session:
        tips = []
        for number, spec in enumerate(world.tips):
            status = "closed" if spec.closed else "acknowledged" if spec.acknowledged else "new"
            tip = Tip(
                short_id=f"T{number:05d}",
                receipt_hash=f"receipt-{number}",
                channel=spec.channel,
                category=spec.category,
                urgent=spec.urgent,
                commune_code=spec.commune,
                text=SECRET,
                location_lat=21.03,
                location_lon=105.85,
                status=status,
                created_at=spec.created,
                valuable=spec.valuable,
                acknowledged_at=spec.acknowledged,
                closed_at=spec.closed,
                close_reason=spec.reason,
                ack_due_at=spec.ack_due,
                close_due_at=spec.close_due,
                escalated_at=spec.created + timedelta(hours=30) if spec.escalated else None,
            )
            session.add(tip)
            tips.append(tip)
        await session.flush()
        for spec, tip in zip(world.tips, tips, strict=True):
            when = spec.created + timedelta(hours=2)
            if spec.moved:
                session.add(
                    AuditEvent(tip_id=tip.id, actor="A (#1)", action="move", created_at=when)
                )
            if spec.move_refused:
                session.add(
                    AuditEvent(
                        tip_id=tip.id, actor="B", action="move", allowed=False, created_at=when
                    )
                )
            if spec.escalated:
                session.add(
                    AuditEvent(tip_id=tip.id, actor="system", action="esc", created_at=when)
                )
            session.add(AuditEvent(tip_id=tip.id, actor="system", action="route", created_at=when))
            for author, at in spec.messages:
                session.add(
                    TipMessage(tip_id=tip.id or 0, author=author, text=SECRET, created_at=at)
                )
        subscribers = []
        for number, sub in enumerate(world.subscribers):
            row = Subscriber(
                key=f"sub-{number}",
                channel="telegram",
                route=b"sealed",
                commune_code=sub.commune,
                province_code=PROVINCE_OF[sub.commune],
                active=sub.active,
                created_at=sub.created,
            )
            session.add(row)
            subscribers.append(row)
        await session.flush()
        for run_spec in world.runs:
            broadcast = Broadcast(
                audience=run_spec.audience,
                audience_code=run_spec.code,
                trigger="once",
                text="x",
                status="done",
            )
            session.add(broadcast)
            await session.flush()
            run = BroadcastRun(
                broadcast_id=broadcast.id or 0,
                scheduled_for=run_spec.scheduled,
                status="done",
                planned=len(run_spec.deliveries),
            )
            session.add(run)
            await session.flush()
            for index, status in run_spec.deliveries:
                session.add(
                    Delivery(
                        run_id=run.id or 0, subscriber_id=subscribers[index].id or 0, status=status
                    )
                )
        campaigns: dict[str, int] = {}
        for pledge in ("khong_ma_tuy", "an_toan_giao_thong"):
            campaign = PledgeCampaign(pledge_id=pledge)
            session.add(campaign)
            await session.flush()
            campaigns[pledge] = campaign.id or 0
        for number, signature in enumerate(world.signatures):
            session.add(
                PledgeSignature(
                    campaign_id=campaigns[signature.pledge],
                    pledge_id=signature.pledge,
                    commune_code=signature.commune,
                    signer_key=f"signer-{number}",
                    receipt=f"P{number}",
                    created_at=signature.created,
                )
            )
        await session.commit()


# -- the independent count -------------------------------------------------------------------


def in_scope(scope: Scope, commune: int) -> bool:
    """Whether a commune is in a scope."""
    if scope.kind == "commune":
        return commune == scope.code
    if scope.kind == "province":
        return PROVINCE_OF[commune] == scope.code
    return True


def in_period(when: datetime) -> bool:
    """Whether an instant falls in the period's local days."""
    return START <= when < END


def received(world: World, scope: Scope) -> list[TipSpec]:
    """The tips a report on `scope` covers."""
    return [t for t in world.tips if in_scope(scope, t.commune) and in_period(t.created)]


def ack_missed(t: TipSpec) -> bool:
    """Acknowledged after its deadline, or still not and the deadline passed."""
    if t.ack_due is None:
        return False
    return t.acknowledged > t.ack_due if t.acknowledged else t.ack_due <= NOW


def close_missed(t: TipSpec) -> bool:
    """Closed after its deadline, or still open and the deadline passed."""
    if t.close_due is None:
        return False
    return t.closed > t.close_due if t.closed else t.close_due <= NOW


def expected_counts(tips: list[TipSpec]) -> TipCounts:
    """TipCounts made in Python."""
    return TipCounts(
        received=len(tips),
        urgent=sum(t.urgent for t in tips),
        valuable=sum(t.valuable is True for t in tips),
        not_valuable=sum(t.valuable is False for t in tips),
        undecided=sum(t.valuable is None for t in tips),
        acknowledged=sum(t.acknowledged is not None for t in tips),
        closed=sum(t.closed is not None for t in tips),
        moved=sum(t.moved for t in tips),
        escalated=sum(t.escalated for t in tips),
        ack_missed=sum(ack_missed(t) for t in tips),
        close_missed=sum(close_missed(t) for t in tips),
        deadlines_missed=sum(ack_missed(t) or close_missed(t) for t in tips),
        art147_met=sum(
            t.closed is not None and t.closed - t.created <= timedelta(days=20) for t in tips
        ),
    )


def nearest_rank(values: list[float], percent: int) -> float:
    """The value at rank ceil(percent/100 * n) of the sorted values."""
    ordered = sorted(values)
    return ordered[math.ceil(percent * len(ordered) / 100) - 1]


def expected_timing(tips: list[TipSpec], attribute: str) -> Timing:
    """Median and p90 hours from receipt to `attribute`, withheld under three tips."""
    hours = [
        (getattr(t, attribute) - t.created).total_seconds() / 3600
        for t in tips
        if getattr(t, attribute) is not None
    ]
    if not hours:
        return Timing()
    if len(tips) < 3:
        return Timing(len(hours), None, None)
    return Timing(len(hours), nearest_rank(hours, 50), nearest_rank(hours, 90))


def assert_timing(actual: Timing, expected: Timing) -> None:
    """Timings equal to the 3.6-second rounding the report applies."""
    assert actual.count == expected.count
    for got, want in ((actual.median, expected.median), (actual.p90, expected.p90)):
        assert (got is None) == (want is None), (actual, expected)
        if want is not None:
            assert got == pytest.approx(want, abs=1e-3)


def run_in_scope(scope: Scope, run: RunSpec) -> bool:
    """A run counts for a scope when its audience lies inside the scope."""
    if scope.kind == "all":
        return True
    if run.audience == "commune":
        return in_scope(scope, run.code or 0)
    return scope.kind == "province" and run.audience == "province" and run.code == scope.code


SCOPES = [Scope.commune(KHA_CUU), Scope.province(PHU_THO), Scope.everywhere()]


@pytest.mark.parametrize("scope", SCOPES, ids=lambda s: s.kind)
async def test_every_figure_matches_an_independent_count(
    db: Database, clock: FakeClock, scope: Scope
) -> None:
    world = make_world()
    await write_world(db, world)
    clock.now = NOW
    async with db.session() as session:
        report = await build_report(session, scope=scope, period=PERIOD, now=clock())
    tips = received(world, scope)
    assert len(tips) > 20  # the generated data really exercises the queries

    assert asdict(report.totals) == asdict(expected_counts(tips))
    assert_timing(report.to_acknowledge, expected_timing(tips, "acknowledged"))
    assert_timing(report.to_close, expected_timing(tips, "closed"))
    by_category = Counter(t.category for t in tips)
    assert report.by_category == {c.id: by_category.get(c.id, 0) for c in categories()}
    assert report.by_channel == dict(Counter(t.channel for t in tips))
    reasons = Counter(t.reason for t in tips if t.closed)
    assert report.closed_by_reason == {r: reasons.get(r, 0) for r in CLOSE_REASONS}

    messages = Counter(
        author
        for t in world.tips
        if in_scope(scope, t.commune)
        for author, at in t.messages
        if in_period(at)
    )
    assert (report.police_replies, report.citizen_answers) == (
        messages["police"],
        messages["citizen"],
    )

    runs = [
        r for r in world.runs if in_period(r.scheduled) and r.deliveries and run_in_scope(scope, r)
    ]
    sent = [index for r in runs for index, status in r.deliveries if status == "sent"]
    assert (report.broadcast_runs, report.deliveries_sent, report.people_reached) == (
        len(runs),
        len(sent),
        len(set(sent)),
    )
    assert report.active_subscribers == sum(
        s.active and s.created <= NOW and in_scope(scope, s.commune) for s in world.subscribers
    )
    signatures = Counter(
        (s.pledge, s.commune)
        for s in world.signatures
        if in_period(s.created) and in_scope(scope, s.commune)
    )
    assert {(p.pledge_id, p.commune_code): p.signatures for p in report.pledges} == signatures
    assert sum(report.pledge_totals.values()) == sum(signatures.values())

    # Per commune: every commune of the scope gets a row, zeros included.
    communes = {row.key: row for row in report.communes}
    if scope.kind == "commune":
        assert list(communes) == [KHA_CUU]
    elif scope.kind == "province":
        assert KHA_CUU in communes and TAN_HOA in communes and BA_DINH not in communes
    else:
        assert len(communes) == 3321
    for code, row in communes.items():
        group = [t for t in tips if t.commune == code]
        assert asdict(row.counts) == asdict(expected_counts(group)), code
        assert_timing(row.to_acknowledge, expected_timing(group, "acknowledged"))
        assert_timing(row.to_close, expected_timing(group, "closed"))
    for row in report.categories:
        group = [t for t in tips if t.category == row.key]
        assert asdict(row.counts) == asdict(expected_counts(group)), row.key
        assert_timing(row.to_acknowledge, expected_timing(group, "acknowledged"))
        assert_timing(row.to_close, expected_timing(group, "closed"))

    local = [(t, (t.created + timedelta(hours=7)).date().replace(day=1)) for t in tips]
    assert [m.month for m in report.months] == [
        date(2026, 1, 1),
        date(2026, 2, 1),
        date(2026, 3, 1),
    ]
    for month in report.months:
        group = [t for t, first in local if first == month.month]
        counts = expected_counts(group)
        assert (month.received, month.urgent, month.valuable) == (
            counts.received,
            counts.urgent,
            counts.valuable,
        )
        assert (month.acknowledged, month.closed) == (counts.acknowledged, counts.closed)

    # Nothing that identifies anyone: no tip text, no place, no receipt.
    assert "SECRET" not in repr(report) and "21.03" not in repr(report)
    assert "receipt-" not in repr(report) and "T0000" not in repr(report)


async def test_edges_small_groups_and_the_20_day_clock(db: Database, clock: FakeClock) -> None:
    world = make_world()
    await write_world(db, world)
    async with db.session() as session:
        report = await build_report(session, scope=Scope.province(PHU_THO), period=PERIOD, now=NOW)
        hanoi = await build_report(session, scope=Scope.province(HA_NOI), period=PERIOD, now=NOW)
    tan_hoa = next(row for row in report.communes if row.key == TAN_HOA)
    # Two tips: both counted and acknowledged, the timing measured on 2 but not shown.
    assert (tan_hoa.counts.received, tan_hoa.counts.acknowledged) == (2, 2)
    assert tan_hoa.to_acknowledge == Timing(2, None, None)
    assert tan_hoa.name == "Phường Tân Hòa"
    weapons = next(row for row in hanoi.categories if row.key == "weapons")
    assert weapons.counts.received == 2 and weapons.to_acknowledge == Timing(2, None, None)
    assert report.scope_name == "Tỉnh Phú Thọ" and report.scope_unit == "tỉnh Phú Thọ"
    assert hanoi.scope_name == "Thành phố Hà Nội" and hanoi.scope_unit == "thành phố Hà Nội"
    # The two edge tips inside the period are in; the two outside are not (a single-day view).
    async with db.session() as session:
        first_day = await build_report(
            session,
            scope=Scope.commune(KHA_CUU),
            period=Period(PERIOD.first, PERIOD.first),
            now=NOW,
        )
        last_day = await build_report(
            session, scope=Scope.commune(KHA_CUU), period=Period(PERIOD.last, PERIOD.last), now=NOW
        )
    assert first_day.scope_unit == "xã Khả Cửu"
    first_expected = [
        t
        for t in world.tips
        if t.commune == KHA_CUU and START <= t.created < START + timedelta(days=1)
    ]
    last_expected = [
        t for t in world.tips if t.commune == KHA_CUU and END - timedelta(days=1) <= t.created < END
    ]
    assert first_day.totals.received == len(first_expected) >= 1
    assert last_day.totals.received == len(last_expected) >= 1
    # Closed at exactly 480 hours meets art. 147; one minute later does not.
    day = datetime(2026, 2, 1, 1, 0, tzinfo=UTC)
    clock_tips = [t for t in world.tips if t.created == day]
    assert [(t.closed or NOW) - t.created <= timedelta(days=20) for t in clock_tips] == [
        True,
        False,
    ]
    async with db.session() as session:
        that_day = await build_report(
            session, scope=Scope.commune(KHA_CUU), period=Period(day.date(), day.date()), now=NOW
        )
    local_day = [
        t
        for t in world.tips
        if t.commune == KHA_CUU and (t.created + timedelta(hours=7)).date() == day.date()
    ]
    assert that_day.totals == expected_counts(local_day)
    assert that_day.totals.art147_met >= 1 and that_day.totals.closed >= 2


@pytest.mark.parametrize(
    ("hours", "median", "p90"),
    [
        ([4, 1, 3, 2], 2, 4),  # even count: the lower middle value (rank ceil(0.5 * 4) = 2)
        (list(range(1, 11)), 5, 9),  # ranks 5 and 9 of 10
        ([7, 7, 1], 7, 7),
        ([5, 1, 9, 3, 7], 5, 9),
    ],
)
async def test_percentiles_are_nearest_rank(
    db: Database, hours: list[int], median: float, p90: float
) -> None:
    created = datetime(2026, 3, 1, 1, 0, tzinfo=UTC)
    tips = [
        TipSpec(KHA_CUU, created, acknowledged=created + timedelta(hours=h), closed=None)
        for h in hours
    ]
    await write_world(db, World(tips, [], [], []))
    async with db.session() as session:
        report = await build_report(session, scope=Scope.commune(KHA_CUU), period=PERIOD, now=NOW)
    assert report.to_acknowledge == Timing(len(hours), median, p90)
    assert report.to_close == Timing()


def test_period_helpers() -> None:
    assert month_period(2026, 2) == Period(date(2026, 2, 1), date(2026, 2, 28))
    assert month_period(2026, 12) == Period(date(2026, 12, 1), date(2026, 12, 31))
    assert quarter_period(2026, 1) == Period(date(2026, 1, 1), date(2026, 3, 31))
    assert quarter_period(2026, 4) == Period(date(2026, 10, 1), date(2026, 12, 31))
    assert year_period(2026) == Period(date(2026, 1, 1), date(2026, 12, 31))
    assert PERIOD.bounds() == (START, END)
    assert year_period(2026).months()[-1] == date(2026, 12, 1)
    with pytest.raises(ValueError):
        Period(date(2026, 2, 1), date(2026, 1, 31))
    with pytest.raises(ValueError):
        Scope("commune", None)
    with pytest.raises(ValueError):
        Scope("all", 5)
