"""The `tinbao` command line."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from tinbao import __version__
from tinbao.settings import Settings

app = typer.Typer(
    help="tinbao: tip line and legal-outreach bot for commune police.", no_args_is_help=True
)
db_app = typer.Typer(help="Database schema.", no_args_is_help=True)
communes_app = typer.Typer(
    help="Administrative reference data (provinces, communes).", no_args_is_help=True
)
app.add_typer(db_app, name="db")
app.add_typer(communes_app, name="communes")
console = Console()


def load_settings() -> Settings:
    """Load settings, turning a validation error into a readable message."""
    from pydantic import ValidationError

    try:
        return Settings()
    except ValidationError as error:
        for problem in error.errors():
            console.print(f"[red]configuration error:[/red] {problem['msg']}")
        raise typer.Exit(2) from error


def _logging(verbose: bool, settings: Settings | None = None) -> None:
    """Configure logging: text or JSON lines, tokens and secrets redacted (tinbao.logs)."""
    from tinbao import logs

    logs.configure(
        log_format=settings.log_format if settings else "text",
        verbose=verbose,
        secrets=settings.log_secrets() if settings else (),
    )


@app.command()
def version() -> None:
    """Print the tinbao version."""
    console.print(f"tinbao {__version__}")


@app.command()
def run(
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Debug logging.")] = False,
) -> None:
    """Run the bot with long polling (upgrades the database and loads communes first)."""
    from bot.app import ALLOWED_UPDATES, build_application
    from tinbao.runtime import prepare_database

    settings = load_settings()
    _logging(verbose, settings)
    if not settings.bot_token.get_secret_value():
        console.print("[red]TINBAO_BOT_TOKEN is not set.[/red]")
        raise typer.Exit(2)
    asyncio.run(prepare_database(settings.database_url))
    application = build_application(settings)
    application.run_polling(allowed_updates=ALLOWED_UPDATES)


@app.command()
def serve(
    host: Annotated[str, typer.Option(help="Address to bind.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 8000,
    workers: Annotated[
        int, typer.Option(min=1, help="Processes on this socket (or run one instance per port).")
    ] = 1,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Debug logging.")] = False,
) -> None:
    """Serve webhooks, /healthz, /readyz and /metrics (run `tinbao db upgrade` first).

    Each channel runs when its credentials are set: without TINBAO_BOT_TOKEN there is no
    Telegram, and everything else starts. Put several instances on one PostgreSQL behind a
    proxy (docs/deploy.md); one of them is elected to run deadlines, retention and broadcasts.
    """
    from tinbao.serve.server import run as run_server

    settings = load_settings()
    _logging(verbose, settings)
    if settings.telegram_enabled and not settings.webhook_secret.get_secret_value():
        console.print(
            "[red]TINBAO_WEBHOOK_SECRET is not set:[/red] Telegram's webhook needs it "
            "(generate one: python -c 'import secrets; print(secrets.token_urlsafe(32))')"
        )
        raise typer.Exit(2)
    run_server(settings, host=host, port=port, workers=workers)


@db_app.command("upgrade")
def db_upgrade(revision: Annotated[str, typer.Argument(help="Target revision.")] = "head") -> None:
    """Upgrade the database schema (Alembic) and load the communes on first start.

    Run it once before starting or upgrading the instances (`tinbao serve` does not migrate:
    several instances starting at once must not race to upgrade).
    """
    from storage.migrate import upgrade
    from tinbao.runtime import prepare_database

    settings = load_settings()
    if revision == "head":
        asyncio.run(prepare_database(settings.database_url))
    else:
        upgrade(settings.database_url, revision)
    console.print(f"database upgraded to {revision}")


@communes_app.command("sync")
def communes_sync() -> None:
    """Load or update the 34 provinces and 3,321 communes from vietnam-provinces."""
    from storage.communes import sync_communes
    from storage.db import Database

    settings = load_settings()

    async def _sync() -> None:
        db = Database(settings.database_url)
        try:
            async with db.session() as session:
                result = await sync_communes(session)
        finally:
            await db.dispose()
        console.print(
            f"provinces added: {result.provinces_added}, communes added: "
            f"{result.communes_added}, communes updated: {result.communes_updated}"
        )

    asyncio.run(_sync())


@communes_app.command("search")
def communes_search(query: Annotated[str, typer.Argument(help="Name, accents optional.")]) -> None:
    """Search communes by name, ignoring case and diacritics (shows the deep-link payload)."""
    from storage.communes import search_communes
    from storage.db import Database

    settings = load_settings()

    async def _search() -> None:
        db = Database(settings.database_url)
        try:
            async with db.session() as session:
                for choice in await search_communes(session, query, limit=20):
                    console.print(
                        f"{choice.code}\t{choice.label}\tdeep link payload: c{choice.code}"
                    )
        finally:
            await db.dispose()

    asyncio.run(_search())


@app.command()
def emulator(
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 8081,
    host: Annotated[str, typer.Option(help="Address to bind.")] = "127.0.0.1",
    token: Annotated[str, typer.Option(help="Bot token the emulator accepts.")] = "123456:SANDBOX",
    limits: Annotated[bool, typer.Option(help="Enforce Telegram's rate limits (429).")] = True,
    allow_remote: Annotated[
        bool,
        typer.Option(
            help="Allow a --host other machines reach; the control API then needs a token."
        ),
    ] = False,
    control_token: Annotated[
        str | None,
        typer.Option(
            help="Token the control API asks for (X-Control-Token); generated when not given.",
            envvar="TINBAO_EMULATOR_CONTROL_TOKEN",
        ),
    ] = None,
) -> None:
    """Run the Bot API emulator alone (point TINBAO_TELEGRAM_API_URL at it)."""
    from sandbox.emulator import run as run_emulator

    run_emulator(
        host=host,
        port=port,
        token=token,
        limits_on=limits,
        control_token=_control_token(host, allow_remote, control_token),
    )


def _control_token(host: str, allow_remote: bool, given: str | None) -> str | None:
    """The control API's token: none on loopback; required (or generated) beyond it, where
    anyone who reaches the control API reads every chat and acts as any user."""
    import secrets

    from sandbox.access import is_loopback

    if is_loopback(host):
        return given or None
    if not allow_remote:
        raise typer.BadParameter(
            f"{host} is reachable from other machines and the control API would let them read "
            "every chat and act as any user; bind 127.0.0.1, or pass --allow-remote "
            "(a control token is then required)",
            param_hint="--host",
        )
    return given or secrets.token_urlsafe(24)


@app.command()
def demo(
    port: Annotated[int, typer.Option(help="Port of the page and the emulator.")] = 8080,
    host: Annotated[str, typer.Option(help="Address to bind.")] = "127.0.0.1",
    data_dir: Annotated[
        Path, typer.Option(help="Where the demo keeps its database and key.")
    ] = Path("./tinbao-demo"),
    scripted: Annotated[
        bool, typer.Option(help="Print a scripted citizen's conversation instead of the page.")
    ] = False,
    keep_running: Annotated[
        bool, typer.Option(help="With --scripted: keep serving after the scripted citizen.")
    ] = False,
    allow_remote: Annotated[
        bool,
        typer.Option(help="Allow a --host other machines reach (the page then needs a token)."),
    ] = False,
) -> None:
    """Run the bot offline with a seeded database and open it in the browser as four phones."""
    from tinbao.demo import run_demo, run_web_demo

    control_token = _control_token(host, allow_remote, None)
    _logging(False)
    if scripted:
        asyncio.run(run_demo(data_dir, keep_running=keep_running, console=console))
        return
    logging.getLogger("telegram").setLevel(logging.WARNING)
    try:
        asyncio.run(
            run_web_demo(
                data_dir, host=host, port=port, console=console, control_token=control_token
            )
        )
    except KeyboardInterrupt:
        console.print("demo stopped")
    except OSError as error:
        console.print(f"[red]cannot serve on {host}:{port}:[/red] {error.strerror or error}")
        raise typer.Exit(1) from error


def _register_staff_commands() -> None:
    """Police-inbox commands live in their own module; attach them here."""
    from tinbao import cli_staff

    app.command("invite")(cli_staff.invite)
    app.command("purge")(cli_staff.purge)
    app.command("sender")(cli_staff.sender)
    app.add_typer(cli_staff.staff_app, name="staff")
    app.add_typer(cli_staff.inbox_app, name="inbox")
    app.add_typer(cli_staff.audit_app, name="audit")
    from tinbao import cli_broadcast

    app.add_typer(cli_broadcast.broadcast_app, name="broadcast")
    from tinbao.cli_keys import keys_app
    from tinbao.cli_webhook import webhook_app
    from tinbao.cli_zalo import zalo_app

    app.add_typer(webhook_app, name="webhook")
    app.add_typer(zalo_app, name="zalo")

    app.add_typer(keys_app, name="keys")
    from tinbao import cli_report

    app.command("report")(cli_report.report)
    from tinbao import cli_poster

    app.command("poster")(cli_poster.poster)


_register_staff_commands()
