"""`tinbao zalo ...`: connect the Zalo channels (the Bot Platform's webhook for now)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from typing import Any

import typer
from rich.console import Console

from tinbao.settings import Settings

zalo_app = typer.Typer(
    help="The Zalo channels: Official Account and Zalo Bot.", no_args_is_help=True
)
bot_app = typer.Typer(help="The Zalo Bot Platform bot.", no_args_is_help=True)
bot_webhook_app = typer.Typer(
    help="The Zalo Bot's webhook (for `tinbao serve`; without one it long-polls getUpdates).",
    no_args_is_help=True,
)
oa_app = typer.Typer(help="The Zalo Official Account.", no_args_is_help=True)
oa_token_app = typer.Typer(help="The OA's API tokens.", no_args_is_help=True)
zalo_app.add_typer(oa_app, name="oa")
oa_app.add_typer(oa_token_app, name="token")
zalo_app.add_typer(bot_app, name="bot")
bot_app.add_typer(bot_webhook_app, name="webhook")
console = Console()


def _bot_settings() -> Settings:
    """Settings with a Zalo bot token, or a readable refusal."""
    from tinbao.cli import load_settings

    settings = load_settings()
    if not settings.zalo_bot_enabled:
        console.print("[red]TINBAO_ZALO_BOT_TOKEN is not set:[/red] there is no Zalo bot here.")
        raise typer.Exit(2)
    return settings


def bot_webhook_url(settings: Settings) -> str:
    """Where the platform posts updates: TINBAO_PUBLIC_URL + /zalo/bot/webhook."""
    from bot.channels.zalo_bot.channel import PATH

    return settings.public_url.rstrip("/") + PATH


def _with_client(settings: Settings, call: Callable[[Any], Awaitable[Any]]) -> Any:
    """Run one call with a Zalo Bot client."""
    import httpx

    from bot.channels.zalo_bot.client import ZaloBotApiError, ZaloBotClient

    async def run() -> Any:
        async with httpx.AsyncClient(timeout=30) as http:
            client = ZaloBotClient(
                settings.zalo_bot_token.get_secret_value(),
                base_url=settings.zalo_bot_api_url,
                http=http,
            )
            return await call(client)

    try:
        return asyncio.run(run())
    except (ZaloBotApiError, httpx.HTTPError) as error:
        console.print(f"[red]the Zalo Bot API refused:[/red] {error}")
        raise typer.Exit(1) from None


@bot_webhook_app.command("set")
def bot_webhook_set() -> None:
    """Register TINBAO_PUBLIC_URL/zalo/bot/webhook with TINBAO_ZALO_BOT_WEBHOOK_SECRET."""
    settings = _bot_settings()
    schemes = ("https://",) if settings.mode == "production" else ("https://", "http://")
    if not settings.public_url.startswith(schemes):
        console.print("[red]TINBAO_PUBLIC_URL must be an https:// address.[/red]")
        raise typer.Exit(2)
    secret = settings.zalo_bot_webhook_secret.get_secret_value()
    if not secret:
        console.print("[red]TINBAO_ZALO_BOT_WEBHOOK_SECRET is not set.[/red]")
        raise typer.Exit(2)
    url = bot_webhook_url(settings)
    _with_client(settings, lambda client: client.set_webhook(url, secret))
    console.print(f"Zalo Bot webhook set: {url}")


@bot_webhook_app.command("delete")
def bot_webhook_delete() -> None:
    """Remove the webhook (the bot then long-polls getUpdates; unset the secret too)."""
    settings = _bot_settings()
    _with_client(settings, lambda client: client.delete_webhook())
    console.print("Zalo Bot webhook deleted")


@bot_webhook_app.command("info")
def bot_webhook_info() -> None:
    """Show the platform's view of the webhook."""
    settings = _bot_settings()
    info = _with_client(settings, lambda client: client.get_webhook_info())
    console.print_json(json.dumps(info))


def _oa_settings() -> Settings:
    """Settings with the OA's app id and secrets, or a readable refusal."""
    from tinbao.cli import load_settings

    settings = load_settings()
    if not settings.zalo_oa_enabled:
        console.print(
            "[red]The Zalo OA is not configured:[/red] set TINBAO_ZALO_OA_APP_ID, "
            "TINBAO_ZALO_OA_SECRET_KEY and TINBAO_ZALO_APP_SECRET."
        )
        raise typer.Exit(2)
    return settings


def _with_tokens(settings: Settings, call: Callable[[Any], Awaitable[Any]]) -> Any:
    """Run one call with the OA's token store."""
    import httpx

    from bot.channels.zalo_oa.client import ZaloOaApiError, ZaloOaClient
    from bot.channels.zalo_oa.tokens import TokenStore
    from bot.services.anonymity import Keyring
    from storage.db import Database

    async def run() -> Any:
        db = Database(settings.database_url)
        try:
            async with httpx.AsyncClient(timeout=30) as http:
                client = ZaloOaClient(
                    app_id=settings.zalo_oa_app_id,
                    app_secret=settings.zalo_app_secret.get_secret_value(),
                    api_url=settings.zalo_oa_api_url,
                    oauth_url=settings.zalo_oauth_url,
                    http=http,
                )
                store = TokenStore(db=db, keyring=Keyring.from_settings(settings), client=client)
                return await call(store)
        finally:
            await db.dispose()

    try:
        return asyncio.run(run())
    except (ZaloOaApiError, httpx.HTTPError) as error:
        console.print(f"[red]Zalo refused:[/red] {error}")
        raise typer.Exit(1) from None


def _show_status(status: Any) -> None:
    """Print a token status (never a token)."""
    if not status.configured:
        console.print("no OA token stored: run `tinbao zalo oa token set REFRESH_TOKEN`")
        return
    console.print(f"state: {status.state}")
    console.print(f"access token expires: {status.access_expires_at:%Y-%m-%d %H:%M} UTC")
    console.print(f"last refreshed: {status.refreshed_at:%Y-%m-%d %H:%M} UTC")
    if status.last_error:
        console.print(f"last error: {status.last_error}")


@oa_token_app.command("set")
def oa_token_set(
    refresh_token: str = typer.Argument(..., help="A refresh token from the OA's API explorer."),
) -> None:
    """Store the OA's tokens: trades REFRESH_TOKEN for a fresh pair at once and keeps both."""
    settings = _oa_settings()
    status = _with_tokens(settings, lambda store: store.set_refresh_token(refresh_token.strip()))
    console.print("OA tokens stored.")
    _show_status(status)


@oa_app.command("status")
def oa_status() -> None:
    """The OA tokens' state: expiry, last refresh, and whether an operator must re-authorize."""
    settings = _oa_settings()
    _show_status(_with_tokens(settings, lambda store: store.status()))
