"""Webhook delivery: POSTs a bot's updates to its webhook URL, in order per chat."""

from __future__ import annotations

import asyncio
import json
import time
from collections import deque
from collections.abc import Callable, Hashable
from dataclasses import dataclass
from typing import Any

import httpx

from sandbox.updates import update_chat_id

SECRET_HEADER = "X-Telegram-Bot-Api-Secret-Token"


class WebhookDispatcher:
    """Delivers updates with up to max_connections requests in flight.

    Updates of one chat go one at a time and in order (as Telegram does), so parallel
    connections only ever carry different chats; the bookkeeping is O(1) per update. The Zalo
    emulators use it too, with their own chat key, secret header or signature headers.
    """

    def __init__(
        self,
        client: httpx.AsyncClient,
        url: str,
        *,
        secret_token: str | None,
        max_connections: int,
        allowed_updates: list[str] | None,
        retry_delay: float,
        max_retry_delay: float,
        secret_header: str = SECRET_HEADER,
        chat_of: Callable[[dict[str, Any]], Hashable] = update_chat_id,
        signer: Callable[[bytes], dict[str, str]] | None = None,
    ) -> None:
        self.client = client
        self.secret_header = secret_header
        self.chat_of = chat_of
        self.signer = signer
        self.url = url
        self.secret_token = secret_token
        self.max_connections = max_connections
        self.allowed_updates = allowed_updates
        self.retry_delay = retry_delay
        self.max_retry_delay = max_retry_delay
        self.last_error_date: int | None = None
        self.last_error_message: str | None = None
        self.delivered = 0
        self._per_chat: dict[Hashable, deque[dict[str, Any]]] = {}
        self._ready: deque[Hashable] = deque()  # chats with updates and no request in flight
        self._busy: set[Hashable] = set()
        self._pending = 0
        self._failures = 0
        self._wakeup = asyncio.Event()
        self._workers: list[asyncio.Task[None]] = []

    def start(self) -> None:
        """Start the delivery workers (must run inside the server's event loop)."""
        for index in range(self.max_connections):
            self._workers.append(asyncio.create_task(self._work(), name=f"webhook-worker-{index}"))

    async def stop(self) -> None:
        """Stop delivering; undelivered updates stay queued for drain()."""
        for task in self._workers:
            task.cancel()
        await asyncio.gather(*self._workers, return_exceptions=True)
        self._workers.clear()

    def pending(self) -> int:
        """Return how many updates are not delivered yet."""
        return self._pending

    def put(self, update: dict[str, Any]) -> None:
        """Queue an update for delivery."""
        key = self.chat_of(update)
        queue = self._per_chat.get(key)
        if queue is None:
            queue = self._per_chat[key] = deque()
        queue.append(update)
        self._pending += 1
        if len(queue) == 1 and key not in self._busy:
            self._ready.append(key)
            self._wakeup.set()

    def clear(self) -> None:
        """Drop every undelivered update."""
        self._per_chat.clear()
        self._ready.clear()
        self._pending = 0

    def drain(self) -> list[dict[str, Any]]:
        """Remove and return undelivered updates in update_id order."""
        updates = [update for queue in self._per_chat.values() for update in queue]
        self.clear()
        updates.sort(key=lambda update: int(update["update_id"]))
        return updates

    def info(self) -> dict[str, Any]:
        """Return getWebhookInfo's WebhookInfo object."""
        info: dict[str, Any] = {
            "url": self.url,
            "has_custom_certificate": False,
            "pending_update_count": self._pending,
            "max_connections": self.max_connections,
        }
        if self.allowed_updates is not None:
            info["allowed_updates"] = self.allowed_updates
        if self.last_error_date is not None:
            info["last_error_date"] = self.last_error_date
            info["last_error_message"] = self.last_error_message
        return info

    async def _work(self) -> None:
        while True:
            if not self._ready:
                self._wakeup.clear()
                await self._wakeup.wait()
                continue
            key = self._ready.popleft()
            queue = self._per_chat.get(key)
            if not queue:
                continue
            update = queue[0]  # stays queued until delivered, so a failure retries it
            self._busy.add(key)
            try:
                delivered = await self._post(update)
                if not delivered:
                    await asyncio.sleep(self._backoff())
            finally:
                self._busy.discard(key)
            if delivered and queue and queue[0] is update:
                queue.popleft()
                self._pending -= 1
                self.delivered += 1
            # Look the chat up again: clear() may have replaced its queue meanwhile.
            current = self._per_chat.get(key)
            if current:
                self._ready.append(key)
                self._wakeup.set()
            elif current is not None:
                del self._per_chat[key]

    def _backoff(self) -> float:
        self._failures += 1
        return float(min(self.max_retry_delay, self.retry_delay * 2 ** (self._failures - 1)))

    async def _post(self, update: dict[str, Any]) -> bool:
        headers = {"Content-Type": "application/json"}
        if self.secret_token:
            headers[self.secret_header] = self.secret_token
        body = json.dumps(update, ensure_ascii=False).encode()
        if self.signer is not None:
            headers.update(self.signer(body))
        try:
            response = await self.client.post(self.url, content=body, headers=headers)
        except httpx.HTTPError as exc:
            self._record_error(str(exc) or type(exc).__name__)
            return False
        if 200 <= response.status_code < 300:
            self._failures = 0
            return True
        self._record_error(
            f"Wrong response from the webhook: {response.status_code} {response.reason_phrase}"
        )
        return False

    def _record_error(self, message: str) -> None:
        self.last_error_date = int(time.time())
        self.last_error_message = message


@dataclass(frozen=True, slots=True)
class WebhookOptions:
    """How webhook delivery behaves: request timeout and retry back-off (seconds)."""

    timeout: float = 10.0
    retry_delay: float = 0.1
    max_retry_delay: float = 5.0
