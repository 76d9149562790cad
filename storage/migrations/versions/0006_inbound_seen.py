"""inbound seen: keyed hashes of webhook message ids, so a platform's repeat is taken once

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-03 12:00:00

Zalo sends an event again when it is not answered within 2 s, and any instance may take the
repeat: the row is how all instances agree. It holds an HMAC of the message id under its own
key, never the id itself, and is purged after a day.
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel.sql.sqltypes
from alembic import op

from storage.types import UTCDateTime

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Apply this revision."""
    op.create_table(
        "inboundseen",
        sa.Column("key", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("seen_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("key"),
    )
    op.create_index("ix_inboundseen_seen_at", "inboundseen", ["seen_at"], unique=False)


def downgrade() -> None:
    """Revert this revision."""
    op.drop_index("ix_inboundseen_seen_at", table_name="inboundseen")
    op.drop_table("inboundseen")
