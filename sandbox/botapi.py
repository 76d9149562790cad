"""The Bot API routes: `/bot{token}/{method}` and `/file/bot{token}/{file_path}`."""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Awaitable, Callable
from typing import Any

import httpx
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response
from starlette.routing import Route

from sandbox.errors import ApiError, bad_request, conflict
from sandbox.faults import CallerGoneError, faults_of
from sandbox.files import file_info
from sandbox.params import Params, parse_body
from sandbox.sending import Sender
from sandbox.state import BotState
from sandbox.validation import check_command_list
from sandbox.webhook import WebhookDispatcher, WebhookOptions

Handler = Callable[[BotState, Params], Awaitable[Any]]

MAX_POLL_TIMEOUT = 50.0  # Telegram caps long polling at 50 seconds
_SECRET_TOKEN = re.compile(r"[A-Za-z0-9_-]{1,256}")
_UNAUTHORIZED = ApiError(401, "Unauthorized")
_NOT_FOUND = ApiError(404, "Not Found")


def json_response(body: Any, status: int = 200) -> Response:
    """Return compact UTF-8 JSON, the way Telegram answers."""
    content = json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode()
    return Response(content, status_code=status, media_type="application/json")


class BotApi:
    """Dispatches Bot API calls to handlers; every handler is O(1) in the state size."""

    def __init__(
        self,
        bots: dict[str, BotState],
        sender: Sender,
        http_client: Callable[[], httpx.AsyncClient],
        webhook_options: WebhookOptions,
    ) -> None:
        self.bots = bots
        self.sender = sender
        self._http_client = http_client
        self._webhook_options = webhook_options
        handlers: dict[str, Handler] = {
            "getMe": self.get_me,
            "logOut": self.acknowledge,
            "close": self.acknowledge,
            "getUpdates": self.get_updates,
            "setWebhook": self.set_webhook,
            "deleteWebhook": self.delete_webhook,
            "getWebhookInfo": self.get_webhook_info,
            "getFile": self.get_file,
            "setMyCommands": self.set_my_commands,
            "getMyCommands": self.get_my_commands,
            "deleteMyCommands": self.delete_my_commands,
            "getChat": self.get_chat,
            "sendMessage": sender.send_message,
            "sendPhoto": sender.send_photo,
            "sendDocument": sender.send_document,
            "sendVideo": sender.send_video,
            "sendVoice": sender.send_voice,
            "sendAudio": sender.send_audio,
            "sendAnimation": sender.send_animation,
            "sendSticker": sender.send_sticker,
            "sendLocation": sender.send_location,
            "sendMediaGroup": sender.send_media_group,
            "copyMessage": sender.copy_message,
            "forwardMessage": sender.forward_message,
            "editMessageText": sender.edit_message_text,
            "editMessageCaption": sender.edit_message_caption,
            "editMessageReplyMarkup": sender.edit_message_reply_markup,
            "deleteMessage": sender.delete_message,
            "answerCallbackQuery": sender.answer_callback_query,
            "sendChatAction": sender.send_chat_action,
        }
        # Telegram matches method names case-insensitively.
        self._handlers = {name.lower(): (name, handler) for name, handler in handlers.items()}

    def routes(self) -> list[Route]:
        """Return the Starlette routes of the Bot API."""
        return [
            Route("/bot{token}/{method}", self.endpoint, methods=["GET", "POST"]),
            Route("/file/bot{token}/{file_path:path}", self.download, methods=["GET"]),
        ]

    async def endpoint(self, request: Request) -> Response:
        """Handle one Bot API call."""
        bot = self.bots.get(request.path_params["token"])
        if bot is None:
            return json_response(_UNAUTHORIZED.payload(), 401)
        entry = self._handlers.get(request.path_params["method"].lower())
        if entry is None:
            return json_response(_NOT_FOUND.payload(), 404)
        name, handler = entry
        calls = bot.counters.calls_by_method
        calls[name] = calls.get(name, 0) + 1
        try:
            body = await request.body()
        except ClientDisconnect:
            # The caller gave up mid-upload (a bot shutting down); nobody reads an answer.
            return Response(status_code=400)
        try:
            params = parse_body(
                request.headers.get("content-type", ""), body, dict(request.query_params)
            )
            # Injected faults (sandbox/faults.py) may fail, delay or drop the call.
            result = await faults_of(bot).run(
                name, params, functools.partial(handler, bot, params), request.receive
            )
        except CallerGoneError:
            return Response(status_code=499)  # held, then abandoned by its caller: never sent
        except ApiError as error:
            errors = bot.counters.errors_by_code
            errors[error.code] = errors.get(error.code, 0) + 1
            return json_response(error.payload(), error.code)
        return json_response({"ok": True, "result": result})

    async def download(self, request: Request) -> Response:
        """Serve a file's bytes the way api.telegram.org/file/bot<token>/<path> does."""
        bot = self.bots.get(request.path_params["token"])
        if bot is None:
            return json_response(_UNAUTHORIZED.payload(), 401)
        stored = bot.files.by_path(request.path_params["file_path"])
        if stored is None:
            return json_response(_NOT_FOUND.payload(), 404)
        media_type = stored.mime_type or (
            "image/jpeg" if stored.kind == "photo" else "application/octet-stream"
        )
        return Response(stored.content(), media_type=media_type)

    # -- handlers -----------------------------------------------------------------------

    async def get_me(self, bot: BotState, params: Params) -> Any:
        """getMe."""
        return {
            **bot.user,
            "can_join_groups": True,
            "can_read_all_group_messages": False,
            "supports_inline_queries": False,
            "can_connect_to_business": False,
            "has_main_web_app": False,
        }

    async def acknowledge(self, bot: BotState, params: Params) -> Any:
        """logOut and close: nothing to do offline."""
        return True

    async def get_updates(self, bot: BotState, params: Params) -> Any:
        """getUpdates with long polling."""
        if bot.webhook is not None:
            raise conflict(
                "can't use getUpdates method while webhook is active; use deleteWebhook to "
                "delete the webhook first"
            )
        limit = min(max(params.integer("limit", 100) or 100, 1), 100)
        timeout = min(max(params.number("timeout") or 0.0, 0.0), MAX_POLL_TIMEOUT)
        bot.updates.set_allowed(params.obj("allowed_updates"))
        return await bot.updates.get(params.integer("offset"), limit, timeout)

    async def set_webhook(self, bot: BotState, params: Params) -> Any:
        """setWebhook; plain http is accepted too, since test receivers run locally."""
        url = params.text("url") or ""
        if not url:
            return await self.delete_webhook(bot, params)
        if not url.startswith(("http://", "https://")):
            raise bad_request("bad webhook: An HTTPS URL must be provided for webhook")
        secret = params.text("secret_token")
        if secret is not None and not _SECRET_TOKEN.fullmatch(secret):
            raise bad_request("secret token contains unallowed characters")
        max_connections = min(max(params.integer("max_connections", 40) or 40, 1), 100)
        allowed = params.obj("allowed_updates")
        bot.updates.set_allowed(allowed)
        pending = await self._detach_webhook(bot)
        if params.flag("drop_pending_updates"):
            pending = []
        options = self._webhook_options
        dispatcher = WebhookDispatcher(
            self._http_client(),
            url,
            secret_token=secret,
            max_connections=max_connections,
            allowed_updates=allowed if isinstance(allowed, list) else None,
            retry_delay=options.retry_delay,
            max_retry_delay=options.max_retry_delay,
        )
        for update in pending:
            dispatcher.put(update)
        bot.webhook = dispatcher
        dispatcher.start()
        return True

    async def delete_webhook(self, bot: BotState, params: Params) -> Any:
        """deleteWebhook: pending updates go back to getUpdates unless dropped."""
        pending = await self._detach_webhook(bot)
        if params.flag("drop_pending_updates"):
            bot.updates.clear()
        else:
            bot.updates.push_front(pending)
        return True

    async def _detach_webhook(self, bot: BotState) -> list[dict[str, Any]]:
        """Stop webhook delivery and return every undelivered update, oldest first."""
        dispatcher = bot.webhook
        if dispatcher is None:
            return bot.updates.drain()
        bot.webhook = None
        await dispatcher.stop()
        return dispatcher.drain()

    async def get_webhook_info(self, bot: BotState, params: Params) -> Any:
        """getWebhookInfo."""
        if bot.webhook is not None:
            return bot.webhook.info()
        return {
            "url": "",
            "has_custom_certificate": False,
            "pending_update_count": len(bot.updates),
        }

    async def get_file(self, bot: BotState, params: Params) -> Any:
        """getFile (refuses files over 20 MB)."""
        file_id = params.text("file_id")
        if not file_id:
            raise bad_request("file_id is empty")
        return file_info(bot.files.require(file_id))

    @staticmethod
    def _commands_key(params: Params) -> str:
        scope = params.obj("scope", "scope") or {"type": "default"}
        return json.dumps(scope, sort_keys=True) + "|" + (params.text("language_code") or "")

    async def set_my_commands(self, bot: BotState, params: Params) -> Any:
        """setMyCommands (per scope and language)."""
        commands = check_command_list(params.obj("commands", "commands"))
        bot.commands[self._commands_key(params)] = commands
        return True

    async def get_my_commands(self, bot: BotState, params: Params) -> Any:
        """getMyCommands."""
        return bot.commands.get(self._commands_key(params), [])

    async def delete_my_commands(self, bot: BotState, params: Params) -> Any:
        """deleteMyCommands."""
        bot.commands.pop(self._commands_key(params), None)
        return True

    async def get_chat(self, bot: BotState, params: Params) -> Any:
        """getChat."""
        return self.sender.find_chat(bot, params).full_info()
