"""Async client for the emulator's control API: act as Telegram users, read what they see."""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass
from types import TracebackType
from typing import Any

import httpx

from sandbox.access import TOKEN_HEADER

MediaItem = tuple[str, bytes, dict[str, Any]]


@dataclass(frozen=True, slots=True)
class User:
    """A Telegram user to act as; their private chat with the bot has chat id == id."""

    id: int
    first_name: str
    username: str | None = None
    last_name: str | None = None
    language_code: str | None = None

    def as_json(self) -> dict[str, Any]:
        """Return the control API's `user` object."""
        data: dict[str, Any] = {"id": self.id, "first_name": self.first_name}
        for key in ("username", "last_name", "language_code"):
            value = getattr(self, key)
            if value is not None:
                data[key] = value
        return data


class EmulatorError(Exception):
    """The control API refused a request."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(f"{status}: {message}")
        self.status = status
        self.message = message


class EmulatorClient:
    """Drives the emulator as users do; keeps a per-chat cursor for wait_bot_messages."""

    def __init__(
        self,
        url: str,
        *,
        bot: str | None = None,
        timeout: float = 30.0,
        transport: httpx.AsyncBaseTransport | None = None,
        control_token: str | None = None,
    ) -> None:
        self.url = url.rstrip("/")
        self._params = {"bot": bot} if bot else {}
        headers = {TOKEN_HEADER: control_token} if control_token else {}
        # A transport such as httpx.ASGITransport(app=emulator.app) skips the network.
        self._http = httpx.AsyncClient(
            base_url=self.url, timeout=timeout, transport=transport, headers=headers
        )
        # chat id -> seq of the newest activity this client already handed out.
        self._cursors: dict[int, int] = {}

    async def __aenter__(self) -> EmulatorClient:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Close the HTTP connection pool."""
        await self._http.aclose()

    # -- plumbing -----------------------------------------------------------------------

    async def _call(
        self,
        method: str,
        path: str,
        *,
        body: dict[str, Any] | None = None,
        params: dict[str, Any] | None = None,
        timeout: float | None = None,
    ) -> dict[str, Any]:
        response = await self._http.request(
            method,
            path,
            json=body,
            params={**self._params, **(params or {})},
            timeout=httpx.USE_CLIENT_DEFAULT if timeout is None else timeout,
        )
        try:
            data = response.json()
        except json.JSONDecodeError:
            raise EmulatorError(response.status_code, response.text) from None
        if response.status_code >= 400 or not data.get("ok"):
            raise EmulatorError(response.status_code, str(data.get("error", data)))
        return dict(data)

    def _advance(self, chat_id: int, seq: int) -> None:
        if seq > self._cursors.get(chat_id, 0):
            self._cursors[chat_id] = seq

    def _took(self, message: dict[str, Any]) -> dict[str, Any]:
        self._advance(int(message["chat_id"]), int(message["seq"]))
        return message

    @staticmethod
    def _media(kind: str, data: bytes | None, **meta: Any) -> dict[str, Any]:
        media: dict[str, Any] = {"kind": kind}
        if data is not None:
            media["data"] = base64.b64encode(data).decode("ascii")
        media.update({key: value for key, value in meta.items() if value is not None})
        return media

    async def _post_message(self, user: User, chat_id: int | None, **fields: Any) -> dict[str, Any]:
        body = {"user": user.as_json(), **{k: v for k, v in fields.items() if v is not None}}
        if chat_id is not None:
            body["chat_id"] = chat_id
        data = await self._call("POST", "/control/messages", body=body)
        return self._took(data["message"])

    # -- acting as users ----------------------------------------------------------------

    async def send_text(
        self,
        user: User,
        text: str,
        *,
        chat_id: int | None = None,
        reply_to: int | None = None,
        chat_title: str | None = None,
        **extra: Any,
    ) -> dict[str, Any]:
        """Send a text message (commands get bot_command entities); returns it."""
        return await self._post_message(
            user, chat_id, text=text, reply_to=reply_to, chat_title=chat_title, fields=extra or None
        )

    async def send_texts(
        self, items: list[tuple[User, str]], *, chat_id: int | None = None
    ) -> list[dict[str, Any]]:
        """Send many text messages in one request; returns {chat_id, message_id, seq} each."""
        body = {
            "messages": [
                {
                    "user": user.as_json(),
                    "text": text,
                    **({"chat_id": chat_id} if chat_id is not None else {}),
                }
                for user, text in items
            ]
        }
        data = await self._call("POST", "/control/messages/batch", body=body)
        summary = list(data["messages"])
        for entry in summary:
            self._advance(int(entry["chat_id"]), int(entry["seq"]))
        return summary

    async def send_raw(
        self, user: User, fields: dict[str, Any], *, chat_id: int | None = None
    ) -> dict[str, Any]:
        """Send a message made of raw Bot API fields (sticker, poll, contact, dice, ...)."""
        return await self._post_message(user, chat_id, fields=fields)

    async def _send_media(
        self,
        user: User,
        kind: str,
        data: bytes | None,
        *,
        caption: str | None,
        chat_id: int | None,
        media_group_id: str | None = None,
        **meta: Any,
    ) -> dict[str, Any]:
        return await self._post_message(
            user,
            chat_id,
            media=self._media(kind, data, **meta),
            caption=caption,
            media_group_id=media_group_id,
        )

    async def send_photo(
        self,
        user: User,
        data: bytes,
        *,
        caption: str | None = None,
        chat_id: int | None = None,
        media_group_id: str | None = None,
    ) -> dict[str, Any]:
        """Send a photo (width and height are read with Pillow when possible)."""
        return await self._send_media(
            user, "photo", data, caption=caption, chat_id=chat_id, media_group_id=media_group_id
        )

    async def send_document(
        self,
        user: User,
        data: bytes,
        *,
        filename: str,
        mime_type: str,
        caption: str | None = None,
        chat_id: int | None = None,
    ) -> dict[str, Any]:
        """Send a document."""
        return await self._send_media(
            user,
            "document",
            data,
            caption=caption,
            chat_id=chat_id,
            filename=filename,
            mime_type=mime_type,
        )

    async def send_video(
        self,
        user: User,
        data: bytes,
        *,
        caption: str | None = None,
        chat_id: int | None = None,
        filename: str | None = "video.mp4",
        mime_type: str | None = "video/mp4",
        duration: int = 0,
        width: int | None = None,
        height: int | None = None,
    ) -> dict[str, Any]:
        """Send a video."""
        return await self._send_media(
            user,
            "video",
            data,
            caption=caption,
            chat_id=chat_id,
            filename=filename,
            mime_type=mime_type,
            duration=duration,
            width=width,
            height=height,
        )

    async def send_voice(
        self,
        user: User,
        data: bytes,
        *,
        caption: str | None = None,
        chat_id: int | None = None,
        duration: int = 0,
        mime_type: str | None = "audio/ogg",
    ) -> dict[str, Any]:
        """Send a voice note."""
        return await self._send_media(
            user,
            "voice",
            data,
            caption=caption,
            chat_id=chat_id,
            duration=duration,
            mime_type=mime_type,
        )

    async def send_audio(
        self,
        user: User,
        data: bytes,
        *,
        caption: str | None = None,
        chat_id: int | None = None,
        filename: str | None = "audio.mp3",
        mime_type: str | None = "audio/mpeg",
        duration: int = 0,
    ) -> dict[str, Any]:
        """Send an audio file."""
        return await self._send_media(
            user,
            "audio",
            data,
            caption=caption,
            chat_id=chat_id,
            filename=filename,
            mime_type=mime_type,
            duration=duration,
        )

    async def send_declared_file(
        self,
        user: User,
        *,
        kind: str,
        size: int,
        filename: str | None = None,
        mime_type: str | None = None,
        caption: str | None = None,
        chat_id: int | None = None,
    ) -> dict[str, Any]:
        """Send a file known only by its size (cheaply simulates a file over 20 MB)."""
        return await self._send_media(
            user,
            kind,
            None,
            caption=caption,
            chat_id=chat_id,
            size=size,
            filename=filename,
            mime_type=mime_type,
        )

    async def send_album(
        self,
        user: User,
        items: list[MediaItem],
        *,
        caption: str | None = None,
        chat_id: int | None = None,
    ) -> list[dict[str, Any]]:
        """Send an album: (kind, bytes, meta) items become one update each, one media_group_id.

        meta may hold filename, mime_type, duration, width, height and caption.
        """
        payload = []
        for kind, data, meta in items:
            extra = dict(meta)
            item_caption = extra.pop("caption", None)
            entry = self._media(kind, data, **extra)
            if item_caption is not None:
                entry["caption"] = item_caption
            payload.append(entry)
        body: dict[str, Any] = {"user": user.as_json(), "items": payload}
        if caption is not None:
            body["caption"] = caption
        if chat_id is not None:
            body["chat_id"] = chat_id
        result = await self._call("POST", "/control/albums", body=body)
        return [self._took(message) for message in result["messages"]]

    async def send_location(
        self, user: User, latitude: float, longitude: float, *, chat_id: int | None = None
    ) -> dict[str, Any]:
        """Share a location."""
        return await self._post_message(
            user, chat_id, location={"latitude": latitude, "longitude": longitude}
        )

    async def edit_text(
        self, user: User, chat_id: int, message_id: int, text: str
    ) -> dict[str, Any]:
        """Edit one of the user's messages (the bot gets edited_message)."""
        body = {
            "user": user.as_json(),
            "chat_id": chat_id,
            "message_id": message_id,
            "text": text,
        }
        data = await self._call("POST", "/control/edits", body=body)
        return self._took(data["message"])

    async def press(
        self, user: User, chat_id: int, message_id: int, data: str, *, force: bool = False
    ) -> str:
        """Press an inline button; returns the callback query id.

        force=True presses even when the message has no button with this data.
        """
        body = {
            "user": user.as_json(),
            "chat_id": chat_id,
            "message_id": message_id,
            "data": data,
            "force": force,
        }
        result = await self._call("POST", "/control/callbacks", body=body)
        # Replies to the press are what comes after it.
        self._advance(chat_id, int(result["seq"]))
        return str(result["callback_query_id"])

    async def callback_answer(self, query_id: str, timeout: float = 5) -> dict[str, Any] | None:
        """Return the bot's answerCallbackQuery (text, show_alert, url), waiting for it."""
        data = await self._call(
            "GET",
            f"/control/callbacks/{query_id}",
            params={"timeout": timeout},
            timeout=timeout + 10,
        )
        answer = data.get("answer")
        return dict(answer) if answer is not None else None

    async def block(self, user: User) -> None:
        """The user blocks the bot."""
        await self._call("POST", "/control/block", body={"user": user.as_json()})

    async def unblock(self, user: User) -> None:
        """The user unblocks the bot."""
        await self._call("POST", "/control/unblock", body={"user": user.as_json()})

    async def add_bot_to_group(
        self, user: User, chat_id: int, title: str, *, username: str | None = None
    ) -> dict[str, Any]:
        """The user adds the bot to a group (my_chat_member + new_chat_members message).

        With `username` it is a public supergroup.
        """
        body: dict[str, Any] = {"user": user.as_json(), "chat_id": chat_id, "title": title}
        if username:
            body["username"] = username
        data = await self._call("POST", "/control/groups/add", body=body)
        self._advance(chat_id, int(data["seq"]))
        return dict(data["chat"])

    async def remove_bot_from_group(self, user: User, chat_id: int) -> dict[str, Any]:
        """The user removes the bot from a group."""
        body = {"user": user.as_json(), "chat_id": chat_id}
        data = await self._call("POST", "/control/groups/remove", body=body)
        self._advance(chat_id, int(data["seq"]))
        return dict(data["chat"])

    # -- reading ------------------------------------------------------------------------

    async def transcript(self, chat_id: int) -> list[dict[str, Any]]:
        """Return the chat as its user sees it: both sides, in order, edits applied."""
        data = await self._call("GET", f"/control/chats/{chat_id}/messages")
        return list(data["messages"])

    async def bot_messages(self, chat_id: int) -> list[dict[str, Any]]:
        """Return only the bot's messages of a chat."""
        return [m for m in await self.transcript(chat_id) if m["from_bot"]]

    async def chat(self, chat_id: int) -> dict[str, Any]:
        """Return a chat's info, current reply keyboard, block and membership state."""
        data = await self._call("GET", f"/control/chats/{chat_id}")
        return dict(data["chat"])

    async def wait_bot_messages(
        self,
        chat_id: int,
        count: int = 1,
        *,
        after_message_id: int | None = None,
        timeout: float = 5.0,
    ) -> list[dict[str, Any]]:
        """Wait for bot messages (new or edited) after a message, or after this client's cursor.

        Without after_message_id the cursor is the newest thing this client returned for the
        chat (a sent message, a press, earlier waits), so a send followed by a wait yields
        exactly the replies. Raises TimeoutError, with the transcript's tail, on timeout.
        """
        params: dict[str, Any] = {"count": count, "timeout": timeout}
        if after_message_id is not None:
            params["after_message_id"] = after_message_id
        else:
            params["after_seq"] = self._cursors.get(chat_id, 0)
        try:
            data = await self._call(
                "GET", f"/control/chats/{chat_id}/wait", params=params, timeout=timeout + 10
            )
        except EmulatorError as error:
            if error.status != 404:
                raise
            data = {"messages": [], "timed_out": True}
        messages = list(data["messages"])
        if data["timed_out"]:
            raise TimeoutError(
                f"expected {count} bot message(s) in chat {chat_id} within {timeout}s, "
                f"got {len(messages)}; transcript tail:\n{await self._tail(chat_id)}"
            )
        for message in messages:
            self._took(message)
        return messages

    async def _tail(self, chat_id: int, size: int = 8) -> str:
        try:
            messages = await self.transcript(chat_id)
        except EmulatorError as error:
            return f"  ({error.message})"
        lines = []
        for message in messages[-size:]:
            who = "bot " if message["from_bot"] else "user"
            body = message["text"] or message["caption"] or message["media"] or ""
            edited = " (edited)" if message["edited"] else ""
            lines.append(f"  #{message['message_id']} {who}: {body!s:.200}{edited}")
        return "\n".join(lines) or "  (empty)"

    async def counters(self) -> dict[str, Any]:
        """Return the counters: sent per chat, 429 refusals, errors, calls."""
        data = await self._call("GET", "/control/counters")
        return dict(data["counters"])

    async def commands(self) -> list[dict[str, Any]]:
        """Return the bot's default-scope commands from setMyCommands."""
        data = await self._call("GET", "/control/commands")
        return list(data["commands"])

    async def file_bytes(self, file_id: str) -> bytes:
        """Download a file (one the bot sent, or a user's)."""
        response = await self._http.get(f"/control/files/{file_id}", params=self._params)
        if response.status_code != 200:
            raise EmulatorError(response.status_code, response.text)
        return response.content

    # -- fault injection ----------------------------------------------------------------

    async def add_fault(
        self,
        method: str = "*",
        mode: str = "error",
        *,
        status: int = 500,
        retry_after: int = 1,
        count: int | None = None,
        seconds: float | None = None,
        chat_id: int | None = None,
        description: str | None = None,
    ) -> dict[str, Any]:
        """Add a fault rule (see sandbox/faults.py); returns it with its id.

        mode "error" answers `status` for the next `count` calls and/or for `seconds`;
        "hold_before" and "hold_after" hold each matching call `seconds` before or after it
        takes effect.
        """
        body: dict[str, Any] = {
            "method": method,
            "mode": mode,
            "status": status,
            "retry_after": retry_after,
            "count": count,
            "seconds": seconds,
        }
        if chat_id is not None:
            body["chat_id"] = chat_id
        if description is not None:
            body["description"] = description
        data = await self._call("POST", "/control/faults", body=body)
        return dict(data["fault"])

    async def faults(self) -> list[dict[str, Any]]:
        """Return the fault rules in force."""
        data = await self._call("GET", "/control/faults")
        return list(data["faults"])

    async def clear_faults(self) -> int:
        """Remove every fault rule (held calls go on at once); return how many were removed."""
        data = await self._call("DELETE", "/control/faults")
        return int(data["removed"])

    async def reset(self) -> None:
        """Clear all emulator state and this client's cursors."""
        await self._call("POST", "/control/reset")
        self._cursors.clear()
