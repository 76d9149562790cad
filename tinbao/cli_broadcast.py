"""Operator commands for outreach broadcasts: `tinbao broadcast ...`."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Awaitable, Callable
from datetime import timedelta
from pathlib import Path
from typing import Annotated, Any, TypeVar
from zoneinfo import ZoneInfo

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table
from sqlmodel.ext.asyncio.session import AsyncSession

from bot.services.broadcasts import (
    WEEKDAYS,
    BroadcastError,
    BroadcastReach,
    BroadcastSpec,
    cron_daily,
    cron_monthly,
    cron_weekly,
    parse_local_time,
)
from storage.db import Database
from storage.types import utcnow

console = Console()
broadcast_app = typer.Typer(
    help="Outreach broadcasts: schedule, follow, send.", no_args_is_help=True
)
T = TypeVar("T")
_CLOCK = re.compile(r"^(\d{1,2})[:hH](\d{2})$")
# Vietnamese weekday abbreviations next to the English ones (T2 = Monday ... CN = Sunday).
_WEEKDAY_ALIASES = {
    **{name: index for index, name in enumerate(WEEKDAYS)},
    **{f"t{n}": n - 2 for n in range(2, 8)},
    "cn": 6,
}


def _settings() -> Any:
    """The process settings (imported late: `tinbao.cli` imports this module's siblings)."""
    from tinbao.cli import load_settings

    return load_settings()


def _quiet(settings: Any) -> tuple[int, int]:
    """Quiet hours from the settings (TINBAO_QUIET_START / TINBAO_QUIET_END), 21-7 by default."""
    return int(getattr(settings, "quiet_start", 21)), int(getattr(settings, "quiet_end", 7))


def _with_session(work: Callable[[AsyncSession], Awaitable[T]]) -> T:
    """Run `work` in a session on the configured database."""
    settings = _settings()

    async def _run() -> T:
        db = Database(settings.database_url)
        try:
            async with db.session() as session:
                return await work(session)
        finally:
            await db.dispose()

    return asyncio.run(_run())


def _refuse(error: BroadcastError) -> typer.Exit:
    """Print a refusal and give the exit to raise."""
    console.print(f"[red]refused ({error.reason}):[/red] {error.detail or error.reason}")
    return typer.Exit(1)


def _clock_time(text: str) -> tuple[int, int]:
    """Read HH:MM as (hour, minute)."""
    match = _CLOCK.match(text.strip())
    if match is None:
        raise typer.BadParameter(f"expected HH:MM, got {text!r}")
    return int(match.group(1)), int(match.group(2))


def _cron_from_options(
    daily: str | None, weekly: str | None, monthly: str | None, cron: str | None
) -> str | None:
    """The cron expression the schedule options ask for (at most one may be given)."""
    given = [option for option in (daily, weekly, monthly, cron) if option]
    if len(given) > 1:
        raise typer.BadParameter("give one of --daily, --weekly, --monthly, --cron")
    if daily:
        return cron_daily(*_clock_time(daily))
    if weekly:
        day, _, clock = weekly.strip().partition(" ")
        weekday = _WEEKDAY_ALIASES.get(day.lower())
        if weekday is None:
            raise typer.BadParameter(f"unknown weekday {day!r} (MON..SUN or T2..CN)")
        return cron_weekly(weekday, *_clock_time(clock))
    if monthly:
        day, _, clock = monthly.strip().partition(" ")
        if not day.isdigit():
            raise typer.BadParameter(f"expected 'D HH:MM', got {monthly!r}")
        return cron_monthly(int(day), *_clock_time(clock))
    return cron


def _local(moment: Any, tz: str) -> str:
    """A UTC time as dd/MM/yyyy HH:mm local."""
    if moment is None:
        return ""
    return str(moment.astimezone(ZoneInfo(tz)).strftime("%d/%m/%Y %H:%M"))


def _what(reach: BroadcastReach) -> str:
    """A short description of a broadcast's content."""
    broadcast = reach.broadcast
    parts = []
    if broadcast.topic_id:
        parts.append(f"topic {broadcast.topic_id}")
    if broadcast.text:
        text = broadcast.text.replace("\n", " ")
        parts.append(text[:40] + ("…" if len(text) > 40 else ""))
    if broadcast.photo:
        parts.append("+photo")
    return " ".join(parts)


def _audience(reach: BroadcastReach) -> str:
    """The audience as typed on the command line."""
    broadcast = reach.broadcast
    if broadcast.audience in ("province", "commune"):
        return f"{broadcast.audience} {broadcast.audience_code}"
    if broadcast.audience == "topic":
        return f"topic {broadcast.audience_topic}"
    return broadcast.audience


@broadcast_app.command("list")
def list_command(limit: Annotated[int, typer.Option(help="How many, newest first.")] = 20) -> None:
    """List broadcasts with their schedule and reach."""
    from bot.services.broadcasts import list_broadcasts

    tz = _settings().timezone

    async def work(session: AsyncSession) -> list[BroadcastReach]:
        return await list_broadcasts(session, limit=limit)

    table = Table("id", "status", "schedule", "next run", "audience", "content", "sent/planned")
    for reach in _with_session(work):
        broadcast = reach.broadcast
        schedule = f"cron {broadcast.cron}" if broadcast.trigger == "cron" else "once"
        if broadcast.urgent:
            schedule += " urgent"
        table.add_row(
            str(broadcast.id),
            broadcast.status,
            schedule,
            _local(broadcast.next_run_at, tz),
            _audience(reach),
            _what(reach),
            f"{reach.sent:,}/{reach.planned:,}",
        )
    console.print(table)


@broadcast_app.command("create")
def create_command(
    text: Annotated[str | None, typer.Option(help="Own text (Telegram HTML).")] = None,
    topic: Annotated[str | None, typer.Option(help="A library topic id to send.")] = None,
    photo: Annotated[
        Path | None, typer.Option(help="A photo to send, the text as its caption.")
    ] = None,
    audience: Annotated[str, typer.Option(help="all, province, commune or topic.")] = "all",
    code: Annotated[int | None, typer.Option(help="Province or commune code.")] = None,
    audience_topic: Annotated[
        str | None, typer.Option(help="For --audience topic: subscribers of this topic.")
    ] = None,
    at: Annotated[str | None, typer.Option(help='Once, local time "dd/MM/yyyy HH:mm".')] = None,
    daily: Annotated[str | None, typer.Option(help='Every day at "HH:MM".')] = None,
    weekly: Annotated[
        str | None, typer.Option(help='Every week: "MON 08:00" (or "T2 08:00").')
    ] = None,
    monthly: Annotated[str | None, typer.Option(help='Every month: "1 08:00".')] = None,
    cron: Annotated[str | None, typer.Option(help="A 5-field cron expression, local time.")] = None,
    urgent: Annotated[bool, typer.Option(help="Send even in quiet hours (21:00-07:00).")] = False,
) -> None:
    """Schedule a broadcast (no schedule option: now)."""
    from bot.services.broadcasts import audience_size, create_broadcast

    settings = _settings()
    tz = settings.timezone
    try:
        expression = _cron_from_options(daily, weekly, monthly, cron)
        run_at = parse_local_time(at, tz) if at else None
    except BroadcastError as error:
        raise _refuse(error) from error
    if expression and run_at:
        raise typer.BadParameter("give --at or a repeating schedule, not both")
    spec = BroadcastSpec(
        topic_id=topic,
        text=text,
        photo=photo.read_bytes() if photo else None,
        audience=audience,
        audience_code=code,
        audience_topic=audience_topic,
        trigger="cron" if expression else "once" if run_at else "now",
        run_at=run_at,
        cron=expression,
        urgent=urgent,
    )

    async def work(session: AsyncSession) -> tuple[int, Any, int]:
        try:
            broadcast = await create_broadcast(
                session, spec=spec, staff_id=None, now=utcnow(), tz=tz, quiet=_quiet(settings)
            )
        except BroadcastError as error:
            raise _refuse(error) from error
        assert broadcast.id is not None
        return broadcast.id, broadcast.next_run_at, await audience_size(session, spec)

    broadcast_id, next_run_at, size = _with_session(work)
    console.print(
        f"broadcast [bold]{broadcast_id}[/bold] scheduled; first run {_local(next_run_at, tz)} "
        f"({tz}); {size:,} subscribers in its audience now"
    )
    console.print(
        "the bot process (leader) sends it; or `tinbao broadcast send "
        f"{broadcast_id} --wait` sends it from here"
    )


def _set_state(broadcast_id: int, action: str) -> None:
    """Pause, resume or cancel."""
    from bot.services.broadcasts import set_state

    settings = _settings()

    async def work(session: AsyncSession) -> str:
        try:
            broadcast = await set_state(
                session,
                broadcast_id=broadcast_id,
                action=action,
                now=utcnow(),
                tz=settings.timezone,
                quiet=_quiet(settings),
            )
        except BroadcastError as error:
            raise _refuse(error) from error
        return broadcast.status

    console.print(f"broadcast {broadcast_id}: {_with_session(work)}")


@broadcast_app.command("pause")
def pause_command(broadcast_id: Annotated[int, typer.Argument(help="Broadcast id.")]) -> None:
    """Pause a broadcast: no new runs, and its run in progress stops sending."""
    _set_state(broadcast_id, "pause")


@broadcast_app.command("resume")
def resume_command(broadcast_id: Annotated[int, typer.Argument(help="Broadcast id.")]) -> None:
    """Resume a paused broadcast (missed repeats are skipped)."""
    _set_state(broadcast_id, "resume")


@broadcast_app.command("cancel")
def cancel_command(broadcast_id: Annotated[int, typer.Argument(help="Broadcast id.")]) -> None:
    """Cancel a broadcast for good: unsent deliveries are dropped."""
    _set_state(broadcast_id, "cancel")


@broadcast_app.command("show")
def show_command(broadcast_id: Annotated[int, typer.Argument(help="Broadcast id.")]) -> None:
    """Show a broadcast and its reach."""
    from bot.services.broadcasts import reach

    tz = _settings().timezone

    async def work(session: AsyncSession) -> BroadcastReach:
        try:
            return await reach(session, broadcast_id)
        except BroadcastError as error:
            raise _refuse(error) from error

    found = _with_session(work)
    broadcast = found.broadcast
    table = Table(show_header=False)
    rows = [
        ("status", broadcast.status + (" (urgent)" if broadcast.urgent else "")),
        ("schedule", f"cron {broadcast.cron} ({tz})" if broadcast.cron else "once"),
        ("next run", _local(broadcast.next_run_at, tz)),
        ("last run", _local(broadcast.last_run_at, tz)),
        ("audience", _audience(found)),
        ("content", _what(found)),
        ("runs", f"{found.runs:,}"),
        ("planned", f"{found.planned:,}"),
        ("sent", f"{found.sent:,}"),
        ("pending", f"{found.pending:,}"),
        ("failed", f"{found.failed:,}"),
        ("blocked", f"{found.blocked:,}"),
        ("refused by the platform", f"{found.refused:,}"),
        ("cancelled", f"{found.cancelled:,}"),
    ]
    for name, value in rows:
        table.add_row(name, value)
    console.print(table)


@broadcast_app.command("send")
def send_command(
    broadcast_id: Annotated[int, typer.Argument(help="Broadcast id.")],
    wait: Annotated[
        bool, typer.Option("--wait", help="Send (or watch) until every run is done.")
    ] = False,
    rate: Annotated[
        float | None, typer.Option(help="Messages per second (default TINBAO_BROADCAST_RATE).")
    ] = None,
    slots: Annotated[
        int, typer.Option(help="Concurrent sends (= most repeats after a crash).")
    ] = 16,
    lanes: Annotated[int, typer.Option(help="Claim/send/mark loops sharing the slots.")] = 4,
    lease: Annotated[
        float, typer.Option(help="Seconds before a row in flight is taken back.")
    ] = 60,
) -> None:
    """Start the broadcast's due run now; with --wait, send it from here with a progress bar.

    Only the leader sends: when the bot process leads, this watches its progress instead, and
    takes over if the leader goes away.
    """
    settings = _settings()
    configured = float(getattr(settings, "broadcast_rate", 25.0))
    asyncio.run(
        _send(
            settings,
            broadcast_id,
            wait=wait,
            rate=rate or configured,
            slots=slots,
            lanes=lanes,
            lease=timedelta(seconds=lease),
        )
    )


async def _send(
    settings: Any,
    broadcast_id: int,
    *,
    wait: bool,
    rate: float,
    slots: int,
    lanes: int,
    lease: timedelta,
) -> None:
    """Fire the broadcast if due; with `wait`, send as leader or watch until its runs are done."""
    db = Database(settings.database_url)
    try:
        if not await _fire(settings, db, broadcast_id):
            return
        if not wait:
            console.print("the leader (bot process) sends it; add --wait to send from here")
            return
        if not settings.bot_token.get_secret_value():
            console.print("[red]TINBAO_BOT_TOKEN is not set.[/red]")
            raise typer.Exit(2)
        await _send_until_done(
            settings, db, broadcast_id, rate=rate, slots=slots, lanes=lanes, lease=lease
        )
    finally:
        await db.dispose()


async def _fire(settings: Any, db: Database, broadcast_id: int) -> bool:
    """Start the broadcast's due run; False (and why) when it has nothing to send now."""
    from bot.services.broadcasts import reach
    from scheduler.broadcasts import fire_due, plan_unplanned

    tz, quiet = settings.timezone, _quiet(settings)
    async with db.session() as session:
        try:
            found = await reach(session, broadcast_id)
        except BroadcastError as error:
            raise _refuse(error) from error
    if found.broadcast.status == "paused":
        console.print(f"broadcast {broadcast_id} is paused: resume it first")
        raise typer.Exit(1)
    await plan_unplanned(db, now=utcnow())
    started = await fire_due(db, now=utcnow(), tz=tz, quiet=quiet, broadcast_ids=[broadcast_id])
    if started:
        console.print(f"started run(s) {', '.join(map(str, started))}")
    if await _open_runs(db, broadcast_id):
        return True
    console.print(
        f"broadcast {broadcast_id} has nothing to send now ({found.broadcast.status}; "
        f"next run {_local(found.broadcast.next_run_at, tz) or 'none'})"
    )
    return False


async def _send_until_done(
    settings: Any,
    db: Database,
    broadcast_id: int,
    *,
    rate: float,
    slots: int,
    lanes: int,
    lease: timedelta,
) -> None:
    """Send as leader (or watch the leader send) with a progress bar until the runs are done."""
    from bot.app import build_services
    from bot.channels.registry import broadcast_channels
    from bot.services.anonymity import Keyring
    from bot.services.broadcasts import in_quiet_hours, reach
    from scheduler.delivery import BroadcastSender
    from scheduler.leader import LeaderLock

    tz, quiet = settings.timezone, _quiet(settings)
    lock = LeaderLock(settings.database_url)
    sender = BroadcastSender(
        db=db,
        channels=broadcast_channels(build_services(settings, db=db), connections=slots + 4),
        keyring=Keyring.from_settings(settings),
        rate=rate,
        slots=slots,
        lanes=lanes,
        lease=lease,
        timezone=tz,
        quiet=quiet,
        broadcast_ids=[broadcast_id],
    )
    stop = asyncio.Event()
    sending: asyncio.Task[None] | None = None
    try:
        with _progress() as progress:
            task = progress.add_task("sending", total=None, sent=0, failed=0, blocked=0)
            while True:
                if sending is None and await lock.try_acquire():
                    # Leading: what a dead leader had in flight is ours to send again.
                    await sender.reclaim(everything=True)
                    sending = asyncio.create_task(sender.run(stop))
                    progress.update(task, description=f"sending at {rate:g}/s")
                elif sending is None:
                    progress.update(task, description="the leader sends; watching")
                async with db.session() as session:
                    found = await reach(session, broadcast_id)
                if in_quiet_hours(utcnow(), tz, quiet) and not found.broadcast.urgent:
                    progress.update(task, description="quiet hours: waiting for 07:00")
                done = found.sent + found.failed + found.blocked + found.cancelled + found.refused
                progress.update(
                    task,
                    total=found.planned or None,
                    completed=done,
                    sent=found.sent,
                    failed=found.failed,
                    blocked=found.blocked,
                )
                if not await _open_runs(db, broadcast_id):
                    break
                if sending is not None and sending.done():
                    sending.result()  # the sender stopped: say why
                # Counting a big run's deliveries is work for the database: once a second.
                await asyncio.sleep(1.0)
    finally:
        stop.set()
        if sending is not None:
            await sending
        await lock.release()
        await sender.close()
    console.print(
        f"broadcast {broadcast_id}: {found.sent:,} sent, {found.failed:,} failed, "
        f"{found.blocked:,} blocked, {found.refused:,} refused by the platform "
        f"of {found.planned:,} planned"
    )


async def _open_runs(db: Database, broadcast_id: int) -> bool:
    """Whether the broadcast still has a run planning or sending."""
    from sqlmodel import col, select

    from storage.models import BroadcastRun

    async with db.session() as session:
        found = (
            await session.exec(
                select(BroadcastRun.id).where(
                    BroadcastRun.broadcast_id == broadcast_id, col(BroadcastRun.status) != "done"
                )
            )
        ).first()
    return found is not None


def _progress() -> Progress:
    """A progress bar with planned/sent/failed/blocked."""
    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn(
            "sent {task.fields[sent]:,} · failed {task.fields[failed]:,} · "
            "blocked {task.fields[blocked]:,}"
        ),
        TimeElapsedColumn(),
        console=console,
        refresh_per_second=2,  # the figures change once a second; redraws cost the sender CPU
    )
