"""Rotating the server secret: re-encrypt stored routes, re-key rows, say which old keys remain.

After TINBAO_SECRET_KEY changes (the old one moved to TINBAO_PREVIOUS_SECRET_KEYS), the bot
reads everything old and writes everything new with the current key. `rotate` then brings the
stored rows over, so the previous key is needed for as little as possible:

* every reply route (tips, outbox rows, drafts, subscribers) is re-encrypted under the current key;
* drafts and subscribers are re-keyed: their route holds the chat id, which in a private chat is
  the user id, so the new HMAC can be computed. The old key is recomputed first and compared, so a
  row is only re-keyed when its chat id provably is the user id;
* receipt hashes cannot be redone (the code is not stored), nor pledge signer keys (no route), nor
  flood counters (they lapse within the hour). `usage` counts what still needs each old key.

Each batch is its own transaction and every UPDATE is conditional on the value read, so the bot
may keep running, and an interrupted run is finished by running it again (docs/key-rotation.md).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import LargeBinary, case, func, literal, update
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from bot.services.anonymity import KEY_ID_BYTES, Keyring, OpenedRoute, RouteError, RoutePurpose
from bot.services.subscriptions import KEY_PREFIX as SUBSCRIBER_PREFIX
from storage.db import Database
from storage.models import (
    ConsoleAccount,
    ConversationDraft,
    FloodCounter,
    OutboxMessage,
    PledgeCampaign,
    PledgeSignature,
    Subscriber,
    Tip,
    TipAttachment,
)

DEFAULT_BATCH = 500  # rows per transaction: short enough not to hold SQLite's write lock long
V1_LABEL = "v1"  # routes made before key ids: readable by trying each key
EMPTY_LABEL = "empty"  # an unsubscribed subscriber's dropped route
ROUTE_TABLES = ("tip", "outboxmessage", "conversationdraft", "subscriber")
# Sealed credentials re-sealed under the current key (console TOTP secrets). Zalo OA tokens
# move by themselves: every refresh (hourly) seals the new pair under the current key.
CREDENTIAL_TABLES = ("consoleaccount",)

Progress = Callable[[str, int], None]


@dataclass
class TableReport:
    """What a rotation did to one table's routes and keys."""

    table: str
    reencrypted: int = 0
    current: int = 0  # already under the current key
    unreadable: int = 0  # no configured key opens the route (left as it is)
    empty: int = 0  # no route to re-encrypt (an unsubscribed subscriber)
    rekeyed: int = 0
    not_rekeyable: int = 0  # key left under an old secret (chat id is not the user id, clash)
    changed: int = 0  # the bot changed the row meanwhile: the next run takes it


@dataclass
class RotationReport:
    """The outcome of one `rotate` run."""

    tables: list[TableReport]
    receipt_key_ids_filled: int = 0
    unknown_key_ids: Counter[str] = field(default_factory=Counter)  # seen on routes, not configured

    def table(self, name: str) -> TableReport:
        """One table's report."""
        return next(report for report in self.tables if report.table == name)

    @property
    def changed_anything(self) -> bool:
        """Whether the run wrote anything (a second run should not)."""
        return self.receipt_key_ids_filled > 0 or any(
            report.reencrypted or report.rekeyed for report in self.tables
        )


@dataclass(frozen=True)
class ReceiptUse:
    """Tips whose receipt hash was made with one key id (None: before key ids, key unknown)."""

    key_id: str | None
    unpurged: int
    purged: int


@dataclass(frozen=True)
class KeyUsage:
    """Which key ids the stored rows depend on."""

    routes: dict[str, Counter[str]]  # table -> key id (or V1_LABEL, EMPTY_LABEL) -> rows
    receipts: list[ReceiptUse]
    open_campaign_signatures: int
    flood_counters: int
    credentials: Counter[str] = field(default_factory=Counter)  # key id -> sealed TOTP secrets

    def routes_under(self, key_id: str) -> int:
        """Routes, in every table, encrypted under one key id."""
        return sum(counts[key_id] for counts in self.routes.values())

    def receipts_under(self, key_id: str | None) -> ReceiptUse:
        """Tips whose receipt was hashed with one key id."""
        return next(
            (use for use in self.receipts if use.key_id == key_id), ReceiptUse(key_id, 0, 0)
        )


@dataclass(frozen=True)
class KeyNeed:
    """Whether a previous key may be dropped, and what still depends on it."""

    key_id: str
    routes: int  # routes still encrypted under it: `rotate` has not finished
    receipts_unpurged: int  # tips a tipster can still follow up and be answered on
    receipts_purged: int  # purged tips: the code would only show a closed tip's status
    credentials: int = 0  # console TOTP secrets still sealed under it: `rotate` has not run

    @property
    def needed(self) -> bool:
        """Whether dropping the key now would lose a route, a live receipt or a login."""
        return bool(self.routes or self.receipts_unpurged or self.credentials)


def _rewrap(keyring: Keyring, opened: OpenedRoute, purpose: RoutePurpose) -> bytes | None:
    """A fresh token for `purpose` under the current key, or None when it is one already.

    Version 1 and 2 tokens (one route key for every table) become version 3, under the subkey
    of the table that keeps them: a rotation is also how an upgraded install separates them.
    """
    if opened.version == 3 and opened.key_id == keyring.key_id and opened.purpose == purpose:
        return None
    return keyring.encrypt_route(opened.channel, opened.chat_id, purpose=purpose)


def _open(
    keyring: Keyring, token: bytes, report: TableReport, rotation: RotationReport
) -> OpenedRoute | None:
    """Open a stored route, counting it as unreadable (and its key id as unknown) if none can."""
    try:
        return keyring.open_route(token)
    except RouteError:
        report.unreadable += 1
        unknown = keyring.route_key_id(token)
        if unknown is not None:
            rotation.unknown_key_ids[unknown] += 1
        return None


async def rotate(
    db: Database,
    keyring: Keyring,
    *,
    batch_size: int = DEFAULT_BATCH,
    progress: Progress | None = None,
) -> RotationReport:
    """Bring every stored route and re-keyable key to the current secret, batch by batch."""
    report = RotationReport([TableReport(name) for name in (*ROUTE_TABLES, *CREDENTIAL_TABLES)])
    tick = progress or (lambda _table, _rows: None)
    # Tips before the outbox: a queued message to a tipster then takes its tip's new token.
    await _rotate_tips(db, keyring, report, batch_size, tick)
    await _rotate_outbox(db, keyring, report, batch_size, tick)
    await _rotate_drafts(db, keyring, report, batch_size, tick)
    await _rotate_subscribers(db, keyring, report, batch_size, tick)
    await _rotate_totp_secrets(db, keyring, report, batch_size, tick)
    return report


async def _rotate_totp_secrets(
    db: Database, keyring: Keyring, rotation: RotationReport, batch_size: int, tick: Progress
) -> None:
    """Re-seal console TOTP secrets under the current key (an officer keeps their app)."""
    report = rotation.table("consoleaccount")
    current = bytes.fromhex(keyring.key_id)
    row_id_column, sealed_column = col(ConsoleAccount.id), col(ConsoleAccount.totp_secret)
    last = 0
    while True:
        async with db.session() as session:
            rows = (
                await session.exec(
                    select(ConsoleAccount.id, ConsoleAccount.totp_secret)
                    .where(row_id_column > last, sealed_column.is_not(None))
                    .order_by(row_id_column)
                    .limit(batch_size)
                )
            ).all()
            if not rows:
                return
            for row_id, sealed in rows:
                assert row_id is not None and sealed is not None
                last = row_id
                token = bytes(sealed)
                if token[:KEY_ID_BYTES] == current:
                    report.current += 1
                    continue
                try:
                    secret = keyring.open_credential(token)
                except RouteError:
                    report.unreadable += 1
                    continue
                result = await session.exec(
                    update(ConsoleAccount)
                    .where(row_id_column == row_id, sealed_column == token)
                    .values(totp_secret=keyring.seal_credential(secret))
                    .execution_options(synchronize_session=False)
                )
                if result.rowcount != 1:
                    report.changed += 1  # reset or re-enrolled meanwhile
                    continue
                report.reencrypted += 1
            await session.commit()
        tick("consoleaccount", len(rows))


async def route_counts(db: Database) -> dict[str, int]:
    """How many rows each table has with a route (for a progress bar's totals)."""
    columns = {
        "tip": col(Tip.reply_route),
        "outboxmessage": col(OutboxMessage.route),
        "conversationdraft": col(ConversationDraft.route),
        "subscriber": col(Subscriber.route),
        "consoleaccount": col(ConsoleAccount.totp_secret),
    }
    async with db.session() as session:
        return {
            table: int((await session.exec(select(func.count()).where(column.is_not(None)))).one())
            for table, column in columns.items()
        }


async def _rotate_tips(
    db: Database, keyring: Keyring, rotation: RotationReport, batch_size: int, tick: Progress
) -> None:
    """Re-encrypt reply routes; fill in the receipt key id of tips made before key ids."""
    report = rotation.table("tip")
    last = 0
    while True:
        async with db.session() as session:
            rows = (
                await session.exec(
                    select(Tip.id, Tip.reply_route, Tip.receipt_key_id)
                    .where(col(Tip.id) > last, col(Tip.reply_route).is_not(None))
                    .order_by(col(Tip.id))
                    .limit(batch_size)
                )
            ).all()
            if not rows:
                return
            for tip_id, stored, receipt_key_id in rows:
                assert tip_id is not None and stored is not None
                last = tip_id
                token = bytes(stored)
                opened = _open(keyring, token, report, rotation)
                if opened is None:
                    continue
                values: dict[str, Any] = {}
                if receipt_key_id is None and opened.version == 1:
                    # Until this version a tip's route and receipt hash were made in the same
                    # moment with the only secret there was: the key that opens a version-1
                    # route is the key its receipt was hashed with.
                    values["receipt_key_id"] = opened.key_id
                fresh = _rewrap(keyring, opened, RoutePurpose.TIP)
                if fresh is not None:
                    values["reply_route"] = fresh
                if not values:
                    report.current += 1
                    continue
                result = await session.exec(
                    update(Tip)
                    .where(col(Tip.id) == tip_id, col(Tip.reply_route) == token)
                    .values(**values)
                    .execution_options(synchronize_session=False)
                )
                if result.rowcount != 1:
                    report.changed += 1  # purged by retention meanwhile
                    continue
                rotation.receipt_key_ids_filled += "receipt_key_id" in values
                if fresh is not None:
                    report.reencrypted += 1
                else:
                    report.current += 1
            await session.commit()
        tick("tip", len(rows))


async def _rotate_outbox(
    db: Database, keyring: Keyring, rotation: RotationReport, batch_size: int, tick: Progress
) -> None:
    """Re-encrypt routes of outbox rows (queued, sent or dead ones alike)."""
    report = rotation.table("outboxmessage")
    last = 0
    while True:
        async with db.session() as session:
            rows = (
                await session.exec(
                    select(OutboxMessage.id, OutboxMessage.route, OutboxMessage.tip_id)
                    .where(col(OutboxMessage.id) > last, col(OutboxMessage.route).is_not(None))
                    .order_by(col(OutboxMessage.id))
                    .limit(batch_size)
                )
            ).all()
            if not rows:
                return
            tip_ids = {tip_id for _, _, tip_id in rows if tip_id is not None}
            tip_routes = {
                tip_id: bytes(route)
                for tip_id, route in (
                    await session.exec(
                        select(Tip.id, Tip.reply_route).where(
                            col(Tip.id).in_(tip_ids), col(Tip.reply_route).is_not(None)
                        )
                    )
                ).all()
                if route is not None
            }
            for row_id, stored, tip_id in rows:
                assert row_id is not None and stored is not None
                last = row_id
                token = bytes(stored)
                opened = _open(keyring, token, report, rotation)
                if opened is None:
                    continue
                # A tipster's rows carry their tip's token (TIP); the others their own (OUTBOX).
                purpose = opened.purpose or RoutePurpose.OUTBOX
                if _rewrap(keyring, opened, purpose) is None:
                    report.current += 1
                    continue
                # Rows to a tipster carry their tip's very token (the sender sends one chat's
                # rows in order by grouping on it): keep it so when the tip's is current.
                fresh = _same_route(keyring, tip_routes.get(tip_id) if tip_id else None, opened)
                if fresh is None:
                    fresh = keyring.encrypt_route(opened.channel, opened.chat_id, purpose=purpose)
                result = await session.exec(
                    update(OutboxMessage)
                    .where(col(OutboxMessage.id) == row_id, col(OutboxMessage.route) == token)
                    .values(route=fresh)
                    .execution_options(synchronize_session=False)
                )
                if result.rowcount == 1:
                    report.reencrypted += 1
                else:
                    report.changed += 1
            await session.commit()
        tick("outboxmessage", len(rows))


def _same_route(keyring: Keyring, candidate: bytes | None, opened: OpenedRoute) -> bytes | None:
    """`candidate` if it is a current-key token for the same chat as `opened`, else None."""
    if candidate is None or keyring.route_key_id(candidate) != keyring.key_id:
        return None
    try:
        same = keyring.decrypt_route(candidate) == (opened.channel, opened.chat_id)
    except RouteError:
        return None
    return candidate if same else None


async def _rotate_drafts(
    db: Database, keyring: Keyring, rotation: RotationReport, batch_size: int, tick: Progress
) -> None:
    """Re-encrypt draft routes and re-key drafts (and their files) to the current user key."""
    report = rotation.table("conversationdraft")
    # Keys are the primary key and change as drafts are re-keyed: walk a list taken up front
    # (drafts live a day, so it is short) instead of paging on a key that moves.
    async with db.session() as session:
        keys = list((await session.exec(select(ConversationDraft.key))).all())
        await session.commit()
    for start in range(0, len(keys), batch_size):
        chunk = keys[start : start + batch_size]
        async with db.session() as session:
            rows = (
                await session.exec(
                    select(
                        ConversationDraft.key, ConversationDraft.channel, ConversationDraft.route
                    ).where(col(ConversationDraft.key).in_(chunk))
                )
            ).all()
            for old_key, channel, stored in rows:
                token = bytes(stored)
                opened = _open(keyring, token, report, rotation)
                if opened is None:
                    continue
                new_key = await _new_key(
                    session, keyring, report, old_key, channel, opened, ConversationDraft.key
                )
                fresh = _rewrap(keyring, opened, RoutePurpose.DRAFT)
                values: dict[str, Any] = {}
                if new_key is not None:
                    values["key"] = new_key
                if fresh is not None:
                    values["route"] = fresh
                if not values:
                    report.current += 1
                    continue
                result = await session.exec(
                    update(ConversationDraft)
                    .where(
                        col(ConversationDraft.key) == old_key,
                        col(ConversationDraft.route) == token,
                    )
                    .values(**values)
                    .execution_options(synchronize_session=False)
                )
                if result.rowcount != 1:
                    report.changed += 1  # finished, expired or adopted by the bot meanwhile
                    continue
                if new_key is not None:
                    await session.exec(
                        update(TipAttachment)
                        .where(col(TipAttachment.draft_key) == old_key)
                        .values(draft_key=new_key)
                        .execution_options(synchronize_session=False)
                    )
                    report.rekeyed += 1
                if fresh is not None:
                    report.reencrypted += 1
                else:
                    report.current += 1
            await session.commit()
        tick("conversationdraft", len(rows))


async def _rotate_subscribers(
    db: Database, keyring: Keyring, rotation: RotationReport, batch_size: int, tick: Progress
) -> None:
    """Re-encrypt subscriber routes and re-key subscribers to the current user key."""
    report = rotation.table("subscriber")
    last = 0
    while True:
        async with db.session() as session:
            rows = (
                await session.exec(
                    select(Subscriber.id, Subscriber.key, Subscriber.channel, Subscriber.route)
                    .where(col(Subscriber.id) > last)
                    .order_by(col(Subscriber.id))
                    .limit(batch_size)
                )
            ).all()
            if not rows:
                return
            for row_id, old_key, channel, stored in rows:
                assert row_id is not None
                last = row_id
                token = bytes(stored)
                if not token:
                    # Unsubscribed: the route was dropped, so the key cannot be recomputed.
                    # Harmless: a citizen who subscribes again is found under the old key.
                    report.empty += 1
                    continue
                opened = _open(keyring, token, report, rotation)
                if opened is None:
                    continue
                new_key = await _new_key(
                    session,
                    keyring,
                    report,
                    old_key,
                    SUBSCRIBER_PREFIX + channel,
                    opened,
                    Subscriber.key,
                )
                fresh = _rewrap(keyring, opened, RoutePurpose.SUBSCRIBER)
                values: dict[str, Any] = {}
                if new_key is not None:
                    values["key"] = new_key
                if fresh is not None:
                    values["route"] = fresh
                if not values:
                    report.current += 1
                    continue
                result = await session.exec(
                    update(Subscriber)
                    .where(
                        col(Subscriber.id) == row_id,
                        col(Subscriber.key) == old_key,
                        col(Subscriber.route) == token,
                    )
                    .values(**values)
                    .execution_options(synchronize_session=False)
                )
                if result.rowcount != 1:
                    report.changed += 1  # re-subscribed or unsubscribed meanwhile
                    continue
                report.rekeyed += new_key is not None
                if fresh is not None:
                    report.reencrypted += 1
                else:
                    report.current += 1
            await session.commit()
        tick("subscriber", len(rows))


async def _new_key(
    session: AsyncSession,
    keyring: Keyring,
    report: TableReport,
    old_key: str,
    channel: str,
    opened: OpenedRoute,
    column: Any,
) -> str | None:
    """The current user key to move a row to, or None when it stays (current, or impossible)."""
    key_id = keyring.user_key_id(old_key, channel, opened.chat_id)
    if key_id == keyring.key_id:
        return None
    if key_id is None:
        # Not HMAC(channel:chat id) under any known key: the chat is not the user's private
        # chat, or the key is unknown. Only the user's next message could re-key it.
        report.not_rekeyable += 1
        return None
    new_key = keyring.user_key(channel, opened.chat_id)
    clash = (await session.exec(select(column).where(col(column) == new_key))).first()
    if clash is not None:
        # The citizen already has a row under the new key (written by a process that did not
        # know the old key): leave the old one to expire or be unsubscribed with the old key.
        report.not_rekeyable += 1
        return None
    return new_key


async def usage(session: AsyncSession) -> KeyUsage:
    """Count the stored rows per key id: routes per table, receipts, what cannot be told."""
    columns = {
        "tip": col(Tip.reply_route),
        "outboxmessage": col(OutboxMessage.route),
        "conversationdraft": col(ConversationDraft.route),
        "subscriber": col(Subscriber.route),
    }
    routes: dict[str, Counter[str]] = {}
    for table, column in columns.items():
        # Header bytes in SQL (substr works on BLOB and bytea alike): no route leaves the
        # database, and grouping happens on the subquery's columns, not on bound expressions.
        version = func.substr(column, 1, 1, type_=LargeBinary)
        # Versions 2 and 3 name their key in bytes 2-5 (3 adds the table's purpose after it).
        named_key = case(
            (
                version.in_([literal(b"\x02", LargeBinary), literal(b"\x03", LargeBinary)]),
                func.substr(column, 2, 4, type_=LargeBinary),
            ),
            else_=None,
        )
        inner = select(version.label("version"), named_key.label("key_id")).where(
            column.is_not(None)
        )
        heads = inner.subquery()
        grouped = select(heads.c.version, heads.c.key_id, func.count()).group_by(
            heads.c.version, heads.c.key_id
        )
        counts: Counter[str] = Counter()
        for head, kid, number in (await session.exec(grouped)).all():
            counts[_route_label(head, kid)] += int(number)
        routes[table] = counts
    purged = col(Tip.purged_at).is_not(None)
    receipt_rows = (
        await session.exec(
            select(Tip.receipt_key_id, purged.label("purged"), func.count()).group_by(
                col(Tip.receipt_key_id), purged
            )
        )
    ).all()
    by_key: dict[str | None, list[int]] = {}
    for key_id, was_purged, number in receipt_rows:
        by_key.setdefault(key_id, [0, 0])[1 if was_purged else 0] += int(number)
    receipts = [ReceiptUse(key_id, live, gone) for key_id, (live, gone) in by_key.items()]
    signatures = (
        await session.exec(
            select(func.count())
            .select_from(PledgeSignature)
            .join(PledgeCampaign, col(PledgeCampaign.id) == col(PledgeSignature.campaign_id))
            .where(col(PledgeCampaign.closed_at).is_(None))
        )
    ).one()
    floods = (await session.exec(select(func.count()).select_from(FloodCounter))).one()
    sealed = col(ConsoleAccount.totp_secret)
    head = func.substr(sealed, 1, KEY_ID_BYTES, type_=LargeBinary).label("key_id")
    heads = select(head).where(sealed.is_not(None)).subquery()
    credentials: Counter[str] = Counter()
    for kid, number in (
        await session.exec(select(heads.c.key_id, func.count()).group_by(heads.c.key_id))
    ).all():
        credentials[bytes(kid).hex()] += int(number)
    return KeyUsage(routes, receipts, int(signatures), int(floods), credentials)


def _route_label(version: Any, key_id: Any) -> str:
    """A route header as a label: its key id, or V1_LABEL, or EMPTY_LABEL."""
    head = bytes(version) if version is not None else b""
    if not head:
        return EMPTY_LABEL
    if head in (b"\x02", b"\x03") and key_id is not None:
        return bytes(key_id).hex()
    if head == b"\x01":
        return V1_LABEL
    return f"version {head[0]}"


def needs(keyring: Keyring, found: KeyUsage) -> list[KeyNeed]:
    """For each previous key: what still depends on it (nothing: it may be dropped)."""
    return [
        KeyNeed(
            key_id,
            found.routes_under(key_id),
            found.receipts_under(key_id).unpurged,
            found.receipts_under(key_id).purged,
            found.credentials[key_id],
        )
        for key_id in keyring.previous_key_ids
    ]
