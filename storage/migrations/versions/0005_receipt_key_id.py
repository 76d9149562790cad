"""receipt key id: which secret a tip's receipt code was hashed with

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-23 08:00:00

Rotating TINBAO_SECRET_KEY re-encrypts reply routes, but a receipt hash cannot be redone: only
the hash is stored, never the code. The old secret must therefore stay readable until the tips
hashed with it are purged, and this column lets `tinbao keys status` count them per key id.

Existing rows stay NULL: the migration has no secret to compute a key id with. `tinbao keys
rotate` fills them in from the tip's version-1 reply route, which was encrypted in the same
moment with the same secret.

A plain ADD/DROP COLUMN (no batch mode): the column has no index or constraint, SQLite has
dropped such columns in place since 3.35, and recreating `tip` would trip the foreign keys of
every table that references it.
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel.sql.sqltypes
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Apply this revision."""
    op.add_column(
        "tip",
        sa.Column("receipt_key_id", sqlmodel.sql.sqltypes.AutoString(length=8), nullable=True),
    )


def downgrade() -> None:
    """Revert this revision."""
    op.drop_column("tip", "receipt_key_id")
