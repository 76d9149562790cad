"""Operator commands for the police inbox: invites, staff, inboxes, audit, retention, sender."""

from __future__ import annotations

import asyncio
import csv
import json
from collections.abc import Awaitable, Callable
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, TypeVar

import typer
from rich.console import Console
from rich.table import Table
from sqlmodel.ext.asyncio.session import AsyncSession

from storage.db import Database
from storage.models import Inbox
from storage.types import utcnow

if TYPE_CHECKING:
    from bot.services.retention import PurgeReport
    from web.accounts import AccountError

console = Console()
staff_app = typer.Typer(help="Enrolled police and outreach staff.", no_args_is_help=True)
inbox_app = typer.Typer(help="Inbox group chats.", no_args_is_help=True)
audit_app = typer.Typer(help="The audit log of actions on tips.", no_args_is_help=True)
T = TypeVar("T")


def _with_session(work: Callable[[AsyncSession], Awaitable[T]]) -> T:
    """Run `work` in a session on the configured database."""
    from tinbao.cli import load_settings

    settings = load_settings()

    async def _run() -> T:
        db = Database(settings.database_url)
        try:
            async with db.session() as session:
                return await work(session)
        finally:
            await db.dispose()

    return asyncio.run(_run())


def invite(
    role: Annotated[str, typer.Option(help="officer, supervisor, outreach or admin.")],
    commune: Annotated[int | None, typer.Option(help="Commune code (officers).")] = None,
    province: Annotated[int | None, typer.Option(help="Province code (supervisors).")] = None,
    days: Annotated[float, typer.Option(help="Days until the code expires.")] = 7,
    bot_username: Annotated[str, typer.Option(help="Bot username, for the deep link.")] = "",
) -> None:
    """Print a single-use, expiring invite code and its deep link."""
    from bot.services.enrollment import INVITE_PREFIX, EnrollmentError, create_invite

    async def work(session: AsyncSession) -> str:
        try:
            new = await create_invite(
                session,
                role=role,
                commune_code=commune,
                province_code=province,
                now=utcnow(),
                ttl=timedelta(days=days),
            )
        except EnrollmentError as error:
            console.print(f"[red]cannot create the invite:[/red] {error.reason}")
            raise typer.Exit(1) from error
        return new.code

    code = _with_session(work)
    console.print(f"invite code: [bold]{code}[/bold]  (single use, expires in {days:g} days)")
    console.print(f"in a private chat with the bot: /join {code}")
    if bot_username:
        console.print(f"deep link: https://t.me/{bot_username}?start={INVITE_PREFIX}{code}")


@staff_app.command("list")
def staff_list() -> None:
    """List enrolled staff."""
    from bot.services.enrollment import list_staff

    rows = _with_session(list_staff)
    table = Table("id", "name", "role", "commune", "province", "active")
    for staff in rows:
        table.add_row(
            str(staff.id),
            staff.display_name,
            staff.role,
            str(staff.commune_code or ""),
            str(staff.province_code or ""),
            "yes" if staff.active else "no",
        )
    console.print(table)


@staff_app.command("revoke")
def staff_revoke(
    staff_id: Annotated[int, typer.Argument(help="Staff id from `staff list`.")],
) -> None:
    """Deactivate a staff member: their buttons and replies are refused from then on."""
    from bot.services.enrollment import EnrollmentError, revoke_staff

    async def work(session: AsyncSession) -> None:
        try:
            await revoke_staff(session, staff_id=staff_id, actor=None, now=utcnow())
        except EnrollmentError as error:
            console.print(f"[red]{error.reason}[/red]")
            raise typer.Exit(1) from error

    _with_session(work)
    console.print(f"staff {staff_id} revoked")


_ACCOUNT_ERRORS = {
    "no_account": "no console account has that username",
    "password_short": "the password is too short: at least {min} characters",
    "password_long": "the password is too long: at most {max} characters",
    "password_is_username": "the password must not be the username",
}


def _account_error(error: AccountError) -> typer.Exit:
    """Print a console account refusal in English; the exit to raise."""
    from web.accounts import MAX_PASSWORD_CHARS, MIN_PASSWORD_CHARS

    message = _ACCOUNT_ERRORS.get(error.reason, error.reason).format(
        min=MIN_PASSWORD_CHARS, max=MAX_PASSWORD_CHARS
    )
    console.print(f"[red]{message}[/red]", highlight=False)
    return typer.Exit(1)


@staff_app.command("passwd")
def staff_passwd(
    username: Annotated[str, typer.Argument(help="Console username.")],
    password_stdin: Annotated[
        bool, typer.Option("--password-stdin", help="Read the password from one line of stdin.")
    ] = False,
) -> None:
    """Set a new console password for an account and end every session of it."""
    import sys

    from web.accounts import AccountError, set_password

    if password_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
        if not password:
            console.print("[red]no password on stdin[/red]")
            raise typer.Exit(1)
    else:
        password = typer.prompt("New password", hide_input=True, confirmation_prompt=True)

    async def work(session: AsyncSession) -> str:
        try:
            account = await set_password(
                session, username=username, password=password, now=utcnow()
            )
        except AccountError as error:
            raise _account_error(error) from error
        return account.username

    name = _with_session(work)
    console.print(f"password set for {name}; every session of the account ended", highlight=False)


@staff_app.command("totp-reset")
def staff_totp_reset(
    username: Annotated[str, typer.Argument(help="Console username.")],
) -> None:
    """Clear a lost authenticator: the next login enrols a new one; every session ends."""
    from web.accounts import AccountError, reset_totp

    async def work(session: AsyncSession) -> str:
        try:
            account = await reset_totp(session, username=username, now=utcnow())
        except AccountError as error:
            raise _account_error(error) from error
        return account.username

    name = _with_session(work)
    console.print(
        f"authenticator cleared for {name}; every session of the account ended. The next "
        "login with the password will show a new QR code to enrol.",
        highlight=False,
    )


@inbox_app.command("list")
def inbox_list(
    all_: Annotated[
        bool, typer.Option("--all", help="Include unlinked and broken inboxes.")
    ] = False,
) -> None:
    """List inbox group chats."""
    from bot.services.enrollment import list_inboxes

    async def work(session: AsyncSession) -> list[Inbox]:
        return await list_inboxes(session, include_inactive=all_)

    table = Table("id", "chat", "title", "scope", "commune", "province", "status")
    for inbox in _with_session(work):
        table.add_row(
            str(inbox.id),
            str(inbox.chat_id),
            inbox.title,
            inbox.scope,
            str(inbox.commune_code or ""),
            str(inbox.province_code or ""),
            inbox.status,
        )
    console.print(table)


@inbox_app.command("unlink")
def inbox_unlink(
    chat_id: Annotated[int, typer.Argument(help="Chat id from `inbox list`.")],
) -> None:
    """Stop using a group chat as an inbox (its tips then go to the next level)."""
    from bot.services.enrollment import EnrollmentError, unlink_inbox

    async def work(session: AsyncSession) -> None:
        try:
            await unlink_inbox(
                session, staff=None, platform="telegram", chat_id=chat_id, now=utcnow()
            )
        except EnrollmentError as error:
            console.print(f"[red]{error.reason}[/red]")
            raise typer.Exit(1) from error

    _with_session(work)
    console.print(f"chat {chat_id} unlinked")


@audit_app.command("export")
def audit_export(
    out: Annotated[Path, typer.Option(help="CSV file to write.")] = Path("audit.csv"),
) -> None:
    """Export the whole audit log to CSV."""
    from bot.services.audit import all_events

    events = _with_session(all_events)
    with out.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(
            ["id", "time_utc", "tip_id", "actor", "action", "allowed", "before", "after"]
        )
        for event in events:
            writer.writerow(
                [
                    event.id,
                    event.created_at.isoformat(),
                    event.tip_id or "",
                    event.actor,
                    event.action,
                    "yes" if event.allowed else "no",
                    json.dumps(event.before, ensure_ascii=False),
                    json.dumps(event.after, ensure_ascii=False),
                ]
            )
    console.print(f"{len(events)} events written to {out}")


def purge(
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Only report what would go.")] = False,
    days: Annotated[int | None, typer.Option(help="Override TINBAO_RETENTION_DAYS.")] = None,
) -> None:
    """Remove the content of tips closed longer than the retention period; figures stay."""
    from bot.services.retention import purge as run_purge
    from tinbao.cli import load_settings

    retention_days = days or load_settings().retention_days

    async def work(session: AsyncSession) -> PurgeReport:
        return await run_purge(session, now=utcnow(), days=retention_days, dry_run=dry_run)

    report = _with_session(work)
    _print_purge(report, dry_run=dry_run, days=retention_days)


def _print_purge(report: PurgeReport, *, dry_run: bool, days: int) -> None:
    """The purge's counts as a table; on a dry run, the first due tips too (never content)."""
    verb = "would remove" if dry_run else "removed"
    console.print(f"tinbao purge {verb}, for tips closed over {days} days ago:")
    counts = Table()
    counts.add_column("what")
    counts.add_column("count", justify="right")
    for label, value in (
        ("tips", report.tips),
        ("tip texts", report.texts),
        ("locations", report.locations),
        ("reply routes", report.routes),
        ("thread message texts", report.messages),
        ("internal notes", report.notes),
        ("file contents", report.attachments),
        ("file bytes", report.attachment_bytes),
        ("outbox rows", report.outbox),
        ("inbox posts", report.inbox_posts),
        ("broadcast delivery rows", report.deliveries),
    ):
        counts.add_row(label, f"{value:,}")
    console.print(counts)
    if not dry_run or not report.listed:
        return
    # Only what lets an operator recognise a row: the short id, the commune code, the date.
    due = Table(title=f"due tips (first {len(report.listed)} of {report.tips:,})")
    for column in ("tip", "commune", "closed (UTC)"):
        due.add_column(column)
    for tip in report.listed:
        closed = tip.closed_at.strftime("%Y-%m-%d") if tip.closed_at else ""
        due.add_row(tip.short_id, str(tip.commune_code), closed)
    console.print(due)


def sender() -> None:
    """Run only the outbox sender (no polling): a separate process next to `tinbao run`."""
    from bot.app import build_services, make_sender
    from tinbao.cli import load_settings

    settings = load_settings()

    async def _run() -> None:
        from telegram import Bot

        from bot.channels.telegram.outbound import CHANNEL, TelegramOutbound

        services = build_services(settings)
        bot = Bot(
            settings.bot_token.get_secret_value(),
            base_url=settings.bot_api_base_url,
            base_file_url=settings.bot_api_file_url,
        )
        async with bot:
            outbox_sender = make_sender(services, {CHANNEL: TelegramOutbound(bot)})
            stop = asyncio.Event()
            try:
                await outbox_sender.run(stop)
            finally:
                await services.db.dispose()

    asyncio.run(_run())
