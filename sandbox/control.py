"""The control API under /control: act as users and read what they see."""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import json
from collections.abc import Awaitable, Callable
from typing import Any

from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route

from sandbox.actions import Actor, MediaSpec, UserActions
from sandbox.botapi import json_response
from sandbox.errors import ControlError
from sandbox.faults import faults_of
from sandbox.state import BotState, Chat, StoredMessage

Endpoint = Callable[[Request], Awaitable[Response]]
MAX_WAIT = 120.0


class ControlApi:
    """Routes for tests, benchmarks and the browser demo; JSON in, JSON out."""

    def __init__(self, bots: dict[str, BotState], on_reset: Callable[[], None]) -> None:
        self.bots = bots
        self.actions = UserActions()
        self._on_reset = on_reset

    def routes(self) -> list[Route]:
        """Return the Starlette routes of the control API."""
        get, post = ["GET"], ["POST"]
        table: list[tuple[str, Endpoint, list[str]]] = [
            ("/control/bot", self.bot_info, get),
            ("/control/reset", self.reset, post),
            ("/control/messages", self.post_message, post),
            ("/control/messages/batch", self.post_batch, post),
            ("/control/albums", self.post_album, post),
            ("/control/edits", self.post_edit, post),
            ("/control/callbacks", self.post_callback, post),
            ("/control/callbacks/{query_id}", self.get_callback, get),
            ("/control/block", self.post_block, post),
            ("/control/unblock", self.post_unblock, post),
            ("/control/groups/add", self.post_group_add, post),
            ("/control/groups/remove", self.post_group_remove, post),
            ("/control/chats", self.get_chats, get),
            ("/control/chats/{chat_id}", self.get_chat, get),
            ("/control/chats/{chat_id}/messages", self.get_transcript, get),
            ("/control/chats/{chat_id}/wait", self.get_wait, get),
            ("/control/counters", self.get_counters, get),
            ("/control/commands", self.get_commands, get),
            ("/control/files/{file_id}", self.get_file, get),
            ("/control/events", self.get_events, get),
            ("/control/faults", self.get_faults, get),
            ("/control/faults", self.post_fault, post),
            ("/control/faults", self.delete_faults, ["DELETE"]),
        ]
        return [Route(path, self._guard(end), methods=verbs) for path, end, verbs in table]

    @staticmethod
    def _guard(endpoint: Endpoint) -> Endpoint:
        async def guarded(request: Request) -> Response:
            try:
                return await endpoint(request)
            except ControlError as error:
                return json_response({"ok": False, "error": error.message}, error.status)
            except ClientDisconnect:
                return Response(status_code=400)  # the caller is gone; nobody reads this
            except (KeyError, TypeError, ValueError) as error:
                # Malformed control input (a missing key, a wrong type) is the caller's error.
                message = f"malformed request: {type(error).__name__}: {error}"
                return json_response({"ok": False, "error": message}, 400)

        return guarded

    # -- helpers ------------------------------------------------------------------------

    def _bot(self, request: Request) -> BotState:
        """Pick the bot named by ?bot=<username or token>, else the first bot."""
        wanted = request.query_params.get("bot")
        if not self.bots:
            raise ControlError(404, "no bot is registered")
        if wanted is None:
            return next(iter(self.bots.values()))
        if wanted in self.bots:
            return self.bots[wanted]
        for bot in self.bots.values():
            if bot.username.lower() == wanted.lstrip("@").lower():
                return bot
        raise ControlError(404, f"unknown bot {wanted!r}")

    @staticmethod
    async def _json(request: Request) -> dict[str, Any]:
        try:
            body = json.loads(await request.body() or b"{}")
        except ValueError:
            raise ControlError(400, "body must be JSON") from None
        if not isinstance(body, dict):
            raise ControlError(400, "body must be a JSON object")
        return body

    @staticmethod
    def _int(body: dict[str, Any], key: str, default: int | None = None) -> int | None:
        value = body.get(key, default)
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, int | str):
            raise ControlError(400, f"{key} must be an integer")
        try:
            return int(value)
        except ValueError:
            raise ControlError(400, f"{key} must be an integer") from None

    def _required_int(self, body: dict[str, Any], key: str) -> int:
        value = self._int(body, key)
        if value is None:
            raise ControlError(400, f"{key} is required")
        return value

    @staticmethod
    def _media(spec: Any) -> MediaSpec:
        if not isinstance(spec, dict) or not isinstance(spec.get("kind"), str):
            raise ControlError(400, "media must be an object with a kind")
        data: bytes | None = None
        if spec.get("data") is not None:
            try:
                data = base64.b64decode(spec["data"], validate=True)
            except (binascii.Error, TypeError, ValueError):
                raise ControlError(400, "media data must be base64") from None
        return MediaSpec(
            kind=spec["kind"],
            data=data,
            size=spec.get("size"),
            filename=spec.get("filename"),
            mime_type=spec.get("mime_type"),
            duration=int(spec.get("duration") or 0),
            width=spec.get("width"),
            height=spec.get("height"),
        )

    @staticmethod
    def _chat_id(request: Request) -> int:
        # Starlette's int convertor rejects negative numbers, and group ids are negative.
        try:
            return int(request.path_params["chat_id"])
        except ValueError:
            raise ControlError(400, "chat id must be an integer") from None

    def _chat(self, request: Request, bot: BotState) -> Chat:
        return self.actions.find_chat(bot, self._chat_id(request))

    @staticmethod
    def _float_query(request: Request, key: str, default: float) -> float:
        try:
            return float(request.query_params.get(key, default))
        except ValueError:
            raise ControlError(400, f"{key} must be a number") from None

    # -- acting as users ----------------------------------------------------------------

    async def post_message(self, request: Request) -> Response:
        """Inject a message: text, media, declared file, location and/or raw fields."""
        bot = self._bot(request)
        stored = self._inject(bot, await self._json(request))
        return json_response({"ok": True, "message": stored.view()})

    async def post_batch(self, request: Request) -> Response:
        """Inject many messages in one request (benchmarks): {"messages": [...]}."""
        bot = self._bot(request)
        body = await self._json(request)
        items = body.get("messages")
        if not isinstance(items, list) or not all(isinstance(item, dict) for item in items):
            raise ControlError(400, "messages must be a list of objects")
        sent = [self._inject(bot, item) for item in items]
        # Only ids and cursors come back: a benchmark does not want its payload echoed.
        summary = [
            {
                "chat_id": stored.message["chat"]["id"],
                "message_id": stored.message_id,
                "seq": stored.seq,
            }
            for stored in sent
        ]
        return json_response({"ok": True, "messages": summary})

    def _inject(self, bot: BotState, body: dict[str, Any]) -> StoredMessage:
        actor = Actor.from_json(body.get("user"))
        chat_id = self._int(body, "chat_id")
        fields: dict[str, Any] = {}
        text = body.get("text")
        if body.get("media") is not None:
            fields.update(
                self.actions.media_fields(bot, self._media(body["media"]), body.get("caption"))
            )
            if body.get("media_group_id") is not None:
                fields["media_group_id"] = str(body["media_group_id"])
        location = body.get("location")
        if location is not None:
            if not isinstance(location, dict):
                raise ControlError(400, "location must be an object")
            fields["location"] = {
                "latitude": float(location["latitude"]),
                "longitude": float(location["longitude"]),
            }
        extra = body.get("fields") or {}
        if not isinstance(extra, dict):
            raise ControlError(400, "fields must be an object")
        title = body.get("chat_title")
        reply_to = self._int(body, "reply_to")
        if text is not None:
            return self.actions.send_text(
                bot,
                actor,
                str(text),
                chat_id=chat_id,
                title=title,
                reply_to=reply_to,
                extra={**fields, **extra},
            )
        fields.update(extra)
        if not fields:
            raise ControlError(400, "a message needs text, media, location or fields")
        return self.actions.send(
            bot, actor, fields, chat_id=chat_id, title=title, reply_to=reply_to
        )

    async def post_album(self, request: Request) -> Response:
        """Inject an album: several media messages sharing one media_group_id."""
        bot = self._bot(request)
        body = await self._json(request)
        actor = Actor.from_json(body.get("user"))
        items = body.get("items")
        if not isinstance(items, list):
            raise ControlError(400, "items must be a list")
        specs = [(self._media(item), item.get("caption")) for item in items]
        sent = self.actions.send_album(
            bot,
            actor,
            specs,
            caption=body.get("caption"),
            chat_id=self._int(body, "chat_id"),
            title=body.get("chat_title"),
        )
        return json_response({"ok": True, "messages": [stored.view() for stored in sent]})

    async def post_edit(self, request: Request) -> Response:
        """Edit a user's own message (the bot gets edited_message)."""
        bot = self._bot(request)
        body = await self._json(request)
        stored = self.actions.edit_text(
            bot,
            Actor.from_json(body.get("user")),
            self._required_int(body, "chat_id"),
            self._required_int(body, "message_id"),
            str(body.get("text") or ""),
        )
        return json_response({"ok": True, "message": stored.view()})

    async def post_callback(self, request: Request) -> Response:
        """Press an inline button (the bot gets callback_query)."""
        bot = self._bot(request)
        body = await self._json(request)
        record = self.actions.press(
            bot,
            Actor.from_json(body.get("user")),
            self._required_int(body, "chat_id"),
            self._required_int(body, "message_id"),
            str(body.get("data") or ""),
            force=bool(body.get("force")),
        )
        return json_response({"ok": True, "callback_query_id": record.query_id, "seq": bot.seq})

    async def get_callback(self, request: Request) -> Response:
        """Return how the bot answered a button press, waiting up to ?timeout= seconds."""
        bot = self._bot(request)
        record = bot.callbacks.get(request.path_params["query_id"])
        if record is None:
            raise ControlError(404, "unknown callback query")
        timeout = min(self._float_query(request, "timeout", 0.0), MAX_WAIT)
        if record.answer is None and timeout > 0 and not bot.closing:
            if record.waiter is None:
                record.waiter = asyncio.Event()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(record.waiter.wait(), timeout)
        return json_response({"ok": True, "answer": record.answer})

    async def post_block(self, request: Request) -> Response:
        """The user blocks the bot."""
        bot = self._bot(request)
        body = await self._json(request)
        chat = self.actions.block(bot, Actor.from_json(body.get("user")))
        return json_response({"ok": True, "chat": chat.info()})

    async def post_unblock(self, request: Request) -> Response:
        """The user unblocks the bot."""
        bot = self._bot(request)
        body = await self._json(request)
        chat = self.actions.unblock(bot, Actor.from_json(body.get("user")))
        return json_response({"ok": True, "chat": chat.info()})

    async def post_group_add(self, request: Request) -> Response:
        """A user adds the bot to a group."""
        bot = self._bot(request)
        body = await self._json(request)
        chat_id = self._required_int(body, "chat_id")
        chat = self.actions.add_to_group(
            bot,
            Actor.from_json(body.get("user")),
            chat_id,
            str(body.get("title") or ""),
            username=str(body["username"]) if body.get("username") else None,
        )
        return json_response({"ok": True, "chat": chat.info(), "seq": bot.seq})

    async def post_group_remove(self, request: Request) -> Response:
        """A user removes the bot from a group."""
        bot = self._bot(request)
        body = await self._json(request)
        chat = self.actions.remove_from_group(
            bot, Actor.from_json(body.get("user")), self._required_int(body, "chat_id")
        )
        return json_response({"ok": True, "chat": chat.info(), "seq": bot.seq})

    # -- reading ------------------------------------------------------------------------

    async def bot_info(self, request: Request) -> Response:
        """The bot's user, webhook and queue."""
        bot = self._bot(request)
        return json_response(
            {
                "ok": True,
                "bot": bot.user,
                "webhook": bot.webhook.info() if bot.webhook else None,
                "pending_updates": bot.pending_updates(),
                "seq": bot.seq,
            }
        )

    async def reset(self, request: Request) -> Response:
        """Clear all state of every bot (bots stay registered)."""
        self._on_reset()
        for bot in self.bots.values():
            faults_of(bot).reset()
        return json_response({"ok": True})

    async def get_chats(self, request: Request) -> Response:
        """List the chats."""
        bot = self._bot(request)
        return json_response({"ok": True, "chats": [_chat_view(c) for c in bot.chats.values()]})

    async def get_chat(self, request: Request) -> Response:
        """One chat: its info, reply keyboard, block and membership state."""
        bot = self._bot(request)
        return json_response({"ok": True, "chat": _chat_view(self._chat(request, bot))})

    async def get_transcript(self, request: Request) -> Response:
        """The chat as its user sees it: messages of both sides in order, edits applied."""
        bot = self._bot(request)
        chat = self._chat(request, bot)
        messages = [stored.view() for stored in chat.messages.values()]
        return json_response({"ok": True, "messages": messages, "seq": bot.seq})

    async def get_wait(self, request: Request) -> Response:
        """Wait until the bot sent or edited ?count= messages after a cursor."""
        bot = self._bot(request)
        chat_id = self._chat_id(request)
        chat = bot.chats.get(chat_id)
        if chat is None:
            raise ControlError(404, f"chat {chat_id} not found")
        query = request.query_params
        count = max(int(self._float_query(request, "count", 1)), 1)
        timeout = min(self._float_query(request, "timeout", 5.0), MAX_WAIT)
        if "after_message_id" in query:
            message_id = int(self._float_query(request, "after_message_id", 0))
            if message_id not in chat.seq_by_id:
                raise ControlError(404, f"message {message_id} not found in chat {chat_id}")
            after_seq = chat.seq_by_id[message_id]
        else:
            after_seq = int(self._float_query(request, "after_seq", 0))
        found, timed_out = await bot.wait_bot_messages(chat, after_seq, count, timeout)
        return json_response(
            {
                "ok": True,
                "messages": [stored.view() for stored in found],
                "timed_out": timed_out,
                "seq": bot.seq,
            }
        )

    async def get_counters(self, request: Request) -> Response:
        """Messages sent per chat, 429 refusals, errors and calls."""
        bot = self._bot(request)
        counters = bot.counters.as_dict(bot.updates.total, bot.pending_updates())
        faults = faults_of(bot)
        counters["faults"] = faults.counters.as_dict(len(faults.active()))
        return json_response({"ok": True, "counters": counters})

    async def get_commands(self, request: Request) -> Response:
        """The commands the bot registered (default scope first, then every scope)."""
        bot = self._bot(request)
        default = bot.commands.get(json.dumps({"type": "default"}) + "|", [])
        return json_response({"ok": True, "commands": default, "by_scope": bot.commands})

    async def get_file(self, request: Request) -> Response:
        """The bytes of any file (sent by the bot or a user)."""
        bot = self._bot(request)
        stored = bot.files.get(request.path_params["file_id"])
        if stored is None:
            raise ControlError(404, "unknown file_id")
        return Response(stored.content(), media_type=stored.mime_type or "application/octet-stream")

    async def get_events(self, request: Request) -> Response:
        """Server-sent events: every new message, edit, delete and callback answer."""
        bot = self._bot(request)
        return StreamingResponse(
            bot.events.stream(),
            media_type="text/event-stream",
            headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
        )

    # -- fault injection ----------------------------------------------------------------

    async def get_faults(self, request: Request) -> Response:
        """The fault rules in force."""
        faults = faults_of(self._bot(request))
        return json_response({"ok": True, "faults": [rule.view() for rule in faults.active()]})

    async def post_fault(self, request: Request) -> Response:
        """Add a fault rule: errors, or calls held before or after they take effect."""
        bot = self._bot(request)
        body = await self._json(request)
        try:
            rule = faults_of(bot).add(body)
        except ValueError as error:
            raise ControlError(400, str(error)) from None
        return json_response({"ok": True, "fault": rule.view()})

    async def delete_faults(self, request: Request) -> Response:
        """Remove every fault rule; held calls go on at once."""
        removed = faults_of(self._bot(request)).clear()
        return json_response({"ok": True, "removed": removed})


def _chat_view(chat: Chat) -> dict[str, Any]:
    return {
        **chat.info(),
        "keyboard": chat.keyboard,
        "blocked": chat.blocked,
        "bot_member": chat.bot_member,
        "message_count": len(chat.messages),
        "last_message_id": chat.next_message_id - 1,
    }
