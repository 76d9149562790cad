"""The statistics page: tips per category and status of the reader's scope, last 30 days.

The queries on a real database first (window edges, scope, valuable, unknown categories), then
the page through the real `tinbao serve` with tips sent by citizens through the emulator.
"""

from __future__ import annotations

import io
import re
from collections import Counter
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from itertools import count
from typing import Any

import openpyxl
import pytest
from sqlmodel import col, select

from storage import communes
from storage.db import Database
from storage.models import Commune, Staff, StaffRole, Tip, TipStatus
from tests.conftest import FakeClock
from tests.console.conftest import invite, point_telegram_webhook
from tests.console.support import ConsoleClient
from tests.faults.tipline import KHA_CUU, PHU_THO, Processes, TipLine
from tests.serve.conftest import Instance
from web import stats

pytestmark = pytest.mark.faults  # real processes (the page's tests)

XUAN_LUNG = 8497
TZ = "Asia/Ho_Chi_Minh"
# FakeClock's now: 2026-11-22 03:00 UTC, 10:00 in Hà Nội; the period starts 30 local days back,
# at 00:00 of 24/10/2026 (+07:00), which is 17:00 UTC the day before.
FIRST_MIDNIGHT = datetime(2026, 10, 23, 17, 0, tzinfo=UTC)

_numbers = count(1)


def _staff(role: str, *, commune: int | None = None, province: int | None = None) -> Staff:
    """A staff member as `tip_scope` reads one (the query needs no stored row)."""
    return Staff(
        id=next(_numbers),
        platform_user_id="x",
        display_name="Cán bộ",
        role=role,
        commune_code=commune,
        province_code=province,
    )


async def _add_tips(db: Database, *tips: dict[str, Any]) -> None:
    """Insert tip rows with just what the counts read (and the columns that must be set)."""
    async with db.session() as session:
        for fields in tips:
            number = next(_numbers)
            session.add(
                Tip(
                    short_id=f"T-S{number:05d}",
                    receipt_hash=f"{number:064x}",
                    channel="telegram",
                    text="tin báo thử",
                    **{"category": "drugs", "commune_code": KHA_CUU, **fields},
                )
            )
        await session.commit()


async def _counts(db: Database, staff: Staff, now: datetime) -> stats.TipCounts:
    async with db.session() as session:
        return await stats.tip_counts(session, staff=staff, now=now, timezone=TZ)


def _table(counts: stats.TipCounts) -> dict[str, dict[str, int]]:
    """The counts as plain dicts: category -> status (and total, valuable) -> count."""
    return {
        row.category: {**row.by_status, "total": row.total, "valuable": row.valuable}
        for row in counts.rows
    }


async def _outside_phu_tho(db: Database) -> int:
    """A commune of another province."""
    async with db.session() as session:
        found = await communes.search_communes(session, "hoan kiem")
    return next(c.code for c in found if c.province_code != PHU_THO)


async def test_counts_cover_thirty_local_days_of_the_readers_scope(
    db: Database, clock: FakeClock
) -> None:
    now = clock()
    elsewhere = await _outside_phu_tho(db)
    await _add_tips(
        db,
        # Inside: the first instant of the first day, now itself, and days in between.
        {"created_at": FIRST_MIDNIGHT, "valuable": True},
        {"created_at": now, "status": TipStatus.ACKNOWLEDGED},
        {"created_at": now - timedelta(days=3), "status": TipStatus.CLOSED, "valuable": False},
        {"created_at": now - timedelta(days=10), "category": "theft", "valuable": True},
        {"created_at": now - timedelta(days=11), "category": "retired_id"},
        # Outside: a second before the period, a second after now.
        {"created_at": FIRST_MIDNIGHT - timedelta(seconds=1), "valuable": True},
        {"created_at": now + timedelta(seconds=1)},
        # Another commune of Phú Thọ, and a commune of another province.
        {"created_at": now - timedelta(days=1), "commune_code": XUAN_LUNG},
        {"created_at": now - timedelta(days=2), "commune_code": elsewhere, "valuable": True},
    )
    officer = await _counts(db, _staff(StaffRole.OFFICER, commune=KHA_CUU), now)
    assert (officer.first_day.isoformat(), officer.last_day.isoformat()) == (
        "2026-10-24",
        "2026-11-22",
    )
    assert officer.statuses == TipStatus.ALL
    zero = dict.fromkeys(TipStatus.ALL, 0)
    assert _table(officer) == {
        "drugs": {**zero, "new": 1, "acknowledged": 1, "closed": 1, "total": 3, "valuable": 1},
        "theft": {**zero, "new": 1, "total": 1, "valuable": 1},
        "retired_id": {**zero, "new": 1, "total": 1, "valuable": 0},
    }
    assert [row.category for row in officer.rows] == ["drugs", "theft", "retired_id"], (
        "most tips first, then menu order, unknown ids last"
    )
    assert dict(officer.by_status) == {**zero, "new": 3, "acknowledged": 1, "closed": 1}
    assert (officer.total, officer.valuable) == (5, 2)

    async with db.session() as session:
        xuan_lung = await session.get(Commune, XUAN_LUNG)
    assert xuan_lung is not None and xuan_lung.province_code == PHU_THO
    supervisor = await _counts(db, _staff(StaffRole.SUPERVISOR, province=PHU_THO), now)
    assert (supervisor.total, supervisor.valuable) == (6, 2)
    admin = await _counts(db, _staff(StaffRole.ADMIN), now)
    assert (admin.total, admin.valuable) == (7, 3)
    other = await _counts(db, _staff(StaffRole.OFFICER, commune=XUAN_LUNG), now)
    assert (other.total, _table(other)) == (
        1,
        {"drugs": {**zero, "new": 1, "total": 1, "valuable": 0}},
    )
    outreach = await _counts(db, _staff(StaffRole.OUTREACH), now)
    assert (outreach.total, outreach.rows) == (0, ())

    # A day later the first day has left the period: its tip with it.
    later = await _counts(db, _staff(StaffRole.OFFICER, commune=KHA_CUU), now + timedelta(days=1))
    assert (later.first_day.isoformat(), later.total) == ("2026-10-25", 5), (
        "the first day's tip left, the tip a second after the old now came in"
    )


async def test_an_unknown_status_gets_its_own_column(db: Database, clock: FakeClock) -> None:
    await _add_tips(db, {"created_at": clock(), "status": "archived"})
    found = await _counts(db, _staff(StaffRole.ADMIN), clock())
    assert found.statuses == (*TipStatus.ALL, "archived")
    assert (found.by_status["archived"], found.total) == (1, 1)


def test_the_chart_scales_bars_to_the_longest_total() -> None:
    def row(category: str, total: int, valuable: int) -> stats.CategoryCounts:
        return stats.CategoryCounts(category, {"new": total}, total, valuable)

    rows = (row("drugs", 1000, 1), row("theft", 500, 0))
    counts = stats.TipCounts(
        first_day=FIRST_MIDNIGHT.date(),
        last_day=FIRST_MIDNIGHT.date(),
        days=30,
        statuses=TipStatus.ALL,
        rows=rows,
        by_status={"new": 1500},
        valuable=1,
        total=1500,
    )
    chart = stats.chart(counts)
    drugs, theft = chart.bars
    assert (drugs.total_width, theft.total_width) == (stats.BAR_LENGTH, stats.BAR_LENGTH / 2)
    assert drugs.valuable_width == stats.MIN_BAR, "one valuable tip in a thousand still shows"
    assert theft.valuable_width == 0
    assert theft.total_y > drugs.valuable_y > drugs.total_y > drugs.label_y
    assert chart.height == theft.valuable_y + stats.VALUABLE_HEIGHT
    assert max(bar.total_text[0] for bar in chart.bars) < chart.width
    assert (
        stats.chart(stats.TipCounts(counts.first_day, counts.last_day, 30, (), (), {}, 0, 0)).bars
        == ()
    )


# -- the page, through `tinbao serve` ---------------------------------------------------------

_ROW = re.compile(r'<tr data-category="([^"]*)">(.*?)</tr>', re.S)
_TOTALS = re.compile(r"<tr data-totals>(.*?)</tr>", re.S)
_CELL = re.compile(r'<td data-status="([^"]+)">([^<]*)</td>')


def _cells(html: str) -> dict[str, int]:
    return {key: int(value.strip()) for key, value in _CELL.findall(html)}


def _page_table(html: str) -> dict[str, dict[str, int]]:
    """The page's table: category id -> column -> count."""
    return {category: _cells(cells) for category, cells in _ROW.findall(html)}


@pytest.fixture
async def readers(
    start_serve: Callable[..., Any], processes: Processes
) -> AsyncIterator[tuple[Instance, ConsoleClient, ConsoleClient, ConsoleClient]]:
    """Serve, and three console accounts: Khả Cửu's officer, Xuân Lũng's, and outreach staff."""
    serve: Instance = await start_serve()
    here, there, outreach = (ConsoleClient(serve.url) for _ in range(3))
    await here.open_account(invite(processes, "officer", commune=KHA_CUU), "Cán bộ Một", "canbo1")
    await there.open_account(
        invite(processes, "officer", commune=XUAN_LUNG), "Cán bộ Hai", "canbo2"
    )
    await outreach.open_account(invite(processes, "outreach"), "Tuyên truyền", "tuyentruyen")
    for reader in (here, there, outreach):
        # English, so the test reads the same before and after the Vietnamese is written.
        reader.http.cookies.set("tinbao_lang", "en", path="/console")
    yield serve, here, there, outreach
    for reader in (here, there, outreach):
        await reader.aclose()


async def test_the_page_shows_the_scopes_counts_and_refuses_outreach_staff(
    readers: tuple[Instance, ConsoleClient, ConsoleClient, ConsoleClient],
    tipline: TipLine,
    processes: Processes,
) -> None:
    serve, here, there, outreach = readers
    point_telegram_webhook(processes, serve.url)
    short_ids = await tipline.send_tips(3)
    async with tipline.db.session() as session:
        ids = {
            tip.short_id: tip.id
            for tip in (
                await session.exec(select(Tip).where(col(Tip.short_id).in_(short_ids)))
            ).all()
        }
    # Two statuses and a valuable tip, the way an officer does it.
    first, second = ids[short_ids[0]], ids[short_ids[1]]
    for tip_id, action in ((first, "ack"), (second, "v1")):
        done = await here.post(f"/tips/{tip_id}/action", {"action": action}, csrf_from="/tips")
        assert done.status_code == 200, done.text[:500]

    # What the page must say, counted here from the rows.
    async with tipline.db.session() as session:
        tips = (await session.exec(select(Tip).where(Tip.commune_code == KHA_CUU))).all()
    expected: dict[str, Counter[str]] = {}
    for tip in tips:
        counter = expected.setdefault(tip.category, Counter())
        counter[tip.status] += 1
        counter["total"] += 1
        counter["valuable"] += tip.valuable is True
    assert sum(c["total"] for c in expected.values()) == 3
    assert len({tip.status for tip in tips}) >= 2, "two statuses appear"
    assert sum(c["valuable"] for c in expected.values()) == 1, "the tip marked valuable"

    shown = await here.http.get("/stats")
    assert shown.status_code == 200, shown.text[:500]
    html = shown.text
    table = _page_table(html)
    assert table == {
        category: {status: counter[status] for status in (*TipStatus.ALL, "total", "valuable")}
        for category, counter in expected.items()
    }
    totals = _TOTALS.search(html)
    assert totals and _cells(totals.group(1))["total"] == 3
    assert _cells(totals.group(1))["valuable"] == sum(c["valuable"] for c in expected.values())
    assert "Drugs" in html and "🟢 Being handled" in html, "names and labels translated"
    period = re.search(r">(\d\d/\d\d/\d{4})</time> –\s*<time[^>]*>(\d\d/\d\d/\d{4})</time>", html)
    assert period, "the period, dd/MM/yyyy – dd/MM/yyyy"
    first_day, last_day = (datetime.strptime(d, "%d/%m/%Y") for d in period.groups())
    assert last_day - first_day == timedelta(days=29), "30 calendar days, today included"
    assert '<svg class="chart" role="img"' in html and "<title" in html
    assert 'data-category="drugs"' in html.split("<svg", 1)[1].split("</svg>", 1)[0]
    # The Content-Security-Policy forbids inline styles and scripts: none are used.
    assert "style=" not in html and "<style" not in html
    assert "<script>" not in html and "<script " not in html.split("</head>", 1)[1]
    assert "style-src 'self'" in shown.headers["content-security-policy"]

    elsewhere = await there.http.get("/stats")
    assert elsewhere.status_code == 200
    assert "No tips in this period." in elsewhere.text and "<table" not in elsewhere.text

    refused = await outreach.http.get("/stats")
    assert refused.status_code == 403
    assert "You are not allowed to see the tip statistics." in refused.text
    assert "data-category" not in refused.text

    # The report of the reader's area: the summary on the page, the workbook and the chart.
    summary = re.search(r'<p class="summary" id="report-summary">(.*?)</p>', html, re.S)
    assert summary and "the police of xã Khả Cửu 3 tips, of which 1 were valuable" in summary.group(
        1
    )
    first = re.search(r'name="from" value="([\d-]+)"', html)
    last = re.search(r'name="to" value="([\d-]+)"', html)
    assert first and last
    period = {"from": first.group(1), "to": last.group(1)}
    workbook = await here.http.get("/stats/report.xlsx", params=period)
    assert workbook.status_code == 200, workbook.text[:300]
    assert workbook.headers["content-type"].startswith("application/vnd.openxmlformats")
    assert "attachment" in workbook.headers["content-disposition"]
    book = openpyxl.load_workbook(io.BytesIO(workbook.content))
    figures = {r[0].value: r[1].value for r in book["Summary"].iter_rows() if len(r) > 1}
    assert (figures["Scope"], figures["Tips received"], figures["Valuable"]) == ("Xã Khả Cửu", 3, 1)
    assert figures["Acknowledged"] == 1
    chart = await here.http.get("/stats/report.png", params=period)
    assert chart.status_code == 200 and chart.content.startswith(b"\x89PNG")
    backwards = await here.http.get("/stats/report.xlsx", params={**period, "from": "2030-01-01"})
    assert backwards.status_code == 400
    assert (await here.http.get("/stats/report.csv", params=period)).status_code == 400
    forbidden = await outreach.http.get("/stats/report.xlsx", params=period)
    assert forbidden.status_code == 403 and not forbidden.content.startswith(b"PK")
