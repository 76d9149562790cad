"""broadcast delivery: plan without per-row checks, claim through a partial index

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-22 08:00:00

Planning inserts one delivery per recipient with one INSERT ... SELECT from subscriber: its
references are valid by construction, and the per-row foreign-key triggers doubled the time
to plan a million deliveries on PostgreSQL. Subscribers are deactivated, never deleted, and
runs are never deleted, so the references stay valid without the triggers.

The sender claims `status = 'pending'` rows of one run in id order; on (run_id, status) alone
PostgreSQL scans past every row already sent (or picks a sequential scan once the statistics
lag), so a claim slows down as a run progresses. The partial index holds only pending rows.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# SQLite keeps foreign keys unnamed; batch mode names them by this convention to drop them.
_SQLITE_NAMES = {"fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s"}
_FOREIGN_KEYS = (("run_id", "broadcastrun"), ("subscriber_id", "subscriber"))
_PENDING = sa.text("status = 'pending'")


def _name(column: str, table: str, dialect: str) -> str:
    """The name the backend gave a delivery foreign key."""
    if dialect == "sqlite":
        return f"fk_delivery_{column}_{table}"
    return f"delivery_{column}_fkey"


def upgrade() -> None:
    """Apply this revision."""
    dialect = op.get_bind().dialect.name
    with op.batch_alter_table("delivery", naming_convention=_SQLITE_NAMES) as batch_op:
        for column, table in _FOREIGN_KEYS:
            batch_op.drop_constraint(_name(column, table, dialect), type_="foreignkey")
    op.create_index(
        "ix_delivery_pending",
        "delivery",
        ["run_id", "id"],
        unique=False,
        postgresql_where=_PENDING,
        sqlite_where=_PENDING,
    )


def downgrade() -> None:
    """Revert this revision."""
    dialect = op.get_bind().dialect.name
    op.drop_index("ix_delivery_pending", table_name="delivery")
    with op.batch_alter_table("delivery", naming_convention=_SQLITE_NAMES) as batch_op:
        for column, table in _FOREIGN_KEYS:
            batch_op.create_foreign_key(_name(column, table, dialect), table, [column], ["id"])
