"""A small client for the Zalo Official Account Open API v3 and its OAuth token endpoint.

Calls carry the OA's access token in an `access_token` header and answer
`{"error": 0, "message": "Success", "data": {...}}` or a negative `error` with a `message`.
The token endpoint (`POST {oauth}/v4/oa/access_token`, header `secret_key`, form
`app_id, grant_type=refresh_token, refresh_token`) answers the new pair, or `error`/
`error_name`/`error_description`.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import httpx

from bot.channels.downloads import fetch_limited

OFFICIAL_API_URL = "https://openapi.zalo.me"
OFFICIAL_OAUTH_URL = "https://oauth.zaloapp.com"
MESSAGE_LIMIT = 2000  # a consultation text message takes up to 2,000 characters
BUTTON_LIMIT = 5  # a text message carries at most this many buttons
BUTTON_TITLE_LIMIT = 100

# Error codes the channel acts on (the documentation's list is long; these decide what to do).
TOKEN_INVALID = (-216, -220, -124)  # the access token is invalid or expired: refresh, retry
WINDOW_CLOSED = -230  # the user has not written for 7 days: consultation messages refused
QUOTA = (-211, -32)  # the OA's quota (or the app's rate) is spent
NOT_FOLLOWER = (-213, -201)  # the user unfollowed the OA, or the id is not one of its users
NIGHT = -234  # broadcasts ("tin truyền thông") are refused between 22:00 and 06:00


class ZaloOaApiError(Exception):
    """The API answered a negative `error` (or something that is not its JSON at all)."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message


@dataclass(frozen=True)
class TokenPair:
    """What a refresh answers: a new access token and a new single-use refresh token."""

    access_token: str
    refresh_token: str
    access_expires_at: datetime


class ZaloOaClient:
    """Calls one OA's API; the access token is passed per call (it changes on refresh)."""

    def __init__(
        self,
        *,
        app_id: str,
        app_secret: str,
        api_url: str = OFFICIAL_API_URL,
        oauth_url: str = OFFICIAL_OAUTH_URL,
        http: httpx.AsyncClient,
    ) -> None:
        self.app_id = app_id
        self._app_secret = app_secret
        self._api = api_url.rstrip("/")
        self._oauth = oauth_url.rstrip("/")
        self._http = http

    async def _call(self, method: str, path: str, access_token: str, **kw: Any) -> dict[str, Any]:
        """One API call; returns `data`, raises ZaloOaApiError on a negative `error`."""
        headers = {"access_token": access_token, **kw.pop("headers", {})}
        response = await self._http.request(method, f"{self._api}{path}", headers=headers, **kw)
        try:
            body = response.json()
        except ValueError:
            raise ZaloOaApiError(-response.status_code, response.text[:200] or "no body") from None
        if not isinstance(body, dict):
            raise ZaloOaApiError(-response.status_code, "unexpected answer")
        code = int(body.get("error") or 0)
        if code != 0:
            raise ZaloOaApiError(code, str(body.get("message") or "error"))
        data = body.get("data")
        return data if isinstance(data, dict) else {}

    async def send_message(
        self, access_token: str, user_id: str, message: dict[str, Any], *, kind: str = "cs"
    ) -> dict[str, Any]:
        """POST /v3.0/oa/message/{cs|promotion}: a consultation message or a broadcast."""
        return await self._call(
            "POST",
            f"/v3.0/oa/message/{kind}",
            access_token,
            json={"recipient": {"user_id": user_id}, "message": message},
        )

    async def upload_image(self, access_token: str, data: bytes, filename: str) -> str:
        """POST /v2.0/oa/upload/image; returns the attachment id to send it by."""
        uploaded = await self._call(
            "POST",
            "/v2.0/oa/upload/image",
            access_token,
            files={"file": (filename, data, "image/jpeg")},
        )
        return str(uploaded.get("attachment_id") or "")

    async def get_oa(self, access_token: str) -> dict[str, Any]:
        """GET /v2.0/oa/getoa: the OA's own profile (checks a token)."""
        return await self._call("GET", "/v2.0/oa/getoa", access_token)

    async def refresh(self, refresh_token: str, now: datetime) -> TokenPair:
        """Trade the single-use refresh token for a new pair."""
        response = await self._http.post(
            f"{self._oauth}/v4/oa/access_token",
            headers={"secret_key": self._app_secret},
            data={
                "app_id": self.app_id,
                "grant_type": "refresh_token",
                "refresh_token": refresh_token,
            },
        )
        try:
            body = response.json()
        except ValueError:
            raise ZaloOaApiError(-response.status_code, response.text[:200] or "no body") from None
        if not isinstance(body, dict) or not body.get("access_token"):
            code = int(body.get("error") or -1) if isinstance(body, dict) else -1
            text = str(body.get("error_description") or body.get("error_name") or "refused")
            raise ZaloOaApiError(code, text)
        return TokenPair(
            access_token=str(body["access_token"]),
            refresh_token=str(body["refresh_token"]),
            access_expires_at=now + timedelta(seconds=int(body.get("expires_in") or 90000)),
        )

    async def download(self, url: str, max_bytes: int) -> bytes:
        """Fetch a file an update points at, refusing anything too big."""
        return await fetch_limited(self._http, url, max_bytes)
