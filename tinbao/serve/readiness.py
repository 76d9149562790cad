"""/readyz: can this instance take traffic now? Each check says why not.

Not ready (503): the database does not answer within CHECK_TIMEOUT, its schema is not the
code's (run `tinbao db upgrade`), the commune list is empty, the instance is draining, a
component is broken (e.g. its outbox sender stopped), or the maintenance election stopped.
Reported but not failing: the outbox's oldest due row and who leads. A messenger outage makes
the outbox age grow on every instance at once; failing readiness for it would make the proxy
drop every instance and take the other channels and the console down with it, so that is an
alert on /metrics (`tinbao_outbox_oldest_due_seconds`), not a readiness failure.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from sqlalchemy import func, text
from sqlmodel import select

from storage.migrate import current_revision, head_revision
from storage.models import Commune
from tinbao.serve.figures import outbox_oldest_due_seconds

if TYPE_CHECKING:
    from tinbao.serve.app import ServeState

CHECK_TIMEOUT = 3.0


@dataclass
class Report:
    """The outcome of one readiness check."""

    checks: dict[str, Any] = field(default_factory=dict)
    reasons: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """Ready when no check gave a reason not to be."""
        return not self.reasons

    def body(self) -> dict[str, Any]:
        """The JSON answer."""
        return {"ready": self.ok, "reasons": self.reasons, "checks": self.checks}


class Readiness:
    """Runs the checks against the instance's state."""

    def __init__(self, state: ServeState) -> None:
        self.state = state
        self.head = head_revision()
        self._communes_loaded = False

    async def check(self) -> Report:
        """Run every check (the database ones bounded by CHECK_TIMEOUT)."""
        report = Report()
        if self.state.draining:
            report.reasons.append("draining: shutting down")
        try:
            await asyncio.wait_for(self._database(report), CHECK_TIMEOUT)
        except Exception as error:  # unreachable, timed out, refused: all mean "not ready"
            report.checks["database"] = False
            report.reasons.append(f"database unreachable ({type(error).__name__})")
        maintenance = self.state.maintenance
        if maintenance is not None and not maintenance.alive:
            report.reasons.append("the maintenance election stopped")
        report.checks["leader"] = self.state.leaders()
        for component in self.state.components:
            health = component.health()
            report.checks[component.name] = {"ok": health.ok, **health.detail}
            if not health.ok:
                report.reasons.append(f"{component.name}: {health.reason}")
        return report

    async def _database(self, report: Report) -> None:
        """Reachable, schema at head, communes loaded; the outbox's oldest due row."""
        db = self.state.services.db
        async with db.engine.connect() as connection:
            await connection.execute(text("SELECT 1"))
        report.checks["database"] = True
        revision = await current_revision(db)
        report.checks["schema"] = revision
        if revision != self.head:
            report.reasons.append(
                f"database schema is at {revision}, the code needs {self.head}: "
                "run `tinbao db upgrade`"
            )
            return
        if not self._communes_loaded:
            async with db.session() as session:
                count = (await session.exec(select(func.count()).select_from(Commune))).one()
            self._communes_loaded = count > 0
            if not self._communes_loaded:
                report.reasons.append("no communes loaded: run `tinbao db upgrade`")
        async with db.session() as session:
            age = await outbox_oldest_due_seconds(session, now=self.state.services.intake.clock())
        report.checks["outbox_oldest_due_seconds"] = round(age, 1)
