"""Who may reach an emulator that listens beyond loopback: the control token.

The control APIs (Telegram's /control, Zalo's under their mounts) let a caller read every chat
and act as any user, and the page drives them from the browser. On loopback only this machine
reaches them; once `--allow-remote` binds another address, every request from another machine
must show the token: an `X-Control-Token` header (programs) or the cookie /web/unlock sets
(the browser page). The Bot API (`/bot<token>/...`, `/file/bot<token>/...`) stays open: it is
authenticated by the bot's own token, and a bot on another machine is what remote use is for.
"""

from __future__ import annotations

import hmac
import ipaddress
from http.cookies import SimpleCookie
from typing import Any

TOKEN_HEADER = "X-Control-Token"
TOKEN_COOKIE = "tinbao_control"
UNLOCK_PATH = "/web/unlock"
OPEN_PREFIXES = ("/bot", "/file/bot")


def is_loopback(host: str) -> bool:
    """Whether `host` (a bind address or a peer) is this machine only."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False  # a name that may resolve elsewhere, or a typo: treat it as exposed


def _shown_token(scope: dict[str, Any]) -> str:
    """The token a request carries, in its header or its cookie ("" when none)."""
    headers = {key.decode("latin-1").lower(): value for key, value in scope.get("headers", [])}
    header = headers.get(TOKEN_HEADER.lower())
    if header:
        return str(header.decode("latin-1"))
    cookie = SimpleCookie(headers.get("cookie", b"").decode("latin-1"))
    return cookie[TOKEN_COOKIE].value if TOKEN_COOKIE in cookie else ""


class ControlTokenMiddleware:
    """Refuse (401) requests from other machines that do not show the control token."""

    def __init__(self, app: Any, token: str) -> None:
        self.app = app
        self.token = token.encode()

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        """Pass loopback peers, the Bot API and the unlock page; check the token elsewhere."""
        if scope["type"] not in ("http", "websocket") or self._open(scope):
            await self.app(scope, receive, send)
            return
        if hmac.compare_digest(_shown_token(scope).encode(), self.token):
            await self.app(scope, receive, send)
            return
        body = b'{"ok": false, "error": "control token required"}'
        await send(
            {
                "type": "http.response.start",
                "status": 401,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", b"%d" % len(body)),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})

    @staticmethod
    def _open(scope: dict[str, Any]) -> bool:
        """Requests that need no token: from this machine, to the Bot API, or unlocking."""
        client = scope.get("client")
        path = str(scope.get("path", ""))
        return (
            (client is not None and is_loopback(str(client[0])))
            or path.startswith(OPEN_PREFIXES)
            or path == UNLOCK_PATH
        )
