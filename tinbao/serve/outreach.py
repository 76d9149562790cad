"""Outreach (broadcast scheduling and delivery) as a `tinbao serve` component.

One instance is elected to lead it; it sends each subscriber's broadcast through the channel
the subscriber came from, every channel at its own pace.
"""

from __future__ import annotations

from collections.abc import Sequence

from starlette.routing import BaseRoute

from bot.context import Services
from tinbao.serve.component import Health

NAME = "outreach"


class OutreachComponent:
    """Runs this instance's part in the outreach election."""

    name = NAME

    def __init__(self, services: Services) -> None:
        from bot.app import make_outreach

        self.services = services
        self.runtime = make_outreach(services)

    @property
    def routes(self) -> Sequence[BaseRoute]:
        """No routes."""
        return []

    async def start(self) -> None:
        """Take part in the election (unless `TINBAO_RUN_OUTREACH=false` here)."""
        if self.services.settings.run_outreach:
            self.services.outreach = self.runtime
            await self.runtime.start()

    async def drain(self) -> None:
        """Broadcasts go on until stop: a batch in flight is finished or left to its lease."""

    async def stop(self) -> None:
        """Stop scheduling and sending, and give the lead up."""
        if self.services.outreach is self.runtime:
            await self.runtime.stop()
            self.services.outreach = None

    def health(self) -> Health:
        """Which channels broadcasts go to (the election's state is under `leader`)."""
        return Health(True, {"channels": sorted(self.runtime.sender.channels)})

    def leaders(self) -> dict[str, bool]:
        """The outreach duty."""
        if not self.services.settings.run_outreach:
            return {}
        return {"outreach": self.runtime.is_leader}
