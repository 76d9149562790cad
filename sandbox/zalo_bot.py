"""An offline Zalo Bot Platform API (bot-api.zaloplatforms.com) for tests, benches and the demo.

It follows the documented request and answer shapes: `/bot<TOKEN>/<method>` answering
`{"ok": true, "result": ...}` or `{"ok": false, "error_code": N, "description": ...}`; getUpdates
long-polls and answers 408 when nothing came; setWebhook takes a URL and an 8-256 character
secret that comes back as `X-Bot-Api-Secret-Token` on every delivery; sendMessage takes 1-2,000
characters. Where the documentation is silent the emulator decides, and says so: a per-bot send
quota answering 429, 403 for a user who blocked the bot, 400 for an unknown chat, and webhook
retries (after `retry_delay`, 2 s like Zalo OA) until the receiver answers 2xx.

The control API (`/control/...`, the Telegram emulator's style) plays the citizens: send a text,
an image, a sticker or an unsupported message; read a chat; wait for the bot's answers; block;
inject faults; deliver the last update again (a platform retry).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import itertools
import secrets
import time
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import httpx
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from sandbox.webhook import WebhookDispatcher
from sandbox.zalo_common import (
    Fault,
    ZaloChat,
    ZaloEmulatorBase,
    params_of,
    record_bot_message,
    take_fault,
    zalo_id,
)

SECRET_HEADER = "X-Bot-Api-Secret-Token"
MESSAGE_LIMIT = 2000
TEXT = "message.text.received"
IMAGE = "message.image.received"
STICKER = "message.sticker.received"
UNSUPPORTED = "message.unsupported.received"


def _ok(result: Any = True) -> JSONResponse:
    return JSONResponse({"ok": True, "result": result})


def _error(code: int, description: str, retry_after: int | None = None) -> JSONResponse:
    # The platform answers errors with HTTP 200 and ok: false, except for a bad token.
    status = 401 if code == 401 else 200
    body: dict[str, Any] = {"ok": False, "error_code": code, "description": description}
    if retry_after is not None:
        body["parameters"] = {"retry_after": retry_after}
    return JSONResponse(body, status_code=status)


class ZaloBotState:
    """One bot: its chats, pending updates, webhook, quota and faults."""

    def __init__(self, token: str, name: str, send_rate: float | None) -> None:
        self.token = token
        self.id = token.partition(":")[0]
        self.name = name
        self.chats: dict[str, ZaloChat] = {}
        self.updates: deque[dict[str, Any]] = deque()
        self.update_waiter = asyncio.Event()
        self.webhook_url = ""
        self.webhook_secret = ""
        self.webhook: WebhookDispatcher | None = None
        self.last_update: dict[str, Any] | None = None
        self.faults: list[Fault] = []
        self.files: dict[str, bytes] = {}
        self.counters: dict[str, int] = {}
        self.send_rate = send_rate
        self._sent_at: deque[float] = deque()

    def count(self, name: str) -> None:
        """Add one to a counter."""
        self.counters[name] = self.counters.get(name, 0) + 1

    def fault_for(self, method: str) -> Fault | None:
        """The fault to answer `method` with now, if one is armed."""
        return take_fault(self.faults, method)

    def over_quota(self, now: float) -> bool:
        """Whether another send now would exceed the per-second quota."""
        if self.send_rate is None:
            return False
        while self._sent_at and now - self._sent_at[0] >= 1.0:
            self._sent_at.popleft()
        if len(self._sent_at) >= self.send_rate:
            return True
        self._sent_at.append(now)
        return False

    def wake_all(self) -> None:
        """Release long polls and waits."""
        self.update_waiter.set()
        for chat in self.chats.values():
            chat.waiter.set()


class ZaloBotEmulator(ZaloEmulatorBase):
    """The Zalo Bot Platform for one or more bots, with a control API for tests."""

    def __init__(
        self,
        *,
        send_rate: float | None = None,
        retry_delay: float = 2.0,
        wrap_updates: bool = True,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.bots: dict[str, ZaloBotState] = {}
        self.send_rate = send_rate
        self.retry_delay = retry_delay
        self.wrap_updates = wrap_updates
        self.clock = clock
        self.url = ""  # set once serving: image URLs in updates point here
        self._ids = itertools.count(1)
        self._http: httpx.AsyncClient | None = None
        self._app: Starlette | None = None
        self._stopping = False

    def add_bot(self, token: str, *, name: str = "Bot Tin báo") -> ZaloBotState:
        """Register a bot by its token ("<digits>:<secret>")."""
        bot_id, sep, secret = token.partition(":")
        if not sep or not bot_id.isdigit() or not secret:
            raise ValueError(f"not a Zalo bot token: {token!r}")
        self.bots[token] = ZaloBotState(token, name, self.send_rate)
        return self.bots[token]

    def bot(self) -> ZaloBotState:
        """The first bot."""
        return next(iter(self.bots.values()))

    @property
    def app(self) -> Starlette:
        """The ASGI app: Bot API, files and control API."""
        if self._app is None:
            routes = [
                Route("/bot{token}/{method}", self._api, methods=["GET", "POST"]),
                Route("/files/{file_id}", self._file, methods=["GET"]),
                Route("/control/bot", self._control_bot, methods=["GET"]),
                Route("/control/reset", self._control_reset, methods=["POST"]),
                Route("/control/messages", self._control_message, methods=["POST"]),
                Route("/control/redeliver", self._control_redeliver, methods=["POST"]),
                Route("/control/block", self._control_block, methods=["POST"]),
                Route("/control/faults", self._control_fault, methods=["POST", "DELETE"]),
                *self.chat_routes(),
            ]
            self._app = Starlette(routes=routes, lifespan=self._lifespan)
        return self._app

    @contextlib.asynccontextmanager
    async def _lifespan(self, app: Starlette) -> AsyncIterator[None]:
        self._stopping = False
        try:
            yield
        finally:
            self.release_waiters()
            for bot in self.bots.values():
                if bot.webhook is not None:
                    await bot.webhook.stop()
            if self._http is not None:
                await self._http.aclose()

    def release_waiters(self) -> None:
        """End long polls and waits so the server can stop promptly."""
        self._stopping = True
        for bot in self.bots.values():
            bot.wake_all()

    # ---- Bot API -------------------------------------------------------------------------

    async def _api(self, request: Request) -> Response:
        bot = self.bots.get(request.path_params["token"])
        if bot is None:
            return _error(401, "Unauthorized")
        method = request.path_params["method"]
        params = await params_of(request)
        bot.count(method)
        fault = bot.fault_for(method)
        if fault is not None:
            return _error(fault.error_code, fault.description, fault.retry_after)
        handler = self._methods().get(method)
        if handler is None:
            return _error(404, f"Method {method} not found")
        return await handler(bot, params)

    def _methods(self) -> dict[str, Callable[[ZaloBotState, dict[str, Any]], Awaitable[Response]]]:
        return {
            "getMe": self._get_me,
            "getUpdates": self._get_updates,
            "setWebhook": self._set_webhook,
            "deleteWebhook": self._delete_webhook,
            "getWebhookInfo": self._get_webhook_info,
            "sendMessage": self._send_message,
            "sendPhoto": self._send_photo,
            "sendSticker": self._send_sticker,
            "sendChatAction": self._send_chat_action,
        }

    async def _get_me(self, bot: ZaloBotState, params: dict[str, Any]) -> Response:
        return _ok({"id": bot.id, "account_name": f"bot.{bot.id}", "display_name": bot.name})

    async def _get_updates(self, bot: ZaloBotState, params: dict[str, Any]) -> Response:
        if bot.webhook is not None:
            return _error(409, "Conflict: a webhook is set; delete it to use getUpdates")
        timeout = min(float(params.get("timeout") or 30), 60.0)
        deadline = self.clock() + timeout
        while not bot.updates:
            remaining = deadline - self.clock()
            if remaining <= 0 or self._stopping:
                return _error(408, "Request timeout")
            bot.update_waiter.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(bot.update_waiter.wait(), remaining)
        return _ok(bot.updates.popleft())

    async def _set_webhook(self, bot: ZaloBotState, params: dict[str, Any]) -> Response:
        url = str(params.get("url") or "")
        secret = str(params.get("secret_token") or "")
        if not url.startswith(("http://", "https://")):
            return _error(400, "url is invalid")
        if not 8 <= len(secret) <= 256:
            return _error(400, "secret_token must be 8-256 characters")
        if bot.webhook is not None:
            await bot.webhook.stop()
        bot.webhook_url, bot.webhook_secret = url, secret
        dispatcher = WebhookDispatcher(
            self._client(),
            url,
            secret_token=secret,
            max_connections=40,
            allowed_updates=None,
            retry_delay=self.retry_delay,
            max_retry_delay=max(self.retry_delay, 30.0),
            secret_header=SECRET_HEADER,
            chat_of=_update_chat,
        )
        dispatcher.start()
        bot.webhook = dispatcher
        while bot.updates:  # what waited for getUpdates goes to the webhook now
            dispatcher.put(self._wrapped(bot.updates.popleft()))
        return _ok({"url": url, "updated_at": int(time.time() * 1000)})

    async def _delete_webhook(self, bot: ZaloBotState, params: dict[str, Any]) -> Response:
        if bot.webhook is not None:
            await bot.webhook.stop()
            bot.webhook = None
        bot.webhook_url = bot.webhook_secret = ""
        return _ok({"url": "", "updated_at": int(time.time() * 1000)})

    async def _get_webhook_info(self, bot: ZaloBotState, params: dict[str, Any]) -> Response:
        info: dict[str, Any] = {"url": bot.webhook_url}
        if bot.webhook is not None:
            info["pending_update_count"] = bot.webhook.pending()
            if bot.webhook.last_error_message:
                info["last_error_message"] = bot.webhook.last_error_message
        return _ok(info)

    def _chat_for_send(self, bot: ZaloBotState, params: dict[str, Any]) -> ZaloChat | Response:
        chat = bot.chats.get(str(params.get("chat_id") or ""))
        if chat is None:
            return _error(400, "chat_id is invalid or the user never messaged the bot")
        if chat.blocked:
            return _error(403, "The user has blocked the bot")
        if bot.over_quota(self.clock()):
            bot.count("rate_limited")
            return _error(429, "Too many requests: quota exceeded")
        return chat

    def _record(self, bot: ZaloBotState, chat: ZaloChat, entry: dict[str, Any]) -> Response:
        message_id = secrets.token_hex(10)
        record_bot_message(chat, message_id, entry)
        return _ok({"message_id": message_id, "date": int(time.time() * 1000)})

    async def _send_message(self, bot: ZaloBotState, params: dict[str, Any]) -> Response:
        text = params.get("text")
        if not isinstance(text, str) or not 1 <= len(text) <= MESSAGE_LIMIT:
            return _error(400, f"text must be 1-{MESSAGE_LIMIT} characters")
        chat = self._chat_for_send(bot, params)
        if isinstance(chat, Response):
            return chat
        return self._record(bot, chat, {"type": "text", "text": text})

    async def _send_photo(self, bot: ZaloBotState, params: dict[str, Any]) -> Response:
        photo = str(params.get("photo") or "")
        if not photo.startswith(("http://", "https://")):
            return _error(400, "photo must be a URL")
        chat = self._chat_for_send(bot, params)
        if isinstance(chat, Response):
            return chat
        caption = str(params.get("caption") or "")
        return self._record(bot, chat, {"type": "photo", "photo": photo, "text": caption})

    async def _send_sticker(self, bot: ZaloBotState, params: dict[str, Any]) -> Response:
        chat = self._chat_for_send(bot, params)
        if isinstance(chat, Response):
            return chat
        sticker = str(params.get("sticker") or params.get("sticker_id") or "")
        return self._record(bot, chat, {"type": "sticker", "sticker": sticker})

    async def _send_chat_action(self, bot: ZaloBotState, params: dict[str, Any]) -> Response:
        if str(params.get("chat_id") or "") not in bot.chats:
            return _error(400, "chat_id is invalid")
        return _ok(True)

    async def _file(self, request: Request) -> Response:
        for bot in self.bots.values():
            data = bot.files.get(request.path_params["file_id"])
            if data is not None:
                return Response(data, media_type="image/jpeg")
        return Response(status_code=404)

    # ---- citizens (control API) ----------------------------------------------------------

    def user_message(
        self,
        bot: ZaloBotState,
        *,
        user: str,
        display_name: str = "",
        text: str | None = None,
        image: bytes | None = None,
        caption: str | None = None,
        sticker: str | None = None,
        unsupported: bool = False,
        chat_type: str = "PRIVATE",
    ) -> dict[str, Any]:
        """A citizen sends something; returns the update (queued or posted to the webhook)."""
        user_id = zalo_id(f"user:{bot.id}:{user}")
        chat_id = user_id if chat_type == "PRIVATE" else zalo_id(f"group:{bot.id}:{user}")
        chat = bot.chats.get(chat_id)
        if chat is None:
            chat = bot.chats[chat_id] = ZaloChat(chat_id, user_id, display_name or user, chat_type)
        message: dict[str, Any] = {
            "message_id": secrets.token_hex(10),
            "from": {"id": user_id, "display_name": chat.display_name, "is_bot": False},
            "chat": {"id": chat_id, "chat_type": chat_type},
            "date": int(time.time() * 1000),
        }
        if text is not None:
            event, entry = TEXT, {"type": "text", "text": text}
            message["text"] = text
        elif image is not None:
            file_id = f"f{next(self._ids)}"
            bot.files[file_id] = image
            message["photo_url"] = f"{self.url}/files/{file_id}"
            if caption:
                message["caption"] = caption
            event, entry = IMAGE, {"type": "photo", "text": caption or ""}
        elif sticker is not None:
            message["sticker"] = sticker
            message["url"] = f"https://zalo-api.zadn.vn/api/emoticon/sticker/webpc?eid={sticker}"
            event, entry = STICKER, {"type": "sticker"}
        elif unsupported:
            event, entry = UNSUPPORTED, {"type": "unsupported"}
        else:
            raise ValueError("say what the user sends")
        chat.messages.append({"from": "user", "message_id": message["message_id"], **entry})
        update = {"event_name": event, "message": message}
        self._deliver(bot, update)
        return update

    def _deliver(self, bot: ZaloBotState, update: dict[str, Any]) -> None:
        bot.last_update = update
        if bot.webhook is not None:
            bot.webhook.put(self._wrapped(update))
        else:
            bot.updates.append(update)
            bot.update_waiter.set()

    def _wrapped(self, update: dict[str, Any]) -> dict[str, Any]:
        return {"ok": True, "result": update} if self.wrap_updates else update

    def _client(self) -> httpx.AsyncClient:
        if self._http is None:
            self._http = httpx.AsyncClient(timeout=10.0)
        return self._http

    def _bot_of(self, body: dict[str, Any]) -> ZaloBotState:
        token = body.get("token")
        return self.bots[token] if isinstance(token, str) and token in self.bots else self.bot()

    async def _control_bot(self, request: Request) -> Response:
        bot = self.bot()
        return JSONResponse(
            {
                "ok": True,
                "id": bot.id,
                "name": bot.name,
                "webhook": bot.webhook_url,
                "counters": bot.counters,
                "pending_updates": len(bot.updates) + (bot.webhook.pending() if bot.webhook else 0),
            }
        )

    async def _control_reset(self, request: Request) -> Response:
        for bot in self.bots.values():
            bot.chats.clear()
            bot.updates.clear()
            bot.faults.clear()
            bot.counters.clear()
        return JSONResponse({"ok": True})

    async def _control_message(self, request: Request) -> Response:
        body = await params_of(request)
        image = body.get("image")
        try:
            update = self.user_message(
                self._bot_of(body),
                user=str(body.get("user") or "citizen"),
                display_name=str(body.get("display_name") or ""),
                text=body.get("text"),
                image=base64.b64decode(image) if isinstance(image, str) else None,
                caption=body.get("caption"),
                sticker=body.get("sticker"),
                unsupported=bool(body.get("unsupported")),
                chat_type=str(body.get("chat_type") or "PRIVATE"),
            )
        except ValueError as error:
            return JSONResponse({"ok": False, "description": str(error)}, status_code=400)
        message = update["message"]
        return JSONResponse(
            {"ok": True, "chat_id": message["chat"]["id"], "message_id": message["message_id"]}
        )

    async def _control_redeliver(self, request: Request) -> Response:
        bot = self._bot_of(await params_of(request))
        if bot.last_update is None:
            return JSONResponse({"ok": False, "description": "nothing sent yet"}, status_code=400)
        self._deliver(bot, bot.last_update)
        return JSONResponse({"ok": True})

    async def _control_block(self, request: Request) -> Response:
        body = await params_of(request)
        chat = self._bot_of(body).chats.get(str(body.get("chat_id")))
        if chat is None:
            return JSONResponse({"ok": False, "description": "no such chat"}, status_code=404)
        chat.blocked = bool(body.get("blocked", True))
        return JSONResponse({"ok": True})

    async def _control_fault(self, request: Request) -> Response:
        bot = self.bot()
        if request.method == "DELETE":
            bot.faults.clear()
            return JSONResponse({"ok": True})
        body = await params_of(request)
        bot.faults.append(
            Fault(
                method=str(body.get("method") or "*"),
                error_code=int(body.get("error_code") or 500),
                description=str(body.get("description") or "Internal error"),
                times=int(body.get("times") or 1),
                retry_after=int(body["retry_after"]) if body.get("retry_after") else None,
            )
        )
        return JSONResponse({"ok": True})

    def chats(self) -> dict[str, ZaloChat]:
        """The first bot's chats (the control API plays one bot's citizens)."""
        return self.bot().chats


def _update_chat(update: dict[str, Any]) -> str:
    """The chat of a (possibly wrapped) update, for in-order webhook delivery."""
    inner = update.get("result", update)
    message = inner.get("message") if isinstance(inner, dict) else None
    return str((message or {}).get("chat", {}).get("id", ""))
