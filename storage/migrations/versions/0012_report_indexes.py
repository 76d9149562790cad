"""report indexes: a commune's tips by date, and the tips moved to another commune

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-04 12:00:00

`build_report` (bot/services/reports.py) on a province reads its communes' tips of a period:
(commune_code, created_at) finds exactly those instead of walking every tip of the period by
date. Its "moved" figure is the set of tips with an allowed "move" audit event: a partial index
holds just those few entries (docs/benchmarks.md, "Reports").
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0012"
down_revision: str | None = "0011"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# As storage/models.py declares it; SQLite stores booleans as 0/1, as the reports compare them.
MOVE_POSTGRESQL = "action = 'move' AND allowed"
MOVE_SQLITE = "action = 'move' AND allowed = 1"


def upgrade() -> None:
    """Apply this revision."""
    op.create_index("ix_tip_commune_created", "tip", ["commune_code", "created_at"])
    op.create_index(
        "ix_auditevent_move",
        "auditevent",
        ["tip_id"],
        postgresql_where=sa.text(MOVE_POSTGRESQL),
        sqlite_where=sa.text(MOVE_SQLITE),
    )


def downgrade() -> None:
    """Revert this revision."""
    op.drop_index("ix_auditevent_move", table_name="auditevent")
    op.drop_index("ix_tip_commune_created", table_name="tip")
