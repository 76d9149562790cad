"""Jinja2 templates in the reader's locale: gettext from the bot's catalogs, autoescaped."""

from __future__ import annotations

from datetime import datetime
from functools import cache
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from jinja2 import Environment, FileSystemLoader, select_autoescape
from starlette.requests import Request
from starlette.responses import HTMLResponse

from bot.i18n import SUPPORTED_LOCALES, Translator, translator
from bot.services.authorization import Action, may

TEMPLATES = Path(__file__).parent / "templates"
LOCALE_COOKIE = "tinbao_lang"


@cache
def environment(locale: str, timezone: str) -> Environment:
    """One environment per locale (translations are installed on it, never global)."""
    t = translator(locale, timezone)
    env = Environment(
        loader=FileSystemLoader(TEMPLATES),
        autoescape=select_autoescape(("html",)),
        extensions=["jinja2.ext.i18n"],
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.install_gettext_callables(t.gettext, t.ngettext, newstyle=True)  # type: ignore[attr-defined]
    env.filters["when"] = lambda value: t.datetime(value) if isinstance(value, datetime) else ""
    env.filters["number"] = t.number
    zone = ZoneInfo(timezone)
    env.filters["clock"] = lambda value: (
        value.astimezone(zone).strftime("%H:%M") if isinstance(value, datetime) else ""
    )
    env.globals["locale"] = t.locale
    return env


def locale_of(request: Request, default: str) -> str:
    """The reader's language: the cookie they chose, else the deployment's default."""
    chosen = request.cookies.get(LOCALE_COOKIE, "")
    return chosen if chosen in SUPPORTED_LOCALES else default


def translator_for(request: Request) -> Translator:
    """A translator in the reader's language."""
    console = request.app.state.console
    return translator(locale_of(request, console.default_locale), console.timezone)


def page(
    request: Request, name: str, context: dict[str, Any], *, status_code: int = 200
) -> HTMLResponse:
    """Render a template in the reader's locale; never cached (pages show tip content)."""
    console = request.app.state.console
    env = environment(locale_of(request, console.default_locale), console.timezone)
    current = getattr(request.state, "current", None)
    staff = current.staff if current else None
    body = env.get_template(name).render(
        request=request,
        current=current,
        can={
            "tips": may(staff, Action.TIP),
            "outreach": may(staff, Action.OUTREACH),
            "sessions": may(staff, Action.SESSION),
        },
        csrf=current.row.csrf_token if current else request.state.pre_csrf,
        root=console.root,
        **context,
    )
    response = HTMLResponse(body, status_code=status_code)
    response.headers["Cache-Control"] = "no-store"
    return response
