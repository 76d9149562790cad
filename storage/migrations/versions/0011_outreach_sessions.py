"""outreach sessions: the session, its check-ins, and pledges signed at it

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-04 03:32:20

A "buổi tuyên truyền" is held in a commune; attendees check in by its QR code (one row per
person and session, under a key that names the session, so two sessions of one person cannot be
joined); the organiser's head count for people without phones is kept apart from the check-ins.
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel.sql.sqltypes
from alembic import op

import storage.types

revision: str = "0011"
down_revision: str | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Apply this revision."""
    op.create_table(
        "outreachsession",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("commune_code", sa.Integer(), nullable=False),
        sa.Column("place", sqlmodel.sql.sqltypes.AutoString(length=200), nullable=False),
        sa.Column("starts_at", storage.types.UTCDateTime(), nullable=False),
        sa.Column("ends_at", storage.types.UTCDateTime(), nullable=False),
        sa.Column("title", sqlmodel.sql.sqltypes.AutoString(length=200), nullable=False),
        sa.Column("topic_ids", sqlmodel.sql.sqltypes.AutoString(length=400), nullable=False),
        sa.Column("organiser", sqlmodel.sql.sqltypes.AutoString(length=200), nullable=False),
        sa.Column("expected_attendance", sa.Integer(), nullable=True),
        sa.Column("campaign_id", sa.Integer(), nullable=True),
        sa.Column("head_count", sa.Integer(), nullable=True),
        sa.Column("created_by_staff_id", sa.Integer(), nullable=True),
        sa.Column("summary_sent_at", storage.types.UTCDateTime(), nullable=True),
        sa.Column("cancelled_at", storage.types.UTCDateTime(), nullable=True),
        sa.Column("created_at", storage.types.UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["campaign_id"],
            ["pledgecampaign.id"],
        ),
        sa.ForeignKeyConstraint(
            ["commune_code"],
            ["commune.code"],
        ),
        sa.ForeignKeyConstraint(
            ["created_by_staff_id"],
            ["staff.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("outreachsession", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_outreachsession_commune_code"), ["commune_code"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_outreachsession_starts_at"), ["starts_at"], unique=False
        )

    op.create_table(
        "sessioncheckin",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("session_id", sa.Integer(), nullable=False),
        sa.Column("attendee_key", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("channel", sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
        sa.Column("created_at", storage.types.UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["session_id"],
            ["outreachsession.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("session_id", "attendee_key"),
    )
    with op.batch_alter_table("sessioncheckin", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_sessioncheckin_session_id"), ["session_id"], unique=False
        )

    with op.batch_alter_table("pledgesignature", schema=None) as batch_op:
        batch_op.add_column(sa.Column("session_id", sa.Integer(), nullable=True))
        batch_op.create_index(
            batch_op.f("ix_pledgesignature_session_id"), ["session_id"], unique=False
        )
        batch_op.create_foreign_key(
            "fk_pledgesignature_session_id_outreachsession",
            "outreachsession",
            ["session_id"],
            ["id"],
        )


def downgrade() -> None:
    """Revert this revision."""
    with op.batch_alter_table("pledgesignature", schema=None) as batch_op:
        batch_op.drop_constraint(
            "fk_pledgesignature_session_id_outreachsession", type_="foreignkey"
        )
        batch_op.drop_index(batch_op.f("ix_pledgesignature_session_id"))
        batch_op.drop_column("session_id")

    with op.batch_alter_table("sessioncheckin", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_sessioncheckin_session_id"))

    op.drop_table("sessioncheckin")
    with op.batch_alter_table("outreachsession", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_outreachsession_starts_at"))
        batch_op.drop_index(batch_op.f("ix_outreachsession_commune_code"))

    op.drop_table("outreachsession")
