"""`tinbao keys ...`: rotate TINBAO_SECRET_KEY without losing routes or receipts.

The procedure (docs/key-rotation.md): put a new secret in TINBAO_SECRET_KEY, move the old one to
TINBAO_PREVIOUS_SECRET_KEYS, restart every instance, run `tinbao keys rotate`; `tinbao keys
status` then says when an old secret may be dropped.
"""

from __future__ import annotations

import asyncio
import secrets
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn
from rich.table import Table

from bot.services.anonymity import Keyring
from bot.services.key_rotation import (
    CREDENTIAL_TABLES,
    DEFAULT_BATCH,
    EMPTY_LABEL,
    ROUTE_TABLES,
    V1_LABEL,
    KeyUsage,
    RotationReport,
    needs,
    rotate,
    route_counts,
    usage,
)
from storage.db import Database

console = Console()
keys_app = typer.Typer(
    help="Server secret rotation: key ids, re-encrypting stored routes, which old keys remain.",
    no_args_is_help=True,
)

_TABLE_TITLES = {
    "tip": "tip reply routes",
    "outboxmessage": "outbox routes",
    "conversationdraft": "drafts",
    "subscriber": "subscribers",
    "consoleaccount": "console TOTP secrets",
}


def _keyring() -> tuple[Keyring, str]:
    """The configured keyring and database URL; a clash of key ids is a configuration error."""
    from tinbao.cli import load_settings

    settings = load_settings()
    try:
        return Keyring.from_settings(settings), settings.database_url
    except ValueError as error:
        console.print(f"[red]configuration error:[/red] {error}")
        raise typer.Exit(2) from error


def _print_keys(keyring: Keyring) -> None:
    """Say which key ids are configured (ids only: they reveal nothing about the secrets)."""
    console.print(f"current key id: [bold]{keyring.key_id}[/bold] (TINBAO_SECRET_KEY)")
    previous = ", ".join(keyring.previous_key_ids) or "none"
    console.print(f"previous key ids: {previous} (TINBAO_PREVIOUS_SECRET_KEYS)")


@keys_app.command("generate")
def generate() -> None:
    """Print a fresh random secret for TINBAO_SECRET_KEY, and its key id."""
    secret = secrets.token_urlsafe(48)  # 384 bits; URL-safe, so never a comma
    console.print(secret, soft_wrap=True, highlight=False)
    console.print(f"key id: {Keyring(secret).key_id}", style="dim")


@keys_app.command("rotate")
def rotate_command(
    batch_size: Annotated[
        int, typer.Option(min=1, help="Rows per transaction (each batch is committed).")
    ] = DEFAULT_BATCH,
) -> None:
    """Re-encrypt every stored route under the current key and re-key drafts and subscribers.

    Run it once every instance runs with the new secret; safe to interrupt and to run again.
    """
    from sqlalchemy.exc import IntegrityError

    keyring, url = _keyring()
    _print_keys(keyring)
    try:
        report, found = asyncio.run(_rotate(url, keyring, batch_size))
    except IntegrityError as error:
        # A citizen got a row under the new key between the clash check and the update (only
        # possible on PostgreSQL); that batch was rolled back, the ones before it are kept.
        console.print(
            "[yellow]a row changed while rotating:[/yellow] run `tinbao keys rotate` again"
        )
        raise typer.Exit(1) from error
    _print_rotation(report)
    _print_needs(keyring, found)


async def _rotate(url: str, keyring: Keyring, batch_size: int) -> tuple[RotationReport, KeyUsage]:
    """Run the rotation with a progress bar per table, then count what still needs old keys."""
    db = Database(url)
    try:
        totals = await route_counts(db)
        columns = (
            TextColumn("{task.description:<18}"),
            BarColumn(),
            MofNCompleteColumn(),
        )
        with Progress(*columns, console=console, transient=True) as progress:
            tasks = {
                table: progress.add_task(_TABLE_TITLES[table], total=totals.get(table, 0))
                for table in (*ROUTE_TABLES, *CREDENTIAL_TABLES)
            }
            report = await rotate(
                db,
                keyring,
                batch_size=batch_size,
                progress=lambda table, rows: progress.advance(tasks[table], rows),
            )
        async with db.session() as session:
            found = await usage(session)
    finally:
        await db.dispose()
    return report, found


def _print_rotation(report: RotationReport) -> None:
    """The per-table counts of a rotation run."""
    table = Table(title="tinbao keys rotate")
    for heading in (
        "rows",
        "re-encrypted",
        "already current",
        "unreadable",
        "no route",
        "re-keyed",
        "not re-keyable",
        "changed meanwhile",
    ):
        table.add_column(heading, justify="left" if heading == "rows" else "right")
    for row in report.tables:
        table.add_row(
            _TABLE_TITLES[row.table],
            str(row.reencrypted),
            str(row.current),
            str(row.unreadable),
            str(row.empty) if row.table == "subscriber" else "-",
            str(row.rekeyed) if row.table in ("conversationdraft", "subscriber") else "-",
            str(row.not_rekeyable) if row.table in ("conversationdraft", "subscriber") else "-",
            str(row.changed),
        )
    console.print(table)
    if report.receipt_key_ids_filled:
        console.print(
            f"receipt key ids recorded for {report.receipt_key_ids_filled} tips made before "
            "key ids existed (told by the key that opened their reply route)"
        )
    for key_id, count in sorted(report.unknown_key_ids.items()):
        console.print(
            f"[yellow]{count} routes are encrypted under key id {key_id}, which is not "
            "configured:[/yellow] add that secret to TINBAO_PREVIOUS_SECRET_KEYS and run again"
        )
    unreadable = sum(row.unreadable for row in report.tables) - sum(report.unknown_key_ids.values())
    if unreadable:
        console.print(
            f"[yellow]{unreadable} routes open under no configured key[/yellow] (version-1 "
            "tokens of a secret not configured, or damaged): they were left as they are"
        )
    if any(row.changed for row in report.tables):
        console.print("some rows changed while rotating: run `tinbao keys rotate` again")
    if not report.changed_anything:
        console.print("nothing to do: every readable route was already under the current key")


def _print_needs(keyring: Keyring, found: KeyUsage) -> None:
    """Which previous keys are still needed, and why; which may be dropped."""
    v1_routes = found.routes_under(V1_LABEL)
    if v1_routes:
        console.print(
            f"{v1_routes} routes are still in the format without key id: run `tinbao keys "
            "rotate` to re-encrypt them"
        )
    unknown = found.receipts_under(None)
    if unknown.unpurged or unknown.purged:
        console.print(
            f"{unknown.unpurged + unknown.purged} tips ({unknown.unpurged} not yet purged) have "
            "a receipt from before key ids whose key could not be told (no readable reply "
            "route): they were hashed with the secret that was current when tinbao was "
            "upgraded to key ids; keep that secret until they are purged"
        )
    if not keyring.has_previous:
        console.print("no previous keys are configured")
        return
    for need in needs(keyring, found):
        reasons = []
        if need.routes:
            reasons.append(f"{need.routes} routes still encrypted under it (run rotate again)")
        if need.credentials:
            reasons.append(
                f"{need.credentials} console TOTP secrets still sealed with it (run rotate again)"
            )
        if need.receipts_unpurged:
            reasons.append(
                f"{need.receipts_unpurged} tips not yet purged have receipt codes hashed with "
                "it (a receipt cannot be re-hashed: only its hash is stored); they stop needing "
                "it when retention purges them (TINBAO_RETENTION_DAYS after closing)"
            )
        if need.needed:
            console.print(f"[bold]keep[/bold] key id {need.key_id}: " + "; ".join(reasons))
            continue
        note = (
            f"; {need.receipts_purged} purged tips' codes would no longer show their closed status"
            if need.receipts_purged
            else ""
        )
        console.print(f"[green]may be dropped[/green]: key id {need.key_id}{note}")
    if found.open_campaign_signatures:
        console.print(
            f"note: {found.open_campaign_signatures} signatures in open pledge campaigns; a "
            "person who signed under a dropped key could sign those campaigns once more"
        )


@keys_app.command("status")
def status() -> None:
    """Show which key ids the stored routes and receipts use, per table (reads only)."""
    keyring, url = _keyring()
    _print_keys(keyring)

    async def _usage() -> KeyUsage:
        db = Database(url)
        try:
            async with db.session() as session:
                return await usage(session)
        finally:
            await db.dispose()

    found = asyncio.run(_usage())
    labels = sorted(
        {label for counts in found.routes.values() for label in counts},
        key=lambda label: (label in (V1_LABEL, EMPTY_LABEL), label),
    )
    routes = Table(title="routes per key id")
    routes.add_column("key id")
    for name in ROUTE_TABLES:
        routes.add_column(_TABLE_TITLES[name], justify="right")
    for label in labels:
        routes.add_row(
            _describe(keyring, label),
            *(str(found.routes[name][label]) for name in ROUTE_TABLES),
        )
    console.print(routes)
    for key_id, count in sorted(found.credentials.items()):
        console.print(f"console TOTP secrets sealed with {_describe(keyring, key_id)}: {count}")
    receipts = Table(title="tip receipts per key id")
    for heading in ("key id", "not purged", "purged"):
        receipts.add_column(heading, justify="left" if heading == "key id" else "right")
    for use in sorted(found.receipts, key=lambda use: use.key_id or ""):
        label = _describe(keyring, use.key_id) if use.key_id else "unknown (before key ids)"
        receipts.add_row(label, str(use.unpurged), str(use.purged))
    console.print(receipts)
    console.print(
        f"flood counters: {found.flood_counters} (keyed by the current key only; they lapse "
        "within the hour, so they need no old key)"
    )
    _print_needs(keyring, found)


def _describe(keyring: Keyring, label: str) -> str:
    """A key id with its role (current, previous, not configured)."""
    if label == V1_LABEL:
        return "no key id (version 1)"
    if label == EMPTY_LABEL:
        return "no route (unsubscribed)"
    if label == keyring.key_id:
        return f"{label} (current)"
    if label in keyring.previous_key_ids:
        return f"{label} (previous)"
    return f"{label} (not configured)"
