"""What the two Zalo emulators share: serving, chats with a transcript and waits, faults, params."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import time
from abc import ABC, abstractmethod
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from sandbox import serving


def zalo_id(seed: str) -> str:
    """A 20-hex-character id like Zalo's, stable for a seed."""
    return hashlib.sha256(seed.encode()).hexdigest()[:20]


@dataclass
class Fault:
    """Answer the next `times` calls of `method` with an error."""

    method: str
    error_code: int
    description: str
    times: int = 1
    retry_after: int | None = None  # sent as parameters.retry_after (a 429's wait)


def take_fault(faults: list[Fault], method: str) -> Fault | None:
    """The armed fault for `method` now, if any (one use of it is spent)."""
    for fault in faults:
        if fault.method in (method, "*") and fault.times > 0:
            fault.times -= 1
            return fault
    return None


@dataclass
class ZaloChat:
    """One private chat: a citizen and what both sides sent."""

    id: str
    user_id: str
    display_name: str
    chat_type: str = "PRIVATE"
    blocked: bool = False
    last_user_message_at: float = field(default_factory=time.time)
    messages: list[dict[str, Any]] = field(default_factory=list)
    waiter: asyncio.Event = field(default_factory=asyncio.Event)

    def bot_messages(self) -> list[dict[str, Any]]:
        """What the bot (or OA) sent here."""
        return [m for m in self.messages if m["from"] == "bot"]


async def params_of(request: Request) -> dict[str, Any]:
    """JSON body, form body or query string, as the platforms take all three."""
    params: dict[str, Any] = dict(request.query_params)
    if request.method == "POST":
        content_type = request.headers.get("content-type", "")
        if "multipart/form-data" in content_type or "urlencoded" in content_type:
            form = await request.form()
            params.update({key: value for key, value in form.items()})
            return params
        raw = await request.body()
        if raw:
            with contextlib.suppress(ValueError):
                loaded = json.loads(raw)
                if isinstance(loaded, dict):
                    params.update(loaded)
    return params


def record_bot_message(chat: ZaloChat, message_id: str, entry: dict[str, Any]) -> None:
    """Keep what the bot sent and wake whoever waits for it."""
    chat.messages.append(
        {"from": "bot", "message_id": message_id, "date": int(time.time() * 1000), **entry}
    )
    chat.waiter.set()


class ZaloEmulatorBase(ABC):
    """Serving and the chat part of the control API, shared by the two Zalo emulators."""

    url: str
    clock: Callable[[], float]

    @property
    @abstractmethod
    def app(self) -> Starlette:
        """The emulator's ASGI app."""

    @abstractmethod
    def release_waiters(self) -> None:
        """End long polls and waits so the server can stop promptly."""

    @abstractmethod
    def chats(self) -> dict[str, ZaloChat]:
        """The chats the control API reads, by id."""

    def start_in_thread(self, host: str = "127.0.0.1", port: int = 0) -> serving.RunningServer:
        """Serve in a background thread; returns once accepting."""
        running = serving.start_in_thread(self, self.app, self.release_waiters, host, port)
        self.url = running.url
        return running

    @contextlib.asynccontextmanager
    async def serving(self, host: str = "127.0.0.1", port: int = 0) -> AsyncIterator[str]:
        """Serve inside the running loop; yields the base URL (file links point at it)."""
        async with serving.serving(self.app, self.release_waiters, host, port) as url:
            self.url = url
            yield url

    def chat_routes(self) -> list[Route]:
        """GET /control/chats/{chat_id}/messages and .../wait."""
        return [
            Route("/control/chats/{chat_id}/messages", self._control_chat, methods=["GET"]),
            Route("/control/chats/{chat_id}/wait", self._control_wait, methods=["GET"]),
        ]

    async def _control_chat(self, request: Request) -> Response:
        """Both sides of a chat."""
        chat = self.chats().get(request.path_params["chat_id"])
        if chat is None:
            return JSONResponse({"ok": False, "description": "no such chat"}, status_code=404)
        return JSONResponse({"ok": True, "messages": chat.messages})

    async def _control_wait(self, request: Request) -> Response:
        """Until the bot sent `count` messages in the chat (or `timeout` passed)."""
        chat_id = request.path_params["chat_id"]
        count = int(request.query_params.get("count", "1"))
        deadline = self.clock() + float(request.query_params.get("timeout", "10"))
        while True:
            chat = self.chats().get(chat_id)
            sent = chat.bot_messages() if chat else []
            remaining = deadline - self.clock()
            if len(sent) >= count or remaining <= 0 or chat is None:
                return JSONResponse({"ok": len(sent) >= count, "messages": sent})
            chat.waiter.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(chat.waiter.wait(), remaining)
