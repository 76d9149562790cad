"""The Emulator: wires bots, Bot API and control API into one Starlette app and serves it."""

from __future__ import annotations

import contextlib
import hmac
import time
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager
from pathlib import Path
from typing import Any

import httpx
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from sandbox import serving
from sandbox.access import TOKEN_COOKIE, TOKEN_HEADER, UNLOCK_PATH, ControlTokenMiddleware
from sandbox.botapi import BotApi, json_response
from sandbox.control import ControlApi
from sandbox.limits import EmulatorLimits, RateLimiter
from sandbox.sending import Sender
from sandbox.state import BotState
from sandbox.webhook import WebhookOptions

__all__ = ["Emulator", "EmulatorLimits", "RunningEmulator", "WebhookOptions", "run"]

# The browser demo page (three phones over the control API), served under /web.
WEB_DIR = Path(__file__).with_name("web")


class Emulator:
    """An offline Telegram Bot API server for one or more bots.

    All state lives in the serving event loop; add bots before starting the server.
    """

    def __init__(
        self,
        *,
        limits: EmulatorLimits | None = None,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], float] = time.time,
        strict_html: bool = True,
        webhook: WebhookOptions | None = None,
        control_token: str | None = None,
    ) -> None:
        self.limits = limits if limits is not None else EmulatorLimits()
        self.limiter = RateLimiter(self.limits, clock)
        self.wall_clock = wall_clock
        self.bots: dict[str, BotState] = {}
        self._webhook_options = webhook or WebhookOptions()
        self._http: httpx.AsyncClient | None = None
        self.sender = Sender(self.limiter, strict_html=strict_html)
        self._botapi = BotApi(self.bots, self.sender, self._http_client, self._webhook_options)
        self._control = ControlApi(self.bots, self.reset)
        self.control_token = control_token
        self._app: Starlette | None = None
        # What the demo page shows (phones, places); served as /web/config.json.
        self.web_config: dict[str, Any] = {}
        self._mounts: list[Mount] = []

    def mount(self, path: str, app: Any) -> None:
        """Serve another app under `path` (the demo's Zalo OA emulator: one origin for the page)."""
        if self._app is not None:
            raise RuntimeError("mount apps before the emulator's app is built")
        self._mounts.append(Mount(path, app=app))

    def add_bot(self, token: str, *, username: str, first_name: str | None = None) -> BotState:
        """Register a bot; its id is the number before the colon of its token."""
        bot_id, sep, secret = token.partition(":")
        if not sep or not bot_id.isdigit() or not secret:
            raise ValueError(f"not a bot token: {token!r} (expected '<digits>:<secret>')")
        bot = BotState(
            token, int(bot_id), username.lstrip("@"), first_name or username, self.wall_clock
        )
        self.bots[token] = bot
        return bot

    def bot(self, name: str | None = None) -> BotState:
        """Return a bot by token or username (the first bot when name is None)."""
        if name is None:
            return next(iter(self.bots.values()))
        if name in self.bots:
            return self.bots[name]
        for bot in self.bots.values():
            if bot.username == name.lstrip("@"):
                return bot
        raise KeyError(name)

    def reset(self) -> None:
        """Clear all chats, files, updates, callbacks, counters and flood buckets."""
        for bot in self.bots.values():
            bot.reset()
        self.limiter.reset()

    async def _unlock(self, request: Request) -> Response:
        """/web/unlock?token=T: the browser demo page's way in when a control token is set."""
        token = request.query_params.get("token", "")
        if self.control_token and not hmac.compare_digest(
            token.encode(), self.control_token.encode()
        ):
            return json_response({"ok": False, "error": "wrong control token"}, 401)
        response = RedirectResponse("/web/", 303)
        if self.control_token:
            response.set_cookie(TOKEN_COOKIE, token, httponly=True, samesite="strict")
        return response

    @property
    def app(self) -> Starlette:
        """Return the ASGI app (also usable with httpx.ASGITransport, without a server)."""
        if self._app is None:
            routes = [
                Route("/", self._index, methods=["GET"]),
                *self._botapi.routes(),
                *self._control.routes(),
                *self._mounts,
                Route("/web/config.json", self._web_config, methods=["GET"]),
                Route(UNLOCK_PATH, self._unlock, methods=["GET"]),
                Mount("/web", StaticFiles(directory=WEB_DIR, html=True), name="web"),
            ]
            middleware = (
                [Middleware(ControlTokenMiddleware, token=self.control_token)]
                if self.control_token
                else []
            )
            self._app = Starlette(routes=routes, lifespan=self._lifespan, middleware=middleware)
        return self._app

    async def _index(self, request: Request) -> Response:
        names = [bot.username for bot in self.bots.values()]
        return json_response({"ok": True, "emulator": "tinbao sandbox", "bots": names})

    async def _web_config(self, request: Request) -> Response:
        """The demo page's configuration (empty when no demo set one)."""
        return json_response({"ok": True, **self.web_config})

    def _http_client(self) -> httpx.AsyncClient:
        # Created on first use inside the serving loop; webhook receivers run locally.
        if self._http is None:
            self._http = httpx.AsyncClient(timeout=self._webhook_options.timeout)
        return self._http

    @contextlib.asynccontextmanager
    async def _lifespan(self, app: Starlette) -> AsyncIterator[None]:
        for bot in self.bots.values():
            bot.reopen()
        try:
            yield
        finally:
            await self._shutdown()

    def release_waiters(self) -> None:
        """End long polls, waits and event streams so the server can stop promptly."""
        for bot in self.bots.values():
            bot.wake_all()

    async def _shutdown(self) -> None:
        self.release_waiters()
        for bot in self.bots.values():
            if bot.webhook is not None:
                await bot.webhook.stop()
        if self._http is not None:
            await self._http.aclose()
            self._http = None

    def start_in_thread(self, host: str = "127.0.0.1", port: int = 0) -> RunningEmulator:
        """Serve in a daemon thread with its own event loop; returns once accepting."""
        return serving.start_in_thread(self, self.app, self.release_waiters, host, port)

    def serving(self, host: str = "127.0.0.1", port: int = 0) -> AbstractAsyncContextManager[str]:
        """Serve inside the running event loop; yields the base URL."""
        return serving.serving(self.app, self.release_waiters, host, port)


RunningEmulator = serving.RunningServer
bind_socket = serving.bind_socket


def run(
    host: str = "127.0.0.1",
    port: int = 8081,
    token: str = "123456:TEST",
    limits_on: bool = True,
    username: str = "tinbao_bot",
    control_token: str | None = None,
) -> None:
    """Serve the emulator in the foreground until interrupted (`tinbao emulator`)."""
    emulator = Emulator(
        limits=EmulatorLimits() if limits_on else EmulatorLimits.off(),
        control_token=control_token,
    )
    emulator.add_bot(token, username=username, first_name=username)
    sock = bind_socket(host, port)
    url = serving.url_of(host, sock)
    print(f"Telegram Bot API emulator listening on {url}", flush=True)
    print(f"  bot token: {token}  (@{username})", flush=True)
    print(f"  Bot API:   {url}/bot{token}/getMe", flush=True)
    print(f"  control:   {url}/control/bot", flush=True)
    if control_token:
        print(f"  control token ({TOKEN_HEADER} header): {control_token}", flush=True)
    print(f"  limits:    {'Telegram-like' if limits_on else 'off'}", flush=True)
    serving.make_server(emulator.app).run(sockets=[sock])
