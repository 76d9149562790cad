"""`tinbao report`: the workbook read back cell by cell, and the printed summary paragraph."""

from __future__ import annotations

import asyncio
from datetime import datetime
from pathlib import Path
from typing import Any

import openpyxl
import pytest
from typer.testing import CliRunner

from bot.services.reports import Scope
from storage.db import Database
from tests.services.test_reports import (
    KHA_CUU,
    World,
    expected_counts,
    in_period,
    make_world,
    received,
    run_in_scope,
    write_world,
)
from tinbao.cli import app

runner = CliRunner()
SECRET = "secret-b-long-enough-for-tests-9876543210-klmnopqrst"
ARGS = ["report", "--from", "01/01/2026", "--to", "31/03/2026"]


@pytest.fixture
def seeded(database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> World:
    """The factory's world in the test database; the CLI's settings point at it."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("TINBAO_DATABASE_URL", database_url)
    monkeypatch.setenv("TINBAO_SECRET_KEY", SECRET)
    monkeypatch.setenv("TINBAO_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("TINBAO_TIMEZONE", "Asia/Ho_Chi_Minh")
    world = make_world()

    async def setup() -> None:
        db = Database(database_url)
        try:
            await write_world(db, world)
        finally:
            await db.dispose()

    asyncio.run(setup())
    return world


def _by_label(sheet: Any) -> dict[str, Any]:
    """Column A -> column B of the summary sheet."""
    return {row[0].value: row[1].value for row in sheet.iter_rows() if len(row) > 1}


def test_report_workbook_and_paragraph(seeded: World, tmp_path: Path) -> None:
    out = tmp_path / "report.xlsx"
    result = runner.invoke(app, [*ARGS, "--commune", str(KHA_CUU), "--out", str(out)])
    assert result.exit_code == 0, result.output
    scope = Scope.commune(KHA_CUU)
    tips = received(seeded, scope)
    counts = expected_counts(tips)

    book = openpyxl.load_workbook(out)
    assert book.sheetnames == ["Tổng hợp", "Theo xã, phường", "Theo lĩnh vực", "Theo tháng"]
    summary = book["Tổng hợp"]
    assert summary["A1"].value == "Báo cáo tiếp nhận tin báo"
    assert (summary["A2"].value, summary["B2"].value) == ("Phạm vi", "Xã Khả Cửu")
    assert (summary["A3"].value, summary["B3"].value) == ("Từ ngày", datetime(2026, 1, 1))
    assert (summary["A4"].value, summary["B4"].value) == ("Đến ngày", datetime(2026, 3, 31))
    assert summary["B3"].number_format == summary["B4"].number_format == "dd/mm/yyyy"
    assert summary["B3"].is_date and summary["B5"].is_date
    figures = _by_label(summary)
    expected = {
        "Tin báo tiếp nhận": counts.received,
        "Tin báo khẩn cấp": counts.urgent,
        "Có giá trị": counts.valuable,
        "Không có giá trị": counts.not_valuable,
        "Chưa đánh giá": counts.undecided,
        "Đã tiếp nhận xử lý": counts.acknowledged,
        "Đã kết thúc": counts.closed,
        "Giải quyết trong 20 ngày (Điều 147 BLTTHS)": counts.art147_met,
        "Chuyển sang xã, phường khác": counts.moved,
        "Chuyển lên Công an tỉnh": counts.escalated,
    }
    for label, value in expected.items():
        assert figures[label] == value and type(figures[label]) is int, label
    assert isinstance(figures["Số giờ đến khi tiếp nhận (trung vị)"], float)

    communes = book["Theo xã, phường"]
    header = [cell.value for cell in communes[1]]
    assert header[:4] == ["Mã", "Xã/phường", "Tin báo tiếp nhận", "Tin báo khẩn cấp"]
    row = [cell.value for cell in communes[2]]
    assert row[:4] == [KHA_CUU, "Xã Khả Cửu", counts.received, counts.urgent]
    assert all(type(value) is int for value in row[2:8])
    assert communes.max_row == 2

    per_category = book["Theo lĩnh vực"]
    assert per_category["A1"].value == "Lĩnh vực"
    names = {r[0].value: r[1].value for r in per_category.iter_rows(min_row=2)}
    assert names["Ma túy"] == sum(t.category == "drugs" for t in tips)
    assert names["Trộm cắp, cướp tài sản"] == sum(t.category == "theft" for t in tips)

    months = book["Theo tháng"]
    assert [c.value for c in months[1]][:2] == ["Tháng", "Tin báo tiếp nhận"]
    assert [r[0].value for r in months.iter_rows(min_row=2)] == [
        datetime(2026, 1, 1),
        datetime(2026, 2, 1),
        datetime(2026, 3, 1),
    ]
    assert months["A2"].number_format == "mm/yyyy"
    assert sum(r[1].value for r in months.iter_rows(min_row=2)) == counts.received

    runs = [r for r in seeded.runs if in_period(r.scheduled) and r.deliveries]
    runs = [r for r in runs if run_in_scope(scope, r)]
    people = {i for r in runs for i, status in r.deliveries if status == "sent"}
    signatures = sum(in_period(s.created) and s.commune == KHA_CUU for s in seeded.signatures)
    paragraph = (
        f"Từ 01/01/2026 đến 31/03/2026, Nhân dân đã cung cấp cho Công an xã Khả Cửu "
        f"{counts.received} tin báo, trong đó {counts.valuable} tin có giá trị; "
        f"đã giải quyết {counts.closed} tin, trong đó {counts.art147_met} tin trong thời hạn "
        f"20 ngày; tổ chức 0 buổi tuyên truyền với 0 lượt người tham dự; "
        f"{len(runs)} lượt tin tuyên truyền đã đến với {len(people)} người và "
        f"{signatures} lượt ký cam kết."
    )
    assert paragraph in result.output
    assert "SECRET" not in result.output


def test_report_for_a_province_and_the_country(seeded: World, tmp_path: Path) -> None:
    out = tmp_path / "all.xlsx"
    result = runner.invoke(app, [*ARGS, "--all", "--out", str(out)])
    assert result.exit_code == 0, result.output
    counts = expected_counts(received(seeded, Scope.everywhere()))
    assert f"cho lực lượng Công an {counts.received} tin báo" in result.output
    assert _by_label(openpyxl.load_workbook(out)["Tổng hợp"])["Phạm vi"] == "Toàn quốc"
    province = runner.invoke(app, [*ARGS, "--province", "25", "--out", str(out)])
    assert province.exit_code == 0, province.output
    assert "Công an tỉnh Phú Thọ" in province.output


@pytest.mark.parametrize(
    "extra",
    [
        ["--commune", "8635", "--all"],
        [],
        ["--commune", "8635", "--from", "31/13/2026"],
        ["--commune", "8635", "--from", "01/04/2026"],  # after --to
        ["--commune", "99999"],  # no such commune
        ["--province", "99"],
    ],
)
def test_report_refuses_bad_arguments(seeded: World, tmp_path: Path, extra: list[str]) -> None:
    result = runner.invoke(app, [*ARGS, *extra, "--out", str(tmp_path / "x.xlsx")])
    assert result.exit_code == 2, result.output
    assert not (tmp_path / "x.xlsx").exists()
