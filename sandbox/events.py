"""Fan-out of chat activity to server-sent-event subscribers."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from typing import Any

# A subscriber that falls this far behind is dropped rather than slowing the bot down.
QUEUE_SIZE = 10_000
KEEPALIVE_SECONDS = 15.0


class EventHub:
    """Publishes activity events; each subscriber has its own bounded queue."""

    def __init__(self) -> None:
        self._subscribers: set[asyncio.Queue[bytes | None]] = set()

    @property
    def subscriber_count(self) -> int:
        """Return how many streams are listening."""
        return len(self._subscribers)

    def publish(self, event: dict[str, Any]) -> None:
        """Send an event to every subscriber; costs nothing when nobody listens."""
        if not self._subscribers:
            return
        frame = f"data: {json.dumps(event, ensure_ascii=False)}\n\n".encode()
        for queue in list(self._subscribers):
            try:
                queue.put_nowait(frame)
            except asyncio.QueueFull:
                self._subscribers.discard(queue)

    def close_all(self) -> None:
        """End every stream (server stopping)."""
        for queue in list(self._subscribers):
            with contextlib.suppress(asyncio.QueueFull):
                queue.put_nowait(None)
        self._subscribers.clear()

    async def stream(self) -> AsyncIterator[bytes]:
        """Yield SSE frames until the hub closes or the client goes away."""
        queue: asyncio.Queue[bytes | None] = asyncio.Queue(QUEUE_SIZE)
        self._subscribers.add(queue)
        try:
            yield b": connected\n\n"
            while True:
                if queue not in self._subscribers and queue.empty():
                    return  # dropped for falling behind, and everything queued was sent
                try:
                    frame = await asyncio.wait_for(queue.get(), KEEPALIVE_SECONDS)
                except TimeoutError:
                    yield b": keepalive\n\n"
                    continue
                if frame is None:
                    return
                yield frame
        finally:
            self._subscribers.discard(queue)
