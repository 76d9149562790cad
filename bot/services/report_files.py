"""A report as the files people are handed: the XLSX workbook and the PNG chart, as bytes.

The bot's /thongke and the console's downloads share these. Both files take a moment of CPU
(callers run them in a thread), and matplotlib is imported only when a chart is drawn: it
takes a good part of a second to load, which no other command should pay for.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from bot.i18n import Translator
from bot.services.report_xlsx import write_xlsx
from bot.services.reports import Report


def file_stem(report: Report) -> str:
    """A file name without suffix that says the period: thong-ke-20260101-20260331."""
    return f"thong-ke-{report.period.first:%Y%m%d}-{report.period.last:%Y%m%d}"


def workbook_bytes(report: Report, translator: Translator) -> bytes:
    """The XLSX workbook."""
    with tempfile.TemporaryDirectory(prefix="tinbao-report-") as folder:
        return write_xlsx(report, Path(folder) / "report.xlsx", translator).read_bytes()


def chart_bytes(report: Report, translator: Translator) -> bytes:
    """The PNG chart."""
    from bot.services.report_charts import write_chart

    with tempfile.TemporaryDirectory(prefix="tinbao-report-") as folder:
        return write_chart(report, Path(folder) / "report.png", translator).read_bytes()
