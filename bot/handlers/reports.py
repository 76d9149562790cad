"""/thongke: statistics for the reader's area, as the summary, a chart and an XLSX workbook."""

from __future__ import annotations

import asyncio
from zoneinfo import ZoneInfo

from telegram import InputFile, Update

from bot.context import CustomContext
from bot.i18n import _
from bot.services import enrollment
from bot.services.report_files import chart_bytes, file_stem, workbook_bytes
from bot.services.report_xlsx import summary_paragraph
from bot.services.reports import build_report, parse_period, report_scope

PLATFORM = "telegram"
USAGE = _(
    "Send /thongke for this month so far, or /thongke thang, /thongke quy, /thongke nam, "
    "/thongke quy 1/2026, /thongke nam 2025, or two days: /thongke 01/01/2026 31/03/2026."
)


async def on_report(update: Update, context: CustomContext) -> None:
    """/thongke [period]: the figures of the officer's commune, the supervisor's province or
    (for admins) the country; counts only, never a tip's content."""
    message, user = update.effective_message, update.effective_user
    assert message is not None and user is not None
    t = context.translate
    services = context.services
    now = services.intake.clock()
    timezone = services.settings.timezone
    async with services.db.session() as session:
        staff = await enrollment.active_staff(session, platform=PLATFORM, platform_user_id=user.id)
        scope = report_scope(staff)
        if scope is None:
            await message.reply_text(t.gettext(_("You are not allowed to do this.")))
            return
        try:
            today = now.astimezone(ZoneInfo(timezone)).date()
            period = parse_period(list(context.args or []), today)
        except ValueError:
            await message.reply_text(t.gettext(USAGE))
            return
        report = await build_report(session, scope=scope, period=period, now=now, timezone=timezone)
    workbook = await asyncio.to_thread(workbook_bytes, report, t)
    chart = await asyncio.to_thread(chart_bytes, report, t)
    await message.reply_text(summary_paragraph(report, t))
    await message.reply_photo(chart)
    await message.reply_document(
        InputFile(workbook, filename=f"{file_stem(report)}.xlsx"),
        caption=t.gettext(_("Statistics generated at {when}")).format(when=t.datetime(now)),
    )
