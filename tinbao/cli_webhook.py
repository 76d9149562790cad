"""`tinbao webhook set|delete|info`: register Telegram's webhook for `tinbao serve`."""

from __future__ import annotations

import asyncio
import json

import typer
from rich.console import Console

from tinbao.settings import Settings

webhook_app = typer.Typer(
    help="Telegram's webhook (for `tinbao serve`; long polling needs none).",
    no_args_is_help=True,
)
console = Console()


def _settings() -> Settings:
    """Settings with a bot token, or a readable refusal."""
    from tinbao.cli import load_settings

    settings = load_settings()
    if not settings.telegram_enabled:
        console.print("[red]TINBAO_BOT_TOKEN is not set:[/red] there is no Telegram bot here.")
        raise typer.Exit(2)
    return settings


def webhook_url(settings: Settings) -> str:
    """Where Telegram posts updates: TINBAO_PUBLIC_URL + /telegram/webhook."""
    from bot.channels.telegram.webhook import PATH

    return settings.public_url.rstrip("/") + PATH


@webhook_app.command("set")
def set_() -> None:
    """Register TINBAO_PUBLIC_URL/telegram/webhook with TINBAO_WEBHOOK_SECRET."""
    from bot.app import build_application, build_services
    from bot.channels.telegram.webhook import set_webhook

    settings = _settings()
    # Telegram takes only https; plain http is for the emulator in dev and demo mode.
    schemes = ("https://",) if settings.mode == "production" else ("https://", "http://")
    if not settings.public_url.startswith(schemes):
        console.print("[red]TINBAO_PUBLIC_URL must be an https:// address[/red] (Telegram's rule).")
        raise typer.Exit(2)
    secret = settings.webhook_secret.get_secret_value()
    if not secret:
        console.print("[red]TINBAO_WEBHOOK_SECRET is not set.[/red]")
        raise typer.Exit(2)
    application = build_application(settings, build_services(settings), webhook=True)
    url = webhook_url(settings)
    asyncio.run(set_webhook(application, url, secret))
    console.print(f"webhook set: {url}")


@webhook_app.command("delete")
def delete() -> None:
    """Remove the webhook (before going back to `tinbao run`'s long polling)."""
    from bot.app import build_application, build_services
    from bot.channels.telegram.webhook import delete_webhook

    settings = _settings()
    application = build_application(settings, build_services(settings), webhook=True)
    asyncio.run(delete_webhook(application))
    console.print("webhook deleted")


@webhook_app.command("info")
def info() -> None:
    """Show Telegram's view: URL, pending updates, the last delivery error."""
    from bot.app import build_application, build_services
    from bot.channels.telegram.webhook import webhook_info

    settings = _settings()
    application = build_application(settings, build_services(settings), webhook=True)
    console.print_json(json.dumps(asyncio.run(webhook_info(application))))
