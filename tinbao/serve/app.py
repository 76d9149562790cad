"""The ASGI app of `tinbao serve`: health, readiness, metrics, and the hosted components.

Start-up order: database services, the leader-elected maintenance (deadlines, retention: they
need no messenger), then each component whose credentials are set (Telegram today; Zalo and
the console plug in through `default_components`). Shutdown runs the other way round, after
uvicorn has stopped taking requests and finished those in flight, so updates already answered
with 200 are handled before the process exits.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import datetime

from prometheus_client import REGISTRY, CollectorRegistry, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import BaseRoute, Route

from bot.channels.outbound import Outbound
from bot.context import Services
from scheduler.maintenance import MaintenanceRuntime
from storage.types import utcnow
from tinbao.serve.component import Component
from tinbao.serve.figures import FiguresCollector, read_figures
from tinbao.serve.outbox import OutboxComponent
from tinbao.serve.outreach import OutreachComponent
from tinbao.serve.readiness import Readiness
from tinbao.settings import Settings

log = logging.getLogger(__name__)


@dataclass
class ServeState:
    """What the routes need to know about this instance."""

    services: Services
    components: list[Component]
    maintenance: MaintenanceRuntime | None = None
    draining: bool = False
    started: float = field(default_factory=time.monotonic)

    def leaders(self) -> dict[str, bool]:
        """Every leader duty this instance takes part in, and whether it holds it."""
        duties: dict[str, bool] = {}
        if self.maintenance is not None:
            duties["maintenance"] = self.maintenance.is_leader
        for component in self.components:
            duties.update(component.leaders())
        return duties


def default_components(
    services: Services, draining: Callable[[], bool] = lambda: False
) -> list[Component]:
    """The components whose credentials are set: a channel without them does not exist here.

    The outbox sender and outreach come first, so they stop last: the channels' final updates
    may still queue messages they send on the way out. The console needs no credentials: it is
    there unless TINBAO_CONSOLE_ENABLED=false.
    """
    settings = services.settings
    channels: list[Component] = []
    outbounds: dict[str, Outbound] = {}
    if settings.telegram_enabled:
        from bot.channels.telegram.outbound import TelegramOutbound
        from bot.channels.telegram.webhook import TelegramWebhook

        telegram = TelegramWebhook(services)
        channels.append(telegram)
        outbounds[telegram.name] = TelegramOutbound(telegram.running_bot)
    if settings.zalo_oa_enabled:
        from bot.channels.zalo_oa.channel import ZaloOaChannel

        zalo_oa = ZaloOaChannel(services)
        channels.append(zalo_oa)
        outbounds[zalo_oa.name] = zalo_oa.outbound
    if settings.zalo_bot_enabled:
        from bot.channels.zalo_bot.channel import ZaloBotChannel

        zalo_bot = ZaloBotChannel(services)
        channels.append(zalo_bot)
        outbounds[zalo_bot.name] = zalo_bot.outbound
    if settings.console_enabled:
        from web.component import ConsoleComponent

        channels.append(ConsoleComponent(services, draining=draining))
    hosted: list[Component] = [OutboxComponent(services, outbounds)]
    if outbounds:
        hosted.append(OutreachComponent(services))
    return [*hosted, *channels]


def create_app(
    settings: Settings,
    *,
    services: Services | None = None,
    components: Callable[[Services, Callable[[], bool]], Sequence[Component]] = default_components,
    clock: Callable[[], datetime] = utcnow,
) -> Starlette:
    """Build the ASGI app (the database must be migrated: `tinbao db upgrade`)."""
    from bot.app import build_services, make_maintenance

    services = services or build_services(settings, clock=clock)
    state = ServeState(services=services, components=[])
    state.components = list(components(services, lambda: state.draining))
    readiness = Readiness(state)

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        """Start maintenance and the components; stop them the other way round."""
        state.maintenance = make_maintenance(services)
        services.maintenance = state.maintenance
        await state.maintenance.start()
        for component in state.components:
            await component.start()
        hosted = (OutboxComponent, OutreachComponent)
        names = [c.name for c in state.components if not isinstance(c, hosted)]
        channels = [name for name in names if name != "console"]
        console = "on" if "console" in names else "off"
        log.info("serving; channels: %s; console %s", ", ".join(channels or ["none"]), console)
        try:
            yield
        finally:
            state.draining = True
            for component in reversed(state.components):
                try:
                    await component.stop()
                except Exception:
                    log.exception("stopping %s failed", component.name)
            await state.maintenance.stop()
            await services.db.dispose()
            log.info("stopped")

    async def healthz(request: Request) -> Response:
        """The process is up and its event loop answers."""
        return PlainTextResponse("ok\n")

    async def readyz(request: Request) -> Response:
        """200 when this instance can take traffic, 503 with the reasons otherwise."""
        report = await readiness.check()
        return JSONResponse(report.body(), status_code=200 if report.ok else 503)

    async def metrics(request: Request) -> Response:
        """Prometheus text: this process's counters, then the database's figures."""
        text = generate_latest(_process_registry())
        registry = CollectorRegistry(auto_describe=False)
        try:
            figures = await asyncio.wait_for(read_figures(services.db, now=clock()), 5.0)
        except Exception:  # the database away: the process counters still say something
            log.warning("metrics: database figures unavailable", exc_info=True)
        else:
            registry.register(FiguresCollector(figures, state.leaders()))
            text += generate_latest(registry)
        return Response(text, media_type=CONTENT_TYPE_LATEST)

    routes: list[BaseRoute] = [
        Route("/healthz", healthz, methods=["GET"]),
        Route("/readyz", readyz, methods=["GET"]),
        Route("/metrics", metrics, methods=["GET"]),
    ]
    for component in state.components:
        routes.extend(component.routes)
    app = Starlette(routes=routes, lifespan=lifespan)
    app.state.tinbao = state
    return app


def _process_registry() -> CollectorRegistry:
    """This process's counters, or every worker's when uvicorn runs several."""
    if not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        return REGISTRY
    from prometheus_client import multiprocess

    registry = CollectorRegistry()
    multiprocess.MultiProcessCollector(registry)
    return registry


def app_from_environment() -> Starlette:
    """Factory for uvicorn's `--factory` (used with several workers): settings from the env."""
    from tinbao import logs

    settings = Settings()
    logs.configure(log_format=settings.log_format, secrets=settings.log_secrets())
    return create_app(settings)
