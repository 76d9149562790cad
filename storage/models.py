"""SQLModel tables.

Anonymity is a property of this schema (DESIGN principle 4): no table that mentions a tip holds a
platform user id, name, username or phone. Drafts and flood counters are keyed by an HMAC of the
platform user; the only way back to a tipster is `Tip.reply_route`, encrypted with the server key.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Column, Index, LargeBinary, Text
from sqlmodel import Field, SQLModel

from storage.types import UTCDateTime, utcnow


class Province(SQLModel, table=True):
    """A province or centrally-run city (34 since the 2025 merger)."""

    code: int = Field(primary_key=True, sa_column_kwargs={"autoincrement": False})
    name: str = Field(max_length=120)
    division_type: str = Field(max_length=40)
    codename: str = Field(max_length=120)
    # Lower-case, diacritics removed, for search that ignores both.
    search_name: str = Field(max_length=120, index=True)


class Commune(SQLModel, table=True):
    """A commune-level unit: xã, phường or đặc khu."""

    code: int = Field(primary_key=True, sa_column_kwargs={"autoincrement": False})
    name: str = Field(max_length=120)
    division_type: str = Field(max_length=40)
    codename: str = Field(max_length=120)
    province_code: int = Field(foreign_key="province.code", index=True)
    search_name: str = Field(max_length=120, index=True)


class TipStatus:
    """Tip lifecycle values stored in `Tip.status`."""

    NEW = "new"
    ACKNOWLEDGED = "acknowledged"
    VERIFYING = "verifying"
    CLOSED = "closed"


class Tip(SQLModel, table=True):
    """A confirmed tip. Holds no tipster identity by construction."""

    id: int | None = Field(default=None, primary_key=True)
    short_id: str = Field(max_length=16, unique=True)
    receipt_hash: str = Field(max_length=64, unique=True)
    channel: str = Field(max_length=16)
    category: str = Field(max_length=40, index=True)
    urgent: bool = False
    commune_code: int = Field(foreign_key="commune.code", index=True)
    text: str = Field(default="", sa_column=Column(Text, nullable=False))
    location_lat: float | None = None
    location_lon: float | None = None
    status: str = Field(default=TipStatus.NEW, max_length=20, index=True)
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime, index=True)
    # Encrypted (channel, chat id) to answer the tipster; purged by retention.
    reply_route: bytes | None = Field(default=None, sa_column=Column(LargeBinary, nullable=True))


class TipAttachment(SQLModel, table=True):
    """A file or location attached to a draft (draft_key set) or to a tip (tip_id set)."""

    __table_args__ = (Index("ix_tipattachment_draft_position", "draft_key", "position"),)

    id: int | None = Field(default=None, primary_key=True)
    tip_id: int | None = Field(default=None, foreign_key="tip.id", index=True)
    draft_key: str | None = Field(default=None, max_length=64)
    position: int = 0
    kind: str = Field(max_length=20)
    mime_type: str = Field(default="application/octet-stream", max_length=120)
    filename: str | None = Field(default=None, max_length=255)
    size: int = 0
    # Sanitized bytes (EXIF/GPS removed from images); None once purged by retention.
    content: bytes | None = Field(default=None, sa_column=Column(LargeBinary, nullable=True))
    note: str | None = Field(default=None, max_length=255)
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)


class TipMessage(SQLModel, table=True):
    """One message of a tip's thread: added information or a police reply."""

    id: int | None = Field(default=None, primary_key=True)
    tip_id: int = Field(foreign_key="tip.id", index=True)
    author: str = Field(max_length=16)  # "citizen" | "police"
    text: str = Field(default="", sa_column=Column(Text, nullable=False))
    attachment_count: int = 0
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)


class ConversationDraft(SQLModel, table=True):
    """The state of one citizen's conversation; the row *is* the state (DESIGN principle 2)."""

    key: str = Field(primary_key=True, max_length=64)  # HMAC of channel + platform user
    channel: str = Field(max_length=16)
    # Encrypted chat route so the expiry notice can reach the citizen without a plain id.
    route: bytes = Field(sa_column=Column(LargeBinary, nullable=False))
    state: str = Field(max_length=32)
    data: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    locale: str = Field(default="vi", max_length=8)
    step_token: int = 0  # bumped on every step; buttons from older steps are stale
    updated_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    expires_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime, index=True)


class FloodCounter(SQLModel, table=True):
    """A fixed-window counter for flood limits, keyed by a user HMAC, apart from tips."""

    key: str = Field(primary_key=True, max_length=64)
    bucket: str = Field(primary_key=True, max_length=16)
    window_start: datetime = Field(primary_key=True, sa_type=UTCDateTime)
    count: int = 0
