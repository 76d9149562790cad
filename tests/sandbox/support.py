"""Helpers shared by the emulator tests: users, a fake clock, a thin Bot API caller, images."""

from __future__ import annotations

import io
from typing import Any

import httpx
from PIL import Image

from sandbox.client import User

TOKEN = "123456:TEST"
ANN = User(1001, "Ann", "ann")
BEN = User(1002, "Ben", last_name="Tran")


class FakeClock:
    """A monotonic clock the tests move by hand, so limits never depend on wall time."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        """Move time forward."""
        self.now += seconds


class BotApiClient:
    """Calls Bot API methods the way a bot library does; returns the whole JSON answer."""

    def __init__(self, http: httpx.AsyncClient, token: str = TOKEN) -> None:
        self.http = http
        self.token = token

    async def call(self, method: str, **params: Any) -> dict[str, Any]:
        """POST a JSON-bodied call and return the decoded answer, errors included."""
        response = await self.http.post(f"/bot{self.token}/{method}", json=params)
        body: dict[str, Any] = response.json()
        if not body["ok"]:
            assert response.status_code == body["error_code"]
        return body

    async def ok(self, method: str, **params: Any) -> Any:
        """Call and insist on success; return the result."""
        body = await self.call(method, **params)
        assert body["ok"], body
        return body["result"]


def png(width: int, height: int) -> bytes:
    """Make a small real PNG."""
    buffer = io.BytesIO()
    Image.new("RGB", (width, height), (200, 30, 30)).save(buffer, format="PNG")
    return buffer.getvalue()
