"""A small client for the Zalo Bot Platform API (Telegram-like; no maintained Python SDK).

`{base}/bot<TOKEN>/<method>` with a JSON body; answers `{"ok": true, "result": ...}` or
`{"ok": false, "error_code": N, "description": "..."}`.
"""

from __future__ import annotations

from typing import Any

import httpx

from bot.channels.downloads import fetch_limited

OFFICIAL_API_URL = "https://bot-api.zaloplatforms.com"
MESSAGE_LIMIT = 2000  # sendMessage takes 1-2000 characters


class ZaloBotApiError(Exception):
    """The platform answered `ok: false` (or with an HTTP error and no body we understand)."""

    def __init__(self, code: int, description: str, retry_after: float | None = None) -> None:
        super().__init__(f"{code}: {description}")
        self.code = code
        self.description = description
        self.retry_after = retry_after


class ZaloBotClient:
    """Calls one bot's methods; `http` is shared and owned by the caller."""

    def __init__(self, token: str, *, base_url: str = OFFICIAL_API_URL, http: httpx.AsyncClient):
        self._root = f"{base_url.rstrip('/')}/bot{token}"
        self._http = http

    async def call(self, method: str, params: dict[str, Any] | None = None, **kw: Any) -> Any:
        """POST one method and return its `result`; raise ZaloBotApiError on `ok: false`."""
        response = await self._http.post(f"{self._root}/{method}", json=params or {}, **kw)
        try:
            body = response.json()
        except ValueError:
            raise ZaloBotApiError(response.status_code, response.text[:200] or "no body") from None
        if not isinstance(body, dict):
            raise ZaloBotApiError(response.status_code, "unexpected answer")
        if body.get("ok") is True:
            return body.get("result")
        code = int(body.get("error_code") or response.status_code)
        retry = (body.get("parameters") or {}).get("retry_after")
        if retry is None and response.headers.get("Retry-After", "").isdigit():
            retry = response.headers["Retry-After"]
        raise ZaloBotApiError(
            code,
            str(body.get("description") or "error"),
            float(retry) if retry is not None else None,
        )

    async def get_me(self) -> dict[str, Any]:
        """The bot's own account."""
        return dict(await self.call("getMe"))

    async def get_updates(self, timeout: int = 30) -> list[dict[str, Any]]:
        """Wait up to `timeout` s for updates (the platform answers one or a list)."""
        result = await self.call(
            "getUpdates", {"timeout": str(timeout)}, timeout=httpx.Timeout(timeout + 10.0)
        )
        if not result:
            return []
        return [result] if isinstance(result, dict) else [u for u in result if isinstance(u, dict)]

    async def set_webhook(self, url: str, secret_token: str) -> Any:
        """Send updates to `url`, with the secret in every request."""
        return await self.call("setWebhook", {"url": url, "secret_token": secret_token})

    async def delete_webhook(self) -> Any:
        """Stop the webhook (getUpdates works again)."""
        return await self.call("deleteWebhook")

    async def get_webhook_info(self) -> dict[str, Any]:
        """The platform's view of the webhook."""
        return dict(await self.call("getWebhookInfo") or {})

    async def send_message(self, chat_id: str, text: str) -> dict[str, Any]:
        """Send a text of 1-2000 characters."""
        return dict(await self.call("sendMessage", {"chat_id": chat_id, "text": text}) or {})

    async def send_photo(self, chat_id: str, photo_url: str, caption: str = "") -> dict[str, Any]:
        """Send a photo the platform fetches from a URL."""
        params = {"chat_id": chat_id, "photo": photo_url}
        if caption:
            params["caption"] = caption
        return dict(await self.call("sendPhoto", params) or {})

    async def send_chat_action(self, chat_id: str, action: str = "typing") -> Any:
        """Show "typing…" while a slow answer is prepared."""
        return await self.call("sendChatAction", {"chat_id": chat_id, "action": action})

    async def download(self, url: str, max_bytes: int) -> bytes:
        """Fetch a file an update points at, refusing anything too big."""
        return await fetch_limited(self._http, url, max_bytes)
