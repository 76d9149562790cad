"""The web console as a `tinbao serve` component, mounted at /console.

It needs no messenger: with no channel configured at all it still serves the police (tips
then come only from the channels of other instances). Its routes are a Starlette app of their
own, so its state, errors and static files stay apart from the webhooks'.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime, timedelta
from pathlib import Path

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles

from bot.context import Services
from storage.types import utcnow
from tinbao.serve.component import Health
from web import (
    live,
    routes_auth,
    routes_inbox,
    routes_outreach,
    routes_outreach_sessions,
    routes_stats,
    sessions,
)
from web.accounts import LoginPolicy
from web.guard import ConsoleState

NAME = "console"
ROOT = "/console"
STATIC = Path(__file__).parent / "static"


def policy_from(services: Services) -> LoginPolicy:
    """The login throttle and session limits from the settings."""
    settings = services.settings
    return LoginPolicy(
        max_failures=settings.console_max_failures,
        lockout=timedelta(minutes=settings.console_lockout_minutes),
        address_attempts=settings.console_address_attempts,
        timeouts=sessions.Timeouts(
            idle=timedelta(minutes=settings.console_idle_minutes),
            absolute=timedelta(hours=settings.console_session_hours),
        ),
    )


def console_app(
    services: Services,
    *,
    draining: Callable[[], bool] = lambda: False,
    clock: Callable[[], datetime] = utcnow,
) -> Starlette:
    """The console's ASGI app (mounted at ROOT)."""

    async def home(request: Request) -> Response:
        """The console's root: the inbox, or the broadcasts for outreach staff (the inbox
        redirects them; the guard sends strangers to the login page)."""
        return RedirectResponse(ROOT + "/tips", 303)

    routes: list[BaseRoute] = [
        Route("/", home, methods=["GET"]),
        Route("/login", routes_auth.login, methods=["GET", "POST"]),
        Route("/join", routes_auth.join, methods=["GET", "POST"]),
        Route("/enroll", routes_auth.enroll, methods=["GET", "POST"]),
        Route("/logout", routes_auth.logout, methods=["POST"]),
        Route("/logout-everywhere", routes_auth.logout_everywhere, methods=["POST"]),
        Route("/language", routes_auth.language, methods=["GET"]),
        Route("/tips", routes_inbox.tip_list, methods=["GET"]),
        Route("/tips/{tip_id:int}", routes_inbox.tip_page, methods=["GET"]),
        Route("/tips/{tip_id:int}/action", routes_inbox.tip_action, methods=["POST"]),
        Route("/tips/{tip_id:int}/reply", routes_inbox.tip_reply, methods=["POST"]),
        Route("/tips/{tip_id:int}/notes", routes_inbox.tip_note, methods=["POST"]),
        Route("/tips/{tip_id:int}/move", routes_inbox.move_choices, methods=["GET"]),
        Route("/tips/{tip_id:int}/files/{file_id:int}", routes_inbox.tip_file, methods=["GET"]),
        Route("/events", live.events, methods=["GET"]),
        Route("/stats", routes_stats.stats_page, methods=["GET"]),
        Route("/stats/report.{fmt}", routes_stats.report_file, methods=["GET"]),
        Route("/outreach", routes_outreach.calendar, methods=["GET"]),
        Route("/outreach/new", routes_outreach.compose, methods=["GET", "POST"]),
        Route("/outreach/preview", routes_outreach.preview, methods=["POST"]),
        Route("/outreach/communes", routes_outreach.commune_options, methods=["GET"]),
        Route("/outreach/{broadcast_id:int}", routes_outreach.broadcast_page, methods=["GET"]),
        Route("/outreach/{broadcast_id:int}/state", routes_outreach.change_state, methods=["POST"]),
        Route("/campaigns", routes_outreach.campaigns, methods=["GET", "POST"]),
        Route("/sessions", routes_outreach_sessions.sessions_page, methods=["GET", "POST"]),
        Route(
            "/sessions/{session_id:int}", routes_outreach_sessions.session_change, methods=["POST"]
        ),
        Route("/campaigns/{campaign_id:int}/close", routes_outreach.close, methods=["POST"]),
        Mount("/static", app=StaticFiles(directory=STATIC), name="static"),
    ]
    app = Starlette(routes=routes)
    app.state.console = ConsoleState(
        services=services,
        root=ROOT,
        default_locale=services.settings.default_locale,
        timezone=services.settings.timezone,
        policy=policy_from(services),
        clock=clock,
        draining=draining,
    )
    return app


class ConsoleComponent:
    """Serves the console; keeps the session table short (ended sessions are deleted)."""

    name = NAME

    def __init__(
        self,
        services: Services,
        *,
        draining: Callable[[], bool],
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self.services = services
        self.app = console_app(services, draining=draining, clock=clock)

    @property
    def routes(self) -> Sequence[BaseRoute]:
        """Everything under /console."""
        return [Mount(ROOT, app=self.app)]

    async def start(self) -> None:
        """Nothing runs in the background (ended sessions go with maintenance)."""

    async def drain(self) -> None:
        """Live streams end by themselves once the instance drains."""

    async def stop(self) -> None:
        """Nothing to stop."""

    def health(self) -> Health:
        """Always ready when the database is (readiness checks that)."""
        return Health(True)

    def leaders(self) -> dict[str, bool]:
        """No leader duty."""
        return {}
