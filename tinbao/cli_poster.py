"""`tinbao poster`: a printable A4 poster with QR codes, as PDF or PNG: a commune's tip line
(`--commune`) or an outreach session's check-in (`--session`)."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from bot.content.catalog import hotlines
from bot.i18n import Translator, translator
from bot.services.poster import (
    NoLinksError,
    PosterLinks,
    PosterSpec,
    commune_poster_spec,
    poster_format,
    render_poster,
    session_poster_spec,
)
from storage.communes import CommuneChoice, get_commune
from storage.db import Database
from storage.models import OutreachSession
from tinbao.settings import TELEGRAM_USERNAME_PATTERN, Settings, is_web_link

console = Console()


async def _commune(url: str, code: int) -> CommuneChoice | None:
    """The commune and its province from the configured database."""
    db = Database(url)
    try:
        async with db.session() as session:
            return await get_commune(session, code)
    finally:
        await db.dispose()


async def _session(
    url: str, session_id: int
) -> tuple[OutreachSession, CommuneChoice | None] | None:
    """An outreach session and its commune, None when there is no such (live) session."""
    db = Database(url)
    try:
        async with db.session() as session:
            outreach = await session.get(OutreachSession, session_id)
            if outreach is None or outreach.cancelled_at is not None:
                return None
            return outreach, await get_commune(session, outreach.commune_code)
    finally:
        await db.dispose()


def _session_spec(
    url: str, session_id: int, links: PosterLinks, t: Translator
) -> tuple[PosterSpec, str]:
    """The check-in poster of a session, and what to print about it."""
    found = asyncio.run(_session(url, session_id))
    if found is None:
        console.print(f"[red]no outreach session #{session_id}[/red] (or it was cancelled)")
        raise typer.Exit(2)
    outreach, commune = found
    where = commune.name if commune else str(outreach.commune_code)
    spec = session_poster_spec(
        outreach.title, outreach.place, t.datetime(outreach.starts_at), where, session_id, links, t
    )
    return spec, f"session #{session_id}, {where}"


def _links(
    settings: Settings, username: str | None, oa_link: str | None, bot_link: str | None
) -> PosterLinks:
    """Settings overridden by the options, checked the way the settings are checked."""
    # People copy the username as Telegram shows it, with the "@".
    name = (settings.telegram_bot_username if username is None else username).lstrip("@")
    if name and not TELEGRAM_USERNAME_PATTERN.fullmatch(name):
        raise typer.BadParameter(
            f"{name!r} is not a Telegram username (5-32 of A-Z, a-z, 0-9 and _)",
            param_hint="--telegram-username",
        )
    oa = settings.zalo_oa_link if oa_link is None else oa_link
    bot = settings.zalo_bot_link if bot_link is None else bot_link
    for option, url in (("--zalo-oa-link", oa), ("--zalo-bot-link", bot)):
        if url and not is_web_link(url):
            raise typer.BadParameter(f"{url!r} is not an http(s) URL", param_hint=option)
    return PosterLinks(telegram_username=name, zalo_oa_link=oa, zalo_bot_link=bot)


def poster(
    commune: Annotated[
        int | None,
        typer.Option(help="The commune's code (`tinbao communes search NAME` shows it)."),
    ] = None,
    session: Annotated[
        int | None, typer.Option(help="An outreach session's number (/sessions shows it).")
    ] = None,
    out: Annotated[Path, typer.Option(help="The file to write: .pdf or .png.")] = Path(
        "poster.pdf"
    ),
    phone: Annotated[
        str | None, typer.Option(help="The commune police's phone number, printed on it.")
    ] = None,
    telegram_username: Annotated[
        str | None, typer.Option(help="The bot's username [TINBAO_TELEGRAM_BOT_USERNAME].")
    ] = None,
    zalo_oa_link: Annotated[
        str | None, typer.Option(help="The Zalo OA's link [TINBAO_ZALO_OA_LINK].")
    ] = None,
    zalo_bot_link: Annotated[
        str | None, typer.Option(help="The Zalo bot's link [TINBAO_ZALO_BOT_LINK].")
    ] = None,
    locale: Annotated[str, typer.Option(help="Language of the poster: vi or en.")] = "vi",
) -> None:
    """Write a commune's tip-line poster or a session's check-in poster (A4, 300 dpi), with a
    QR code per messenger."""
    from tinbao.cli import load_settings

    if (commune is None) == (session is None):
        raise typer.BadParameter("give exactly one of --commune or --session")

    try:
        fmt = poster_format(out)
    except ValueError as error:
        raise typer.BadParameter(str(error), param_hint="--out") from error
    if not out.parent.is_dir():
        raise typer.BadParameter(f"{out.parent} is not a directory", param_hint="--out")
    settings = load_settings()
    links = _links(settings, telegram_username, zalo_oa_link, zalo_bot_link)
    t = translator(locale, settings.timezone)
    try:
        if session is not None:
            spec, label = _session_spec(settings.database_url, session, links, t)
        else:
            assert commune is not None
            spec, label = _commune_spec(settings.database_url, commune, links, t, phone)
    except NoLinksError as error:
        console.print(
            f"[red]{error}[/red]: set TINBAO_TELEGRAM_BOT_USERNAME, TINBAO_ZALO_OA_LINK or "
            "TINBAO_ZALO_BOT_LINK, or pass --telegram-username, --zalo-oa-link or --zalo-bot-link"
        )
        raise typer.Exit(2) from error
    render_poster(spec, out, fmt)
    console.print(f"wrote [bold]{out}[/bold] ({label}, {len(spec.targets)} QR codes)")


def _commune_spec(
    url: str, code: int, links: PosterLinks, t: Translator, phone: str | None
) -> tuple[PosterSpec, str]:
    """The tip-line poster of a commune, and what to print about it."""
    choice = asyncio.run(_commune(url, code))
    if choice is None:
        console.print(
            f"[red]no commune with code {code}[/red] "
            "(find it with `tinbao communes search NAME`; load them with `tinbao communes sync`)"
        )
        raise typer.Exit(2)
    spec = commune_poster_spec(
        choice.name, choice.province_name, choice.code, links, t, hotlines(), phone
    )
    return spec, choice.label
