"""Playing a Zalo citizen over an emulator's control API (tests, benches, the demo).

Zalo has no buttons: the bot's choices are numbered lines, and the citizen types a number or a
label back. `choose("Ma túy")` finds the number of the line that says so and types it.
"""

from __future__ import annotations

import asyncio
import base64
import re
import time
from collections.abc import Callable
from typing import Any

import httpx

CHOICE_LINE = re.compile(r"^(\d+)\. (.+)$", re.MULTILINE)


class NoAnswerError(AssertionError):
    """The bot did not answer as expected in time."""


class ZaloCitizen:
    """One citizen of a Zalo emulator (Bot Platform or OA: the same control API)."""

    def __init__(self, http: httpx.AsyncClient, user: str, display_name: str = "") -> None:
        self.http = http
        self.user = user
        self.display_name = display_name or user
        self.chat_id = ""
        self.seen = 0  # bot messages already read

    async def _post(self, **fields: Any) -> dict[str, Any]:
        body = {"user": self.user, "display_name": self.display_name, **fields}
        answer = await self.http.post("/control/messages", json=body)
        answer.raise_for_status()
        sent: dict[str, Any] = answer.json()
        self.chat_id = str(sent["chat_id"])
        return sent

    async def follow(self, followed: bool = True) -> None:
        """Follow (or unfollow) the Official Account (OA emulator only)."""
        body = {"user": self.user, "display_name": self.display_name, "followed": followed}
        answer = await self.http.post("/control/follow", json=body)
        answer.raise_for_status()
        self.chat_id = str(answer.json()["chat_id"])

    async def send(self, **fields: Any) -> dict[str, Any]:
        """Send without waiting (text=, image=bytes, file=(name, bytes), location=, sticker=...)."""
        if isinstance(fields.get("image"), bytes):
            fields["image"] = base64.b64encode(fields["image"]).decode()
        if isinstance(fields.get("file"), tuple):
            name, data = fields["file"]
            fields["file"] = {"name": name, "data": base64.b64encode(data).decode()}
        return await self._post(**fields)

    async def messages(self) -> list[dict[str, Any]]:
        """Everything the bot sent this citizen."""
        if not self.chat_id:
            return []
        answer = await self.http.get(f"/control/chats/{self.chat_id}/messages")
        return [m for m in answer.json()["messages"] if m["from"] == "bot"]

    async def wait_for(
        self, expect: str | Callable[[str], bool], *, timeout: float = 20.0
    ) -> list[dict[str, Any]]:
        """Wait until a new bot message matches; return the new messages up to it."""
        wanted = expect if callable(expect) else (lambda text: expect.lower() in text.lower())
        deadline = time.monotonic() + timeout
        while True:
            found = await self.messages()
            fresh = found[self.seen :]
            for index, message in enumerate(fresh):
                if wanted(message.get("text") or ""):
                    self.seen += index + 1
                    return fresh[: index + 1]
            if time.monotonic() > deadline:
                shown = "\n---\n".join((m.get("text") or "")[:300] for m in fresh[-4:])
                raise NoAnswerError(f"no answer matching {expect!r}; last messages:\n{shown}")
            await asyncio.sleep(0.05)

    async def say(
        self, text: str, expect: str | Callable[[str], bool] = lambda _: True, **kw: Any
    ) -> list[dict[str, Any]]:
        """Type a text and wait for the answer that matches `expect`."""
        await self.send(text=text)
        return await self.wait_for(expect, **kw)

    def number_of(self, messages: list[dict[str, Any]], label: str) -> str:
        """The number of the choice whose label contains `label`, in the latest message."""
        for message in reversed(messages):
            for number, choice in CHOICE_LINE.findall(message.get("text") or ""):
                if label.lower() in choice.lower():
                    return str(number)
        raise NoAnswerError(f"no choice {label!r} in: {[m.get('text') for m in messages][-2:]}")

    async def last_choices(self) -> list[dict[str, Any]]:
        """The latest bot message that offers numbered choices."""
        for message in reversed(await self.messages()):
            if CHOICE_LINE.search(message.get("text") or ""):
                return [message]
        return []

    async def choose(
        self, label: str, expect: str | Callable[[str], bool] = lambda _: True, **kw: Any
    ) -> list[dict[str, Any]]:
        """Type the number of a choice (found by its label) and wait for the answer."""
        number = self.number_of(await self.last_choices(), label)
        return await self.say(number, expect, **kw)
