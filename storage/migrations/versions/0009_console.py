"""console: login accounts, sessions and internal notes of the web console; folded tip text

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-03 15:00:00

Sessions are rows, not signed cookies, so any instance answers any request and logging out (or
out everywhere) takes effect at once. `tip.search_text` is the tip text folded the way
`storage.text.fold` does it (lower case, no diacritics), filled here for the tips already
stored, so one LIKE finds "ma tuy" in "Ma túy" on SQLite and PostgreSQL alike.
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel.sql.sqltypes
from alembic import op

from storage.text import fold
from storage.types import UTCDateTime

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_BATCH = 1000
OPEN_DUE = "(CASE WHEN status = 'new' THEN ack_due_at ELSE close_due_at END)"
OPEN = "status <> 'closed'"


def upgrade() -> None:
    """Apply this revision."""
    op.create_table(
        "consoleaccount",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("staff_id", sa.Integer(), nullable=False),
        sa.Column("username", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("password_hash", sqlmodel.sql.sqltypes.AutoString(length=255), nullable=False),
        sa.Column("totp_secret", sa.LargeBinary(), nullable=True),
        sa.Column("totp_enrolled_at", UTCDateTime(), nullable=True),
        sa.Column("totp_last_step", sa.BigInteger(), nullable=False),
        sa.Column("failed_logins", sa.Integer(), nullable=False),
        sa.Column("locked_until", UTCDateTime(), nullable=True),
        sa.Column("password_changed_at", UTCDateTime(), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(["staff_id"], ["staff.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("staff_id"),
        sa.UniqueConstraint("username"),
    )
    op.create_table(
        "consolesession",
        sa.Column("id", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("account_id", sa.Integer(), nullable=False),
        sa.Column("stage", sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
        sa.Column("csrf_token", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("pending_totp", sa.LargeBinary(), nullable=True),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("last_seen_at", UTCDateTime(), nullable=False),
        sa.Column("expires_at", UTCDateTime(), nullable=False),
        sa.Column("revoked_at", UTCDateTime(), nullable=True),
        sa.ForeignKeyConstraint(["account_id"], ["consoleaccount.id"]),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_consolesession_account_id", "consolesession", ["account_id"])
    op.create_index("ix_consolesession_expires_at", "consolesession", ["expires_at"])
    op.create_table(
        "tipnote",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("tip_id", sa.Integer(), nullable=False),
        sa.Column("staff_id", sa.Integer(), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(["staff_id"], ["staff.id"]),
        sa.ForeignKeyConstraint(["tip_id"], ["tip.id"]),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_tipnote_tip_id", "tipnote", ["tip_id"])
    op.add_column("tip", sa.Column("search_text", sa.Text(), nullable=False, server_default=""))
    _fill_search_text()
    # The console's default view, open tips by their next deadline, walks this index and stops
    # after a page instead of sorting every open tip of a province (web/queries.py).
    op.create_index(
        "ix_tip_open_due",
        "tip",
        [sa.text(OPEN_DUE), "id"],
        postgresql_where=sa.text(OPEN),
        sqlite_where=sa.text(OPEN),
    )


def _fill_search_text() -> None:
    """Fold the text of the tips already stored, a batch at a time."""
    bind = op.get_bind()
    tip = sa.table(
        "tip",
        sa.column("id", sa.Integer),
        sa.column("text", sa.Text),
        sa.column("search_text", sa.Text),
    )
    last = 0
    while True:
        rows = bind.execute(
            sa.select(tip.c.id, tip.c.text).where(tip.c.id > last).order_by(tip.c.id).limit(_BATCH)
        ).all()
        if not rows:
            return
        bind.execute(
            tip.update().where(tip.c.id == sa.bindparam("tip_id")),
            [{"tip_id": row.id, "search_text": fold(row.text or "")} for row in rows],
        )
        last = rows[-1].id


def downgrade() -> None:
    """Revert this revision."""
    op.drop_index("ix_tip_open_due", table_name="tip")
    with op.batch_alter_table("tip") as batch:
        batch.drop_column("search_text")
    op.drop_index("ix_tipnote_tip_id", table_name="tipnote")
    op.drop_table("tipnote")
    op.drop_index("ix_consolesession_expires_at", table_name="consolesession")
    op.drop_index("ix_consolesession_account_id", table_name="consolesession")
    op.drop_table("consolesession")
    op.drop_table("consoleaccount")
