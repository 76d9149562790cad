"""staff user id as text: platform user ids are strings (Zalo's are), Telegram's kept as digits

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-03 14:00:00

PostgreSQL converts the column in place (`USING platform_user_id::text`). SQLite cannot change
a column's type, so the table is rebuilt (batch mode); its rows keep their ids, so the five
tables that reference `staff.id` still point at them (migrations run with foreign keys off on
SQLite and check them all before committing: storage/migrations/env.py). Downgrading casts
back and fails if a non-numeric id (a Zalo one) is stored.
"""

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _change(to: Any, using: str) -> None:
    """Change the column's type on either database."""
    if op.get_bind().dialect.name == "postgresql":
        op.alter_column("staff", "platform_user_id", type_=to, postgresql_using=using)
        return
    with op.batch_alter_table("staff", recreate="always") as batch:
        batch.alter_column("platform_user_id", type_=to)


def upgrade() -> None:
    """Apply this revision."""
    # On SQLite the rows copied into the rebuilt table become text by the column's affinity.
    _change(sa.String(length=64), "platform_user_id::text")


def downgrade() -> None:
    """Revert this revision."""
    _change(sa.BigInteger(), "platform_user_id::bigint")
