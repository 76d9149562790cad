"""console link codes: an invite that gives an enrolled staff member a console login

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-03 19:00:00

A Telegram staff member asks the bot for a code (/console) and redeems it at /console/join:
the invite then names their own `Staff` row (`for_staff_id`), so the console account shares
its role, scope and history instead of creating a second person.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Apply this revision."""
    with op.batch_alter_table("invite") as batch:
        batch.add_column(sa.Column("for_staff_id", sa.Integer(), nullable=True))
        batch.create_foreign_key("fk_invite_for_staff_id_staff", "staff", ["for_staff_id"], ["id"])


def downgrade() -> None:
    """Revert this revision."""
    with op.batch_alter_table("invite") as batch:
        batch.drop_constraint("fk_invite_for_staff_id_staff", type_="foreignkey")
        batch.drop_column("for_staff_id")
