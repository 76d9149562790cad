"""broadcast runs keep their sent count once retention deletes their delivery rows

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-04 04:45:00

A delivery row links a subscriber to each broadcast they received; retention deletes the rows of
runs finished longer ago than TINBAO_RETENTION_DAYS and keeps only `broadcastrun.sent_count`,
which the reports read instead.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0013"
down_revision: str | None = "0012"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Apply this revision."""
    with op.batch_alter_table("broadcastrun") as batch:
        batch.add_column(sa.Column("sent_count", sa.Integer(), nullable=True))


def downgrade() -> None:
    """Revert this revision."""
    with op.batch_alter_table("broadcastrun") as batch:
        batch.drop_column("sent_count")
