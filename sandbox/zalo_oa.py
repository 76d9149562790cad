"""An offline Zalo Official Account Open API v3 (openapi.zalo.me + oauth.zaloapp.com).

Shapes follow the documentation: calls take the `access_token` header and answer
`{"error": 0, "message": "Success", "data": {...}}` or a negative error; the token endpoint
takes the `secret_key` header and the form `app_id, grant_type=refresh_token, refresh_token`,
and answers a new access token (valid `access_ttl` seconds, 25 h by default) with a new refresh
token, the old one becoming unusable (single use). Webhook events are posted with
`X-ZEvent-Signature: mac=<sha256(app_id + body + timestamp + OA secret key)>` and sent again
after `retry_delay` (2 s, as Zalo) until answered 2xx within `webhook_timeout`.

Rules it enforces: consultation messages (`/v3.0/oa/message/cs`) only to users who wrote to the
OA, within 7 days of their last message (-230); broadcasts (`/message/promotion`) only to
followers, once a day per user (-32) and never between 22:00 and 06:00 Vietnam time (-234);
-216 for an unknown or expired access token; an optional per-second send rate answered with
HTTP 429. Where the documentation is silent (which code the daily broadcast quota gives), the
emulator decides and docs/zalo.md says so.

The control API plays citizens (text, image, file, location, sticker, follow, unfollow), ages a
chat past the 7-day window, issues the operator's first refresh token, holds the token endpoint
(to kill an instance in the middle of a refresh) and redelivers the last event.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import itertools
import json
import secrets
import time
from collections.abc import AsyncIterator, Callable
from datetime import datetime, timedelta, timezone
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

SIGNATURE_HEADER = "X-ZEvent-Signature"
MESSAGE_LIMIT = 2000
WINDOW_SECONDS = 7 * 24 * 3600
VIETNAM = timezone(timedelta(hours=7))

TOKEN_INVALID = -216
WINDOW_CLOSED = -230
NIGHT = -234
DAILY_QUOTA = -32
NOT_INTERACTED = -213
INVALID_PARAM = -201


def signature(app_id: str, body: bytes, timestamp: str, oa_secret_key: str) -> str:
    """The header value Zalo sends: mac=sha256(app_id + body + timestamp + OA secret key)."""
    digest = hashlib.sha256(app_id.encode() + body + timestamp.encode() + oa_secret_key.encode())
    return "mac=" + digest.hexdigest()


def _ok(data: dict[str, Any] | None = None) -> JSONResponse:
    return JSONResponse({"error": 0, "message": "Success", "data": data or {}})


def _error(code: int, message: str) -> JSONResponse:
    return JSONResponse({"error": code, "message": message})


class ZaloOaEmulator(ZaloEmulatorBase):
    """One Official Account and its app, with a control API for tests and the demo."""

    def __init__(
        self,
        *,
        app_id: str = "1234567890123456789",
        oa_secret_key: str = "oa-secret-key-for-webhooks",
        app_secret: str = "app-secret-for-token-refresh",
        access_ttl: float = 25 * 3600,
        retry_delay: float = 2.0,
        webhook_timeout: float = 2.0,
        send_rate: float | None = None,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        self.app_id = app_id
        self.oa_id = zalo_id(f"oa:{app_id}")
        self.oa_secret_key = oa_secret_key
        self.app_secret = app_secret
        self.access_ttl = access_ttl
        self.retry_delay = retry_delay
        self.webhook_timeout = webhook_timeout
        self.send_rate = send_rate
        self.clock = clock
        self.wall_clock = wall_clock
        self.url = ""
        self.access_tokens: dict[str, float] = {}  # token -> wall-clock expiry
        self.refresh_tokens: set[str] = set()  # each usable once
        self.users: dict[str, ZaloChat] = {}
        self.followers: set[str] = set()
        self.promotions: dict[tuple[str, str], int] = {}  # (user, local date) -> count
        self.faults: list[Fault] = []
        self.counters: dict[str, int] = {}
        self.files: dict[str, bytes] = {}
        self.uploads: dict[str, bytes] = {}
        self.webhook: WebhookDispatcher | None = None
        self.last_event: dict[str, Any] | None = None
        self.hold_refresh = asyncio.Event()  # cleared: token requests wait until it is set
        self.hold_refresh.set()
        self.night_hours = (22, 6)
        self._sent_at: list[float] = []
        self._ids = itertools.count(1)
        self._http: httpx.AsyncClient | None = None
        self._app: Starlette | None = None

    # ---- serving -------------------------------------------------------------------------

    @property
    def app(self) -> Starlette:
        """The ASGI app: Open API, OAuth, files, control API."""
        if self._app is None:
            routes = [
                Route("/v3.0/oa/message/{kind}", self._send_message, methods=["POST"]),
                Route("/v2.0/oa/upload/image", self._upload_image, methods=["POST"]),
                Route("/v2.0/oa/getoa", self._get_oa, methods=["GET"]),
                Route("/v4/oa/access_token", self._access_token, methods=["POST"]),
                Route("/files/{file_id}", self._file, methods=["GET"]),
                Route("/control/oa", self._control_oa, methods=["GET"]),
                Route("/control/webhook", self._control_webhook, methods=["POST"]),
                Route("/control/tokens", self._control_tokens, methods=["POST"]),
                Route("/control/hold", self._control_hold, methods=["POST"]),
                Route("/control/messages", self._control_message, methods=["POST"]),
                Route("/control/follow", self._control_follow, methods=["POST"]),
                Route("/control/age", self._control_age, methods=["POST"]),
                Route("/control/redeliver", self._control_redeliver, methods=["POST"]),
                Route("/control/faults", self._control_fault, methods=["POST", "DELETE"]),
                *self.chat_routes(),
            ]
            self._app = Starlette(routes=routes, lifespan=self._lifespan)
        return self._app

    @contextlib.asynccontextmanager
    async def _lifespan(self, app: Starlette) -> AsyncIterator[None]:
        try:
            yield
        finally:
            self.release_waiters()
            if self.webhook is not None:
                await self.webhook.stop()
            if self._http is not None:
                await self._http.aclose()

    def release_waiters(self) -> None:
        """End waits so the server can stop promptly."""
        self.hold_refresh.set()
        for chat in self.users.values():
            chat.waiter.set()

    def chats(self) -> dict[str, ZaloChat]:
        """Every user's chat with the OA."""
        return self.users

    def count(self, name: str) -> None:
        """Add one to a counter."""
        self.counters[name] = self.counters.get(name, 0) + 1

    # ---- tokens --------------------------------------------------------------------------

    def issue_refresh_token(self) -> str:
        """What an operator copies from the OA's API explorer: a fresh refresh token."""
        token = "rt-" + secrets.token_urlsafe(24)
        self.refresh_tokens.add(token)
        return token

    def expire_access_tokens(self) -> None:
        """Every access token expires now (as after 25 hours)."""
        for token in self.access_tokens:
            self.access_tokens[token] = 0.0

    async def _access_token(self, request: Request) -> Response:
        self.count("refresh_requests")
        params = await params_of(request)  # read first: is_disconnected() would eat the body
        await self.hold_refresh.wait()
        if await request.is_disconnected():
            # The caller died while the request was held: model a request that never reached
            # the token service (a crash *after* Zalo answered cannot be survived by anyone).
            self.count("refresh_abandoned")
            return Response(status_code=499)
        if request.headers.get("secret_key") != self.app_secret:
            return JSONResponse({"error": -14002, "error_name": "Invalid secret key"})
        if params.get("app_id") != self.app_id:
            return JSONResponse({"error": -14001, "error_name": "Invalid app id"})
        token = str(params.get("refresh_token") or "")
        if params.get("grant_type") != "refresh_token" or token not in self.refresh_tokens:
            return JSONResponse(
                {
                    "error": -14014,
                    "error_name": "Invalid refresh token",
                    "error_description": "refresh token is invalid, used or expired",
                }
            )
        self.refresh_tokens.discard(token)  # single use
        access = "at-" + secrets.token_urlsafe(24)
        self.access_tokens[access] = self.wall_clock() + self.access_ttl
        new_refresh = self.issue_refresh_token()
        self.count("refreshed")
        return JSONResponse(
            {
                "access_token": access,
                "refresh_token": new_refresh,
                "expires_in": str(int(self.access_ttl)),
            }
        )

    def _token_ok(self, request: Request) -> bool:
        expiry = self.access_tokens.get(request.headers.get("access_token", ""))
        return expiry is not None and expiry > self.wall_clock()

    # ---- Open API ------------------------------------------------------------------------

    async def _get_oa(self, request: Request) -> Response:
        if not self._token_ok(request):
            return _error(TOKEN_INVALID, "Access token is invalid")
        return _ok({"oa_id": self.oa_id, "name": "Công an xã (emulator)"})

    async def _upload_image(self, request: Request) -> Response:
        if not self._token_ok(request):
            return _error(TOKEN_INVALID, "Access token is invalid")
        form = await request.form()
        upload = form.get("file")
        if upload is None or isinstance(upload, str):
            return _error(INVALID_PARAM, "file is required")
        attachment_id = secrets.token_hex(12)
        self.uploads[attachment_id] = await upload.read()
        return _ok({"attachment_id": attachment_id})

    async def _send_message(self, request: Request) -> Response:
        kind = request.path_params["kind"]
        self.count(f"send_{kind}")
        fault = take_fault(self.faults, kind)
        if fault is not None:
            return _error(fault.error_code, fault.description)
        if not self._token_ok(request):
            return _error(TOKEN_INVALID, "Access token is invalid")
        if self._over_rate():
            return JSONResponse({"error": 429, "message": "Too many requests"}, status_code=429)
        body = await params_of(request)
        user_id = str((body.get("recipient") or {}).get("user_id") or "")
        message = body.get("message")
        chat = self.users.get(user_id)
        if chat is None or not isinstance(message, dict):
            return _error(NOT_INTERACTED, "User has not interacted with the OA")
        text = message.get("text")
        if text is not None and (not isinstance(text, str) or not 0 < len(text) <= MESSAGE_LIMIT):
            return _error(INVALID_PARAM, f"text must be 1-{MESSAGE_LIMIT} characters")
        now = self.wall_clock()
        if kind == "cs" and now - chat.last_user_message_at > WINDOW_SECONDS:
            self.count("window_refused")
            return _error(WINDOW_CLOSED, "User has not interacted with the OA in the last 7 days")
        if kind == "promotion":
            refused = self._promotion_refusal(user_id, now)
            if refused is not None:
                return refused
        entry: dict[str, Any] = {"type": kind, "text": text or ""}
        attachment = message.get("attachment")
        if isinstance(attachment, dict):
            entry["attachment"] = attachment
            elements = (attachment.get("payload") or {}).get("elements") or []
            contents = [str(e.get("content")) for e in elements if isinstance(e, dict)]
            entry["text"] = entry["text"] or "\n".join(c for c in contents if c != "None")
        message_id = secrets.token_hex(10)
        record_bot_message(chat, message_id, entry)
        return _ok({"message_id": message_id, "user_id": user_id})

    def _promotion_refusal(self, user_id: str, now: float) -> Response | None:
        """A broadcast is refused at night and after the day's one per user."""
        local = datetime.fromtimestamp(now, VIETNAM)
        start, end = self.night_hours
        hour = local.hour
        night = (hour >= start or hour < end) if start > end else start <= hour < end
        if night:
            self.count("night_refused")
            return _error(NIGHT, "Promotion messages cannot be sent between 22:00 and 06:00")
        if user_id not in self.followers:
            return _error(NOT_INTERACTED, "User is not a follower of the OA")
        day = (user_id, local.date().isoformat())
        if self.promotions.get(day, 0) >= 1:
            self.count("quota_refused")
            return _error(DAILY_QUOTA, "Daily promotion quota for this user is exceeded")
        self.promotions[day] = self.promotions.get(day, 0) + 1
        return None

    def _over_rate(self) -> bool:
        if self.send_rate is None:
            return False
        now = self.clock()
        self._sent_at = [at for at in self._sent_at if now - at < 1.0]
        if len(self._sent_at) >= self.send_rate:
            return True
        self._sent_at.append(now)
        return False

    async def _file(self, request: Request) -> Response:
        data = self.files.get(request.path_params["file_id"])
        return Response(status_code=404) if data is None else Response(data)

    # ---- events --------------------------------------------------------------------------

    def _event(self, name: str, user_id: str, **fields: Any) -> dict[str, Any]:
        return {
            "app_id": self.app_id,
            "oa_id": self.oa_id,
            "user_id_by_app": zalo_id(f"app-user:{user_id}"),
            "event_name": name,
            "timestamp": str(int(self.wall_clock() * 1000)),
            **fields,
        }

    def _deliver(self, event: dict[str, Any]) -> None:
        self.last_event = event
        if self.webhook is not None:
            self.webhook.put(event)
        else:
            self.count("events_dropped_no_webhook")

    def _sign(self, body: bytes) -> dict[str, str]:
        timestamp = str(json.loads(body).get("timestamp", ""))
        return {SIGNATURE_HEADER: signature(self.app_id, body, timestamp, self.oa_secret_key)}

    def user_sends(
        self,
        user: str,
        *,
        display_name: str = "",
        text: str | None = None,
        image: bytes | None = None,
        file: tuple[str, bytes] | None = None,
        location: tuple[float, float] | None = None,
        sticker: str | None = None,
    ) -> dict[str, Any]:
        """A citizen writes to the OA; returns the event posted to the webhook."""
        user_id = zalo_id(f"oa-user:{self.app_id}:{user}")
        chat = self.users.get(user_id)
        if chat is None:
            chat = self.users[user_id] = ZaloChat(user_id, user_id, display_name or user)
        chat.last_user_message_at = self.wall_clock()
        message: dict[str, Any] = {"msg_id": secrets.token_hex(16)}
        if text is not None:
            name, entry = "user_send_text", {"type": "text", "text": text}
            message["text"] = text
        elif image is not None:
            file_id = f"i{next(self._ids)}"
            self.files[file_id] = image
            url = f"{self.url}/files/{file_id}"
            message["attachments"] = [{"type": "image", "payload": {"url": url, "thumbnail": url}}]
            name, entry = "user_send_image", {"type": "image"}
        elif file is not None:
            file_id = f"f{next(self._ids)}"
            filename, data = file
            self.files[file_id] = data
            payload = {
                "url": f"{self.url}/files/{file_id}",
                "size": str(len(data)),
                "name": filename,
                "type": filename.rsplit(".", 1)[-1],
            }
            message["attachments"] = [{"type": "file", "payload": payload}]
            name, entry = "user_send_file", {"type": "file", "text": filename}
        elif location is not None:
            coordinates = {"latitude": str(location[0]), "longitude": str(location[1])}
            message["attachments"] = [{"type": "location", "payload": {"coordinates": coordinates}}]
            name, entry = "user_send_location", {"type": "location"}
        elif sticker is not None:
            message["attachments"] = [{"type": "sticker", "payload": {"id": sticker}}]
            name, entry = "user_send_sticker", {"type": "sticker"}
        else:
            raise ValueError("say what the user sends")
        chat.messages.append({"from": "user", "message_id": message["msg_id"], **entry})
        event = self._event(
            name,
            user_id,
            sender={"id": user_id},
            recipient={"id": self.oa_id},
            message=message,
        )
        self._deliver(event)
        return event

    def follow(self, user: str, *, followed: bool = True, display_name: str = "") -> str:
        """A citizen follows (or unfollows) the OA; returns their id."""
        user_id = zalo_id(f"oa-user:{self.app_id}:{user}")
        if user_id not in self.users:
            self.users[user_id] = ZaloChat(user_id, user_id, display_name or user)
        if followed:
            self.followers.add(user_id)
            # Following opens a conversation the OA may answer.
            self.users[user_id].last_user_message_at = self.wall_clock()
        else:
            self.followers.discard(user_id)
        name = "follow" if followed else "unfollow"
        self._deliver(self._event(name, user_id, follower={"id": user_id}, source="oa_profile"))
        return user_id

    # ---- control API ---------------------------------------------------------------------

    async def _control_oa(self, request: Request) -> Response:
        return JSONResponse(
            {
                "ok": True,
                "app_id": self.app_id,
                "oa_id": self.oa_id,
                "counters": self.counters,
                "webhook": self.webhook.url if self.webhook else "",
                "pending_events": self.webhook.pending() if self.webhook else 0,
                "valid_refresh_tokens": len(self.refresh_tokens),
            }
        )

    async def _control_webhook(self, request: Request) -> Response:
        """Set the webhook URL, as in the OA's developer console."""
        url = str((await params_of(request)).get("url") or "")
        if self.webhook is not None:
            await self.webhook.stop()
            self.webhook = None
        if url:
            if self._http is None:
                self._http = httpx.AsyncClient(timeout=self.webhook_timeout)
            self.webhook = WebhookDispatcher(
                self._http,
                url,
                secret_token=None,
                max_connections=40,
                allowed_updates=None,
                retry_delay=self.retry_delay,
                max_retry_delay=max(self.retry_delay, 30.0),
                chat_of=lambda event: str(
                    (event.get("sender") or event.get("follower") or {}).get("id", "")
                ),
                signer=self._sign,
            )
            self.webhook.start()
        return JSONResponse({"ok": True})

    async def _control_tokens(self, request: Request) -> Response:
        """Issue a refresh token (the operator's), or expire every access token."""
        params = await params_of(request)
        if params.get("expire_access"):
            self.expire_access_tokens()
            return JSONResponse({"ok": True})
        return JSONResponse({"ok": True, "refresh_token": self.issue_refresh_token()})

    async def _control_hold(self, request: Request) -> Response:
        """Hold (or release) token requests before they are processed."""
        if (await params_of(request)).get("hold"):
            self.hold_refresh.clear()
        else:
            self.hold_refresh.set()
        return JSONResponse({"ok": True})

    async def _control_message(self, request: Request) -> Response:
        body = await params_of(request)
        image = body.get("image")
        file = body.get("file")
        location = body.get("location")
        try:
            event = self.user_sends(
                str(body.get("user") or "citizen"),
                display_name=str(body.get("display_name") or ""),
                text=body.get("text"),
                image=base64.b64decode(image) if isinstance(image, str) else None,
                file=(str(file["name"]), base64.b64decode(file["data"]))
                if isinstance(file, dict)
                else None,
                location=(float(location[0]), float(location[1])) if location else None,
                sticker=body.get("sticker"),
            )
        except ValueError as error:
            return JSONResponse({"ok": False, "description": str(error)}, status_code=400)
        return JSONResponse(
            {"ok": True, "chat_id": event["sender"]["id"], "message_id": event["message"]["msg_id"]}
        )

    async def _control_follow(self, request: Request) -> Response:
        body = await params_of(request)
        user_id = self.follow(
            str(body.get("user") or "citizen"),
            followed=bool(body.get("followed", True)),
            display_name=str(body.get("display_name") or ""),
        )
        return JSONResponse({"ok": True, "chat_id": user_id})

    async def _control_age(self, request: Request) -> Response:
        """Make a chat's last user message `days` older (past the 7-day window)."""
        body = await params_of(request)
        chat = self.users.get(str(body.get("chat_id")))
        if chat is None:
            return JSONResponse({"ok": False, "description": "no such chat"}, status_code=404)
        chat.last_user_message_at -= float(body.get("days") or 8) * 24 * 3600
        return JSONResponse({"ok": True})

    async def _control_redeliver(self, request: Request) -> Response:
        if self.last_event is None:
            return JSONResponse({"ok": False, "description": "nothing sent yet"}, status_code=400)
        self._deliver(self.last_event)
        return JSONResponse({"ok": True})

    async def _control_fault(self, request: Request) -> Response:
        if request.method == "DELETE":
            self.faults.clear()
            return JSONResponse({"ok": True})
        body = await params_of(request)
        self.faults.append(
            Fault(
                method=str(body.get("method") or "*"),
                error_code=int(body.get("error_code") or -1),
                description=str(body.get("description") or "error"),
                times=int(body.get("times") or 1),
            )
        )
        return JSONResponse({"ok": True})
