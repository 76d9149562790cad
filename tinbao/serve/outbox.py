"""The outbox sender as a `tinbao serve` component: every instance sends, each row once.

Claims are `SKIP LOCKED`, so every instance may run it. It hands each row to the row's channel,
so it is built from the outbound sides of the channel components configured here.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence

from starlette.routing import BaseRoute

from bot.channels.outbound import Outbound
from bot.context import Services
from tinbao.serve.component import Health

NAME = "outbox"


class OutboxComponent:
    """Runs this instance's outbox sender."""

    name = NAME

    def __init__(self, services: Services, channels: Mapping[str, Outbound]) -> None:
        from bot.app import make_sender

        self.services = services
        self.sender = make_sender(services, channels)
        services.sender = self.sender
        self._stop = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    @property
    def routes(self) -> Sequence[BaseRoute]:
        """No routes."""
        return []

    async def start(self) -> None:
        """Start sending (unless this instance was told not to: `TINBAO_RUN_SENDER=false`)."""
        if self.services.settings.run_sender:
            self._task = asyncio.create_task(self.sender.run(self._stop), name="outbox-sender")

    async def drain(self) -> None:
        """Keep sending while the channels finish their updates."""

    async def stop(self) -> None:
        """Stop after the current batch (rows in flight are left to their leases)."""
        self._stop.set()
        if self._task is not None:
            await self._task
            self._task = None

    def health(self) -> Health:
        """Not ready when the sender should run and does not."""
        detail: dict[str, object] = {"channels": sorted(self.sender.channels)}
        if not self.services.settings.run_sender:
            detail["running"] = False
            return Health(True, detail)
        running = self._task is not None and not self._task.done()
        detail["running"] = running
        return Health(running, detail, "" if running else "the outbox sender stopped")

    def leaders(self) -> dict[str, bool]:
        """No elected duty: every instance sends."""
        return {}
