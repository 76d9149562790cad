"""What `tinbao serve` hosts: components, each with routes and a start/stop of its own.

A messenger channel (Telegram now; Zalo OA and Zalo Bot next) or the web console is one
component. The host knows nothing about any messenger: it mounts each component's routes,
starts them after the database is ready, stops them in reverse order, and asks each how it is
doing for /readyz and /metrics.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol

from starlette.routing import BaseRoute


@dataclass
class Health:
    """A component's state for /readyz: `ok` False makes the instance not ready."""

    ok: bool
    detail: dict[str, object] = field(default_factory=dict)
    reason: str = ""


class Component(Protocol):
    """One hosted part (a channel, the console)."""

    name: str

    @property
    def routes(self) -> Sequence[BaseRoute]:
        """Routes to mount on the host."""
        ...

    async def start(self) -> None:
        """Start background work; called once the database is ready."""
        ...

    async def drain(self) -> None:
        """Stop taking new work (SIGTERM): finish what is in hand."""
        ...

    async def stop(self) -> None:
        """Stop and release everything (after drain)."""
        ...

    def health(self) -> Health:
        """How the component is doing now (no I/O)."""
        ...

    def leaders(self) -> dict[str, bool]:
        """Leader duties this component elects for, and whether this instance holds each."""
        ...
