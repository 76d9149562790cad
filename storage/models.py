"""SQLModel tables.

Anonymity is a property of this schema (DESIGN principle 4): no table that mentions a tip holds a
platform user id, name, username or phone. Drafts and flood counters are keyed by an HMAC of the
platform user; the only way back to a tipster is `Tip.reply_route`, encrypted with the server key.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Column,
    Index,
    LargeBinary,
    Text,
    UniqueConstraint,
    text,
)
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
    ALL = ("new", "acknowledged", "verifying", "closed")


class Tip(SQLModel, table=True):
    """A confirmed tip. Holds no tipster identity by construction."""

    # The console's default list: open tips by their next deadline (migration 0009).
    __table_args__ = (
        Index(
            "ix_tip_open_due",
            text("(CASE WHEN status = 'new' THEN ack_due_at ELSE close_due_at END)"),
            "id",
            postgresql_where=text("status <> 'closed'"),
            sqlite_where=text("status <> 'closed'"),
        ),
        # A province's report reads its communes' tips of a period (migration 0012).
        Index("ix_tip_commune_created", "commune_code", "created_at"),
    )

    id: int | None = Field(default=None, primary_key=True)
    short_id: str = Field(max_length=16, unique=True)
    receipt_hash: str = Field(max_length=64, unique=True)
    # Hex id of the secret the receipt was hashed with (migration 0005): a receipt cannot be
    # re-hashed (only its hash is stored), so this says which old secret must be kept for it.
    # None for tips older than key ids whose key `tinbao keys rotate` could not tell.
    receipt_key_id: str | None = Field(default=None, max_length=8)
    channel: str = Field(max_length=16)
    category: str = Field(max_length=40, index=True)
    urgent: bool = False
    commune_code: int = Field(foreign_key="commune.code", index=True)
    text: str = Field(default="", sa_column=Column(Text, nullable=False))
    # `text` folded (lower case, no diacritics: storage.text.fold) for the console's search.
    search_text: str = Field(default="", sa_column=Column(Text, nullable=False, server_default=""))
    location_lat: float | None = None
    location_lon: float | None = None
    status: str = Field(default=TipStatus.NEW, max_length=20, index=True)
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime, index=True)
    # Encrypted (channel, chat id) to answer the tipster; purged by retention.
    reply_route: bytes | None = Field(default=None, sa_column=Column(LargeBinary, nullable=True))
    # Routing: the inbox the tip currently lives in and at which level it landed.
    inbox_id: int | None = Field(default=None, foreign_key="inbox.id", index=True)
    route_level: str | None = Field(default=None, max_length=16)  # commune|province|admin|none
    valuable: bool | None = None
    acknowledged_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    closed_at: datetime | None = Field(default=None, sa_type=UTCDateTime, index=True)
    close_reason: str | None = Field(default=None, max_length=32)
    ack_due_at: datetime | None = Field(default=None, sa_type=UTCDateTime, index=True)
    close_due_at: datetime | None = Field(default=None, sa_type=UTCDateTime, index=True)
    ack_escalated: bool = False
    close_escalated: bool = False
    escalated_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    purged_at: datetime | None = Field(default=None, sa_type=UTCDateTime)


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


class TipNote(SQLModel, table=True):
    """An internal note on a tip: police only, never sent to the tipster."""

    id: int | None = Field(default=None, primary_key=True)
    tip_id: int = Field(foreign_key="tip.id", index=True)
    staff_id: int = Field(foreign_key="staff.id")
    text: str = Field(sa_column=Column(Text, nullable=False))
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


class InboundSeen(SQLModel, table=True):
    """A webhook delivery already taken (a keyed hash of its message id), to drop repeats.

    Zalo sends an event again when it is not answered within 2 s; rows are purged after a day.
    """

    key: str = Field(primary_key=True, max_length=64)
    seen_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime, index=True)


class ZaloOaToken(SQLModel, table=True):
    """An Official Account's API tokens, sealed (`Keyring.seal_credential`), one row per app.

    The refresh token is single-use: each refresh writes the new pair, its expiry and the time
    in one UPDATE. `refresh_lease_until` keeps two instances from refreshing at once.
    """

    app_id: str = Field(primary_key=True, max_length=32)
    access_token: bytes = Field(sa_column=Column(LargeBinary, nullable=False))
    refresh_token: bytes = Field(sa_column=Column(LargeBinary, nullable=False))
    access_expires_at: datetime = Field(sa_type=UTCDateTime)
    refreshed_at: datetime = Field(sa_type=UTCDateTime)
    refresh_lease_until: datetime | None = Field(default=None, sa_type=UTCDateTime)
    state: str = Field(default="ok", max_length=16)  # ok | reauthorize
    last_error: str | None = Field(default=None, max_length=255)


class StaffRole:
    """Values of `Staff.role`."""

    OFFICER = "officer"
    SUPERVISOR = "supervisor"
    OUTREACH = "outreach"
    ADMIN = "admin"
    ALL = ("officer", "supervisor", "outreach", "admin")


class Staff(SQLModel, table=True):
    """An enrolled police or outreach staff member. Staff are not anonymous: they act by name."""

    __table_args__ = (UniqueConstraint("platform", "platform_user_id"),)

    id: int | None = Field(default=None, primary_key=True)
    platform: str = Field(default="telegram", max_length=16)
    # A string: Zalo ids are strings; Telegram's numbers are kept as their decimal text.
    platform_user_id: str = Field(max_length=64)
    display_name: str = Field(max_length=120)
    role: str = Field(max_length=16)
    commune_code: int | None = Field(default=None, foreign_key="commune.code", index=True)
    province_code: int | None = Field(default=None, foreign_key="province.code", index=True)
    active: bool = True
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)


class ConsoleAccount(SQLModel, table=True):
    """A staff member's web console login: username, argon2id password hash, sealed TOTP."""

    id: int | None = Field(default=None, primary_key=True)
    staff_id: int = Field(foreign_key="staff.id", unique=True)
    username: str = Field(max_length=64, unique=True)  # stored lower-case
    password_hash: str = Field(max_length=255)
    totp_secret: bytes | None = Field(default=None, sa_column=Column(LargeBinary, nullable=True))
    totp_enrolled_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    # The newest 30-second step whose code was accepted: a code is good once, never replayed.
    totp_last_step: int = Field(default=0, sa_type=BigInteger)
    failed_logins: int = 0
    locked_until: datetime | None = Field(default=None, sa_type=UTCDateTime)
    password_changed_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)


class ConsoleSession(SQLModel, table=True):
    """A console login; a row so any instance serves any request. The cookie holds the token."""

    id: str = Field(primary_key=True, max_length=64)  # sha256 of the cookie's token
    account_id: int = Field(foreign_key="consoleaccount.id", index=True)
    stage: str = Field(max_length=16)  # "enroll" (password only, TOTP to set up) | "full"
    csrf_token: str = Field(max_length=64)
    # A TOTP secret shown on the enrolment page, sealed, until its first code confirms it.
    pending_totp: bytes | None = Field(default=None, sa_column=Column(LargeBinary, nullable=True))
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    last_seen_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    expires_at: datetime = Field(sa_type=UTCDateTime, index=True)  # the absolute timeout
    revoked_at: datetime | None = Field(default=None, sa_type=UTCDateTime)


class Invite(SQLModel, table=True):
    """A single-use, expiring enrollment code (only its hash is stored)."""

    id: int | None = Field(default=None, primary_key=True)
    code_hash: str = Field(max_length=64, unique=True)
    role: str = Field(max_length=16)
    commune_code: int | None = Field(default=None, foreign_key="commune.code")
    province_code: int | None = Field(default=None, foreign_key="province.code")
    expires_at: datetime = Field(sa_type=UTCDateTime)
    used_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    used_by_staff_id: int | None = Field(default=None, foreign_key="staff.id")
    revoked_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    # A console link code (/console in the bot): redeeming it gives this staff member a console
    # login on their own row; ordinary invites leave it empty.
    for_staff_id: int | None = Field(default=None, foreign_key="staff.id")


class InboxScope:
    """Values of `Inbox.scope`."""

    COMMUNE = "commune"
    PROVINCE = "province"
    ADMIN = "admin"


class Inbox(SQLModel, table=True):
    """A group chat where police receive the tips of a commune, a province, or everything."""

    id: int | None = Field(default=None, primary_key=True)
    platform: str = Field(default="telegram", max_length=16)
    chat_id: int = Field(sa_type=BigInteger, index=True)
    scope: str = Field(max_length=16)
    commune_code: int | None = Field(default=None, foreign_key="commune.code", index=True)
    province_code: int | None = Field(default=None, foreign_key="province.code", index=True)
    title: str = Field(default="", max_length=255)
    status: str = Field(default="active", max_length=16, index=True)  # active|broken|unlinked
    linked_by_staff_id: int | None = Field(default=None, foreign_key="staff.id")
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    updated_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)


class OutboxMessage(SQLModel, table=True):
    """A message that must reach someone, written in the transaction that causes it."""

    __table_args__ = (Index("ix_outbox_due", "status", "next_attempt_at"),)

    id: int | None = Field(default=None, primary_key=True)
    kind: str = Field(max_length=24)
    tip_id: int | None = Field(default=None, foreign_key="tip.id", index=True)
    inbox_id: int | None = Field(default=None, foreign_key="inbox.id")
    # Either a plain chat id (staff and inbox groups) or the tipster's encrypted route.
    chat_id: int | None = Field(default=None, sa_type=BigInteger)
    route: bytes | None = Field(default=None, sa_column=Column(LargeBinary, nullable=True))
    payload: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    status: str = Field(default="pending", max_length=12)  # pending|sending|sent|dead
    attempts: int = 0
    next_attempt_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    claimed_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    sent_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    sent_message_id: int | None = Field(default=None, sa_type=BigInteger)
    last_error: str | None = Field(default=None, max_length=255)
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)


class InboxPost(SQLModel, table=True):
    """A message the bot posted in an inbox about a tip, so replies to it find the tip."""

    __table_args__ = (UniqueConstraint("chat_id", "message_id"),)

    id: int | None = Field(default=None, primary_key=True)
    inbox_id: int = Field(foreign_key="inbox.id")
    chat_id: int = Field(sa_type=BigInteger)
    message_id: int = Field(sa_type=BigInteger)
    tip_id: int = Field(foreign_key="tip.id", index=True)
    kind: str = Field(max_length=16)  # card|text|file|citizen|prompt
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)


class AuditEvent(SQLModel, table=True):
    """Who did what to a tip, when, with the state before and after; refusals included."""

    # The tips moved to another commune, a report's "moved" figure (migration 0012).
    __table_args__ = (
        Index(
            "ix_auditevent_move",
            "tip_id",
            postgresql_where=text("action = 'move' AND allowed"),
            sqlite_where=text("action = 'move' AND allowed = 1"),
        ),
    )

    id: int | None = Field(default=None, primary_key=True)
    tip_id: int | None = Field(default=None, foreign_key="tip.id", index=True)
    actor_staff_id: int | None = Field(default=None, foreign_key="staff.id")
    actor: str = Field(max_length=120)  # staff name, "system" or "citizen"
    action: str = Field(max_length=32)
    allowed: bool = True
    before: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    after: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime, index=True)


class Subscriber(SQLModel, table=True):
    """A citizen receiving outreach. Not linkable to tips: its key uses its own HMAC input."""

    id: int | None = Field(default=None, primary_key=True)
    key: str = Field(max_length=64, unique=True)  # HMAC("subscriber:" + channel, user id)
    channel: str = Field(max_length=16)
    route: bytes = Field(sa_column=Column(LargeBinary, nullable=False))  # encrypted chat route
    commune_code: int = Field(foreign_key="commune.code", index=True)
    province_code: int = Field(foreign_key="province.code", index=True)
    locale: str = Field(default="vi", max_length=8)
    active: bool = Field(default=True, index=True)
    blocked_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)


class SubscriptionTopic(SQLModel, table=True):
    """A topic a subscriber chose; none chosen means every topic."""

    subscriber_id: int = Field(foreign_key="subscriber.id", primary_key=True)
    topic_id: str = Field(max_length=64, primary_key=True, index=True)


class PledgeCampaign(SQLModel, table=True):
    """Staff open a pledge for signing in a commune, a province, or everywhere."""

    id: int | None = Field(default=None, primary_key=True)
    pledge_id: str = Field(max_length=64)
    commune_code: int | None = Field(default=None, foreign_key="commune.code")
    province_code: int | None = Field(default=None, foreign_key="province.code")
    opened_by_staff_id: int | None = Field(default=None, foreign_key="staff.id")
    opened_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    closed_at: datetime | None = Field(default=None, sa_type=UTCDateTime)


class PledgeSignature(SQLModel, table=True):
    """One signed pledge: the commune and an optional household name, never the account."""

    __table_args__ = (UniqueConstraint("campaign_id", "signer_key"),)

    id: int | None = Field(default=None, primary_key=True)
    campaign_id: int = Field(foreign_key="pledgecampaign.id", index=True)
    pledge_id: str = Field(max_length=64, index=True)
    commune_code: int = Field(foreign_key="commune.code", index=True)
    household: str | None = Field(default=None, max_length=120)
    # HMAC("pledge:" + channel, user id): one signature per person and campaign.
    signer_key: str = Field(max_length=64)
    receipt: str = Field(max_length=16)
    # The outreach session the pledge was signed at (its QR code), for the session's summary.
    session_id: int | None = Field(default=None, foreign_key="outreachsession.id", index=True)
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)


class OutreachSession(SQLModel, table=True):
    """A legal-education session held in a commune ("buổi tuyên truyền"), which people check in
    to by scanning its QR code; the head count covers those without a phone."""

    id: int | None = Field(default=None, primary_key=True)
    commune_code: int = Field(foreign_key="commune.code", index=True)
    place: str = Field(max_length=200)
    starts_at: datetime = Field(sa_type=UTCDateTime, index=True)
    ends_at: datetime = Field(sa_type=UTCDateTime)
    title: str = Field(max_length=200)
    topic_ids: str = Field(default="", max_length=400)  # library topic ids, comma-separated
    organiser: str = Field(max_length=200)
    expected_attendance: int | None = None
    campaign_id: int | None = Field(default=None, foreign_key="pledgecampaign.id")
    head_count: int | None = None  # counted by the organiser, kept apart from check-ins
    created_by_staff_id: int | None = Field(default=None, foreign_key="staff.id")
    summary_sent_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    cancelled_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)


class SessionCheckIn(SQLModel, table=True):
    """One person at one session. The key is HMAC("checkin:<channel>:<session id>", user id):
    one check-in per person and session, unlinkable to tips, subscriptions, pledges and to the
    same person's other sessions."""

    __table_args__ = (UniqueConstraint("session_id", "attendee_key"),)

    id: int | None = Field(default=None, primary_key=True)
    session_id: int = Field(foreign_key="outreachsession.id", index=True)
    attendee_key: str = Field(max_length=64)
    channel: str = Field(max_length=16)
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)


class Broadcast(SQLModel, table=True):
    """A scheduled outreach message; the row is the schedule (APScheduler only triggers it)."""

    id: int | None = Field(default=None, primary_key=True)
    created_by_staff_id: int | None = Field(default=None, foreign_key="staff.id")
    topic_id: str | None = Field(default=None, max_length=64)  # a library topic, or
    text: str | None = Field(default=None, sa_column=Column(Text, nullable=True))  # own HTML
    photo: bytes | None = Field(default=None, sa_column=Column(LargeBinary, nullable=True))
    audience: str = Field(max_length=16)  # all|province|commune|topic
    audience_code: int | None = None
    audience_topic: str | None = Field(default=None, max_length=64)
    trigger: str = Field(max_length=16)  # once|cron
    run_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    cron: str | None = Field(default=None, max_length=64)  # local time (TINBAO_TIMEZONE)
    urgent: bool = False  # urgent broadcasts ignore quiet hours
    status: str = Field(default="scheduled", max_length=16, index=True)
    next_run_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    last_run_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)


class BroadcastRun(SQLModel, table=True):
    """One firing of a broadcast; unique per scheduled time, so a misfire runs once."""

    __table_args__ = (UniqueConstraint("broadcast_id", "scheduled_for"),)

    id: int | None = Field(default=None, primary_key=True)
    broadcast_id: int = Field(foreign_key="broadcast.id", index=True)
    scheduled_for: datetime = Field(sa_type=UTCDateTime)
    status: str = Field(default="planning", max_length=16, index=True)  # planning|sending|done
    planned: int = 0
    started_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    finished_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    # Set when retention deleted the run's delivery rows: how many were sent, for the reports.
    sent_count: int | None = None
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)


class Delivery(SQLModel, table=True):
    """One message of one run to one subscriber: no duplicates by construction."""

    # No foreign keys here (migration 0004): checking them per row dominated planning a
    # million deliveries. A partial index finds the pending rows of a run fast at any size.
    __table_args__ = (
        UniqueConstraint("run_id", "subscriber_id"),
        Index("ix_delivery_run_status", "run_id", "status"),
        Index(
            "ix_delivery_pending",
            "run_id",
            "id",
            postgresql_where=text("status = 'pending'"),
            sqlite_where=text("status = 'pending'"),
        ),
    )

    id: int | None = Field(default=None, primary_key=True)
    run_id: int = Field(index=False)  # broadcastrun.id
    subscriber_id: int = Field(index=False)  # subscriber.id
    # pending|sending|sent|failed|blocked|cancelled
    status: str = Field(default="pending", max_length=12)
    attempts: int = 0
    claimed_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    sent_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    error: str | None = Field(default=None, max_length=255)
