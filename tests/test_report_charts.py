"""`tinbao report --chart`: the PNG next to the workbook, its size, and Vietnamese text drawn."""

from __future__ import annotations

import asyncio
import dataclasses
import warnings
from pathlib import Path

import pytest
from PIL import Image
from typer.testing import CliRunner

from bot.i18n import translator
from bot.services.report_charts import HEIGHT_PX, WIDTH_PX, write_chart
from bot.services.reports import Report, Scope, build_report
from storage.db import Database
from tests import test_cli_report
from tests.services.test_reports import KHA_CUU, NOW, PERIOD, World
from tinbao.cli import app

runner = CliRunner()
# The workbook tests' fixture: the factory's world written to the test database, the CLI's
# settings pointing at it (imported, not copied, so both files test the same data).
seeded = test_cli_report.seeded
ARGS = test_cli_report.ARGS
# Every Vietnamese vowel with every tone mark, and Đ/đ.
DIACRITICS = "Phường Đồng Xuân, ấp Ỷ Lan: àáảãạ ăằắẳẵặ âầấẩẫậ èéẻẽẹ êềếểễệ ìíỉĩị òóỏõọ ôồốổỗộ ơờớởỡợ ùúủũụ ưừứửữự ỳýỷỹỵ đĐ"  # noqa: E501


def _png(path: Path) -> tuple[str | None, tuple[int, int], int]:
    """Format, size in pixels, and number of distinct colours of an image file."""
    with Image.open(path) as image:
        colours = image.convert("RGB").getcolors(maxcolors=1 << 20) or []
        return image.format, image.size, len(colours)


def _report(database_url: str) -> Report:
    """Xã Khả Cửu's report for the factory's quarter, built straight from the service."""

    async def build() -> Report:
        db = Database(database_url)
        try:
            async with db.session() as session:
                return await build_report(
                    session, scope=Scope.commune(KHA_CUU), period=PERIOD, now=NOW
                )
        finally:
            await db.dispose()

    return asyncio.run(build())


def _glyph_warnings(caught: list[warnings.WarningMessage]) -> list[str]:
    """Matplotlib's "Glyph N (...) missing from font(s) ..." warnings among those caught."""
    return [str(w.message) for w in caught if "missing from font" in str(w.message)]


def test_chart_next_to_the_workbook(seeded: World, tmp_path: Path) -> None:
    out = tmp_path / "report.xlsx"
    result = runner.invoke(app, [*ARGS, "--commune", str(KHA_CUU), "--out", str(out), "--chart"])
    assert result.exit_code == 0, result.output
    chart = tmp_path / "report.png"
    assert out.exists() and chart.exists()
    assert f"wrote {out}" in result.output and f"wrote {chart}" in result.output
    file_format, size, colours = _png(chart)
    assert (file_format, size) == ("PNG", (WIDTH_PX, HEIGHT_PX)) == ("PNG", (1600, 1000))
    assert colours > 20  # bars, text and antialiasing: not a blank canvas


def test_no_chart_without_the_flag(seeded: World, tmp_path: Path) -> None:
    out = tmp_path / "report.xlsx"
    result = runner.invoke(app, [*ARGS, "--commune", str(KHA_CUU), "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert out.exists() and not (tmp_path / "report.png").exists()


def test_chart_refuses_to_overwrite_the_workbook(seeded: World, tmp_path: Path) -> None:
    out = tmp_path / "report.png"
    result = runner.invoke(app, [*ARGS, "--all", "--out", str(out), "--chart"])
    assert result.exit_code == 2, result.output
    assert not out.exists()


def test_chart_for_a_period_without_tips(seeded: World, tmp_path: Path) -> None:
    out = tmp_path / "empty.xlsx"
    year_2020 = ["report", "--from", "01/01/2020", "--to", "31/12/2020"]
    result = runner.invoke(app, [*year_2020, "--all", "--out", str(out), "--chart"])
    assert result.exit_code == 0, result.output
    assert "cho lực lượng Công an 0 tin báo" in result.output
    file_format, size, _colours = _png(tmp_path / "empty.png")
    assert (file_format, size) == ("PNG", (WIDTH_PX, HEIGHT_PX))


@pytest.mark.parametrize("locale", ["vi", "en"])
def test_vietnamese_names_have_every_glyph(
    seeded: World, database_url: str, tmp_path: Path, locale: str
) -> None:
    report = dataclasses.replace(_report(database_url), scope_name=DIACRITICS)
    assert report.totals.received > 0
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        path = write_chart(report, tmp_path / "chart.png", translator(locale))
    assert not _glyph_warnings(caught), _glyph_warnings(caught)
    assert _png(path)[1] == (WIDTH_PX, HEIGHT_PX)


def test_a_missing_glyph_would_be_caught(seeded: World, database_url: str, tmp_path: Path) -> None:
    """The check above can fail: DejaVu Sans has no CJK, and matplotlib says so."""
    report = dataclasses.replace(_report(database_url), scope_name="Xã 中文")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        write_chart(report, tmp_path / "chart.png", translator("vi"))
    assert _glyph_warnings(caught)
