"""People at the console: a browser page or a plain HTTP client, doing what officers do."""

from __future__ import annotations

import re
import time
from datetime import UTC, datetime
from typing import Any

import httpx
import pyotp

PASSWORD = "mat-khau-rat-dai-2026"
_CSRF = re.compile(r'name="csrf" value="([^"]+)"')
_SECRET = re.compile(r'id="totp-secret">([A-Z2-7]+)<')


def fresh_code(secret: str, used: list[int]) -> str:
    """A TOTP code for a step newer than the last one used (a code is accepted once).

    The server takes one step of clock drift either way, so three steps are usable at any
    moment: oldest first, waiting for the clock only when all three are spent.
    """
    totp = pyotp.TOTP(secret)
    while True:
        current = totp.timecode(datetime.now(UTC))
        last = used[-1] if used else 0
        for step in (current - 1, current, current + 1):
            if step > last:
                used.append(step)
                return totp.generate_otp(step)
        time.sleep(0.5)


class ConsoleClient:
    """An officer's browser reduced to HTTP: cookies, CSRF tokens, forms."""

    def __init__(self, base: str) -> None:
        self.http = httpx.AsyncClient(base_url=base + "/console", timeout=30)
        self.secret = ""
        self.used: list[int] = []

    async def aclose(self) -> None:
        """Close the connection pool."""
        await self.http.aclose()

    async def csrf(self, path: str) -> str:
        """The CSRF token of the form on a page."""
        page = await self.http.get(path)
        found = _CSRF.search(page.text)
        assert found, page.text[:500]
        return found.group(1)

    async def post(self, path: str, form: dict[str, str], *, csrf_from: str = "") -> httpx.Response:
        """Submit a form the way the page would (with its CSRF token)."""
        token = await self.csrf(csrf_from or path)
        return await self.http.post(path, data={"csrf": token, **form})

    async def open_account(self, code: str, name: str, username: str) -> None:
        """Redeem an invite, then enrol TOTP with the secret the page shows."""
        fields = {"code": code, "name": name, "username": username}
        done = await self.post("/join", {**fields, "password": PASSWORD, "password2": PASSWORD})
        assert done.status_code == 303 and done.headers["location"].endswith("/enroll"), done.text
        page = await self.http.get("/enroll")
        found = _SECRET.search(page.text)
        assert found, page.text[:500]
        self.secret = found.group(1)
        code_now = fresh_code(self.secret, self.used)
        # The token of the page that showed the secret: a GET of /enroll would show a new one.
        token = _CSRF.search(page.text)
        assert token
        done = await self.http.post("/enroll", data={"csrf": token.group(1), "code": code_now})
        assert done.status_code == 303 and done.headers["location"].endswith("/tips"), done.text

    async def log_in(self, username: str, *, code: str = "", password: str = PASSWORD) -> Any:
        """Submit the login form."""
        code = code or fresh_code(self.secret, self.used)
        form = {"username": username, "password": password, "code": code}
        return await self.post("/login", form)
