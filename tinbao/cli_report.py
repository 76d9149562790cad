"""`tinbao report`: statistics for one commune, province or the whole country, as XLSX (+ PNG)."""

from __future__ import annotations

import asyncio
from datetime import date, datetime
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, SpinnerColumn, TextColumn

from bot.i18n import translator
from bot.services.report_xlsx import summary_paragraph, write_xlsx
from bot.services.reports import Period, Report, Scope, UnknownScopeError, build_report
from storage.db import Database
from storage.types import utcnow

console = Console()


def _day(value: str, option: str) -> date:
    """Parse dd/mm/yyyy, the way Vietnamese write dates."""
    try:
        return datetime.strptime(value, "%d/%m/%Y").date()
    except ValueError as error:
        raise typer.BadParameter(
            f"{value!r} is not a date like 31/03/2026", param_hint=option
        ) from error


def _scope(commune: int | None, province: int | None, everywhere: bool) -> Scope:
    """Exactly one of --commune, --province, --all."""
    chosen = [commune is not None, province is not None, everywhere]
    if sum(chosen) != 1:
        raise typer.BadParameter("give exactly one of --commune, --province or --all")
    if commune is not None:
        return Scope.commune(commune)
    if province is not None:
        return Scope.province(province)
    return Scope.everywhere()


async def _build(url: str, scope: Scope, period: Period, timezone: str) -> Report:
    """Compute the report on the configured database."""
    db = Database(url)
    try:
        async with db.session() as session:
            return await build_report(
                session, scope=scope, period=period, now=utcnow(), timezone=timezone
            )
    finally:
        await db.dispose()


def report(
    first: Annotated[str, typer.Option("--from", help="First day, dd/mm/yyyy (local time).")],
    last: Annotated[str, typer.Option("--to", help="Last day, dd/mm/yyyy, included.")],
    out: Annotated[Path, typer.Option("--out", help="The XLSX file to write.")] = Path(
        "report.xlsx"
    ),
    commune: Annotated[int | None, typer.Option(help="A commune code.")] = None,
    province: Annotated[int | None, typer.Option(help="A province code.")] = None,
    everywhere: Annotated[bool, typer.Option("--all", help="The whole country.")] = False,
    locale: Annotated[str, typer.Option(help="Language of the workbook: vi or en.")] = "vi",
    chart: Annotated[
        bool, typer.Option("--chart", help="Also write a PNG chart next to the workbook.")
    ] = False,
) -> None:
    """Write tip and outreach statistics for a scope and period to XLSX; print a summary."""
    from tinbao.cli import load_settings

    scope = _scope(commune, province, everywhere)
    try:
        period = Period(_day(first, "--from"), _day(last, "--to"))
    except ValueError as error:
        raise typer.BadParameter(str(error), param_hint="--to") from error
    settings = load_settings()
    t = translator(locale, settings.timezone)
    picture = out.with_suffix(".png")
    if chart and picture == out:
        raise typer.BadParameter("the chart would overwrite the workbook", param_hint="--out")
    columns = (SpinnerColumn(), TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn())
    with Progress(*columns, console=console, transient=True) as progress:
        task = progress.add_task("computing the figures", total=3 if chart else 2)
        try:
            result = asyncio.run(_build(settings.database_url, scope, period, settings.timezone))
        except UnknownScopeError as error:
            raise typer.BadParameter(str(error)) from error
        progress.update(task, advance=1, description="writing the workbook")
        write_xlsx(result, out, t)
        progress.update(task, advance=1)
        if chart:
            # Imported here: matplotlib takes a good part of a second to load, and every other
            # `tinbao` command would pay for it.
            from bot.services.report_charts import write_chart

            progress.update(task, description="drawing the chart")
            write_chart(result, picture, t)
            progress.update(task, advance=1)
    console.print(f"wrote [bold]{out}[/bold]")
    if chart:
        console.print(f"wrote [bold]{picture}[/bold]")
    # Plain print: rich would wrap the paragraph and read [..] as markup.
    typer.echo(summary_paragraph(result, t))
