"""Figures read from the database at scrape time: the same truth from every instance.

Queries are aggregates over small tables or partial indexes (tips by category and status, due
outbox rows, pending deliveries), so a scrape every 15 s costs milliseconds.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime

from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector
from sqlalchemy import func
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from storage.db import Database
from storage.models import Delivery, OutboxMessage, Tip

# Every outbox row is Telegram's until the Zalo issue gives the outbox a channel column.
OUTBOX_CHANNEL = "telegram"


@dataclass
class Figures:
    """One reading of the database's figures."""

    tips: dict[tuple[str, str, str], int] = field(default_factory=dict)  # channel, cat, status
    outbox: dict[str, int] = field(default_factory=dict)  # status -> rows (pending, sending)
    outbox_oldest_due_seconds: float = 0.0
    deliveries_pending: int = 0


async def read_figures(db: Database, *, now: datetime) -> Figures:
    """Read the figures in one short session."""
    figures = Figures()
    async with db.session() as session:
        tips = await session.exec(
            select(Tip.channel, Tip.category, Tip.status, func.count()).group_by(
                col(Tip.channel), col(Tip.category), col(Tip.status)
            )
        )
        for channel, category, status, count in tips.all():
            figures.tips[(channel, category, status)] = int(count)
        outbox = await session.exec(
            select(OutboxMessage.status, func.count())
            .where(col(OutboxMessage.status).in_(("pending", "sending")))
            .group_by(col(OutboxMessage.status))
        )
        figures.outbox = {status: int(count) for status, count in outbox.all()}
        figures.outbox_oldest_due_seconds = await outbox_oldest_due_seconds(session, now=now)
        pending = select(func.count()).where(col(Delivery.status) == "pending")
        figures.deliveries_pending = int((await session.exec(pending)).one())
    return figures


async def outbox_oldest_due_seconds(session: AsyncSession, *, now: datetime) -> float:
    """How long the oldest due, unsent outbox row has waited (0 when none)."""
    oldest = (
        await session.exec(
            select(func.min(OutboxMessage.next_attempt_at)).where(
                col(OutboxMessage.status) == "pending",
                col(OutboxMessage.next_attempt_at) <= now,
            )
        )
    ).one()
    return 0.0 if oldest is None else max(0.0, (now - _aware(oldest)).total_seconds())


def _aware(value: datetime) -> datetime:
    """An aggregate may come back naive (UTC); compare like with like."""
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


class FiguresCollector(Collector):
    """Expose one reading as Prometheus gauges (registered in a per-scrape registry)."""

    def __init__(self, figures: Figures, leaders: dict[str, bool]) -> None:
        self.figures = figures
        self.leaders = leaders

    def collect(self) -> Iterator[GaugeMetricFamily]:
        """Yield the gauges."""
        tips = GaugeMetricFamily(
            "tinbao_tips",
            "Tips stored, by channel, category and status.",
            labels=["channel", "category", "status"],
        )
        for (channel, category, status), count in sorted(self.figures.tips.items()):
            tips.add_metric([channel, category, status], count)
        yield tips
        depth = GaugeMetricFamily(
            "tinbao_outbox_depth",
            "Outbox rows waiting or being sent, by channel and status.",
            labels=["channel", "status"],
        )
        for status in ("pending", "sending"):
            depth.add_metric([OUTBOX_CHANNEL, status], self.figures.outbox.get(status, 0))
        yield depth
        oldest = GaugeMetricFamily(
            "tinbao_outbox_oldest_due_seconds",
            "Age of the oldest outbox row that is due and not sent, by channel (0 when none).",
            labels=["channel"],
        )
        oldest.add_metric([OUTBOX_CHANNEL], self.figures.outbox_oldest_due_seconds)
        yield oldest
        yield GaugeMetricFamily(
            "tinbao_broadcast_deliveries_pending",
            "Broadcast deliveries planned and not yet sent.",
            value=self.figures.deliveries_pending,
        )
        leader = GaugeMetricFamily(
            "tinbao_leader",
            "1 when this instance is the elected leader for a duty.",
            labels=["duty"],
        )
        for duty, held in sorted(self.leaders.items()):
            leader.add_metric([duty], 1.0 if held else 0.0)
        yield leader
