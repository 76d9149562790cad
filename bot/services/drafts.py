"""Conversation drafts: the row is the state of a citizen's conversation."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime

from sqlalchemy import delete, func, update
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from storage.models import ConversationDraft, TipAttachment

log = logging.getLogger(__name__)

# States in which a tip or an addition is being written: losing one deserves a notice.
STATES_WORTH_NOTICE = frozenset(
    {
        "category",
        "urgent",
        "place_confirm",
        "place",
        "place_results",
        "province",
        "commune",
        "details",
        "review",
        "add",
    }
)


@dataclass(frozen=True)
class ExpiredDraft:
    """A draft removed for silence, with the encrypted route to tell its owner."""

    route: bytes
    locale: str
    notify: bool
    queued: bool = False  # a notice was committed to the outbox with the delete


# Namespace of the per-citizen advisory locks (two-int form: apart from the leader locks,
# which use the one-bigint form).
_LOCK_NAMESPACE = 0x7462  # "tb"


async def lock(session: AsyncSession, key: str) -> None:
    """Serialise this citizen's transactions until commit, across every process.

    Two instances may take two updates of one citizen at once (webhooks go to any instance):
    both would read the draft, and the later commit would overwrite the earlier step. SQLite
    needs nothing (every transaction takes the write lock first, BEGIN IMMEDIATE); on
    PostgreSQL a transaction-scoped advisory lock on the key also covers the draft's first
    insert, which a row lock could not (there is no row yet). A hash clash between two
    citizens only makes them wait for each other.
    """
    bind = session.bind
    if bind is not None and bind.dialect.name == "postgresql":
        statement = select(func.pg_advisory_xact_lock(_LOCK_NAMESPACE, func.hashtext(key)))
        await session.exec(statement)


async def load(session: AsyncSession, key: str) -> ConversationDraft | None:
    """Load a citizen's draft."""
    return await session.get(ConversationDraft, key, populate_existing=True)


async def adopt(
    session: AsyncSession, key: str, old_keys: Sequence[str]
) -> ConversationDraft | None:
    """Move a draft (and its files) kept under one of `old_keys` to `key`, then load it (no commit).

    After a key rotation the same citizen has a new key. The move is one conditional UPDATE,
    so when two processes adopt at once only one moves the row and both then load it.
    """
    for old in old_keys:
        moved = await session.exec(
            update(ConversationDraft)
            .where(col(ConversationDraft.key) == old)
            .values(key=key)
            .execution_options(synchronize_session=False)
        )
        if moved.rowcount == 1:
            await session.exec(
                update(TipAttachment)
                .where(col(TipAttachment.draft_key) == old)
                .values(draft_key=key)
                .execution_options(synchronize_session=False)
            )
            break
    return await load(session, key)


async def discard(session: AsyncSession, key: str) -> None:
    """Delete a draft and the files collected for it (no commit)."""
    await session.exec(delete(TipAttachment).where(col(TipAttachment.draft_key) == key))
    await session.exec(delete(ConversationDraft).where(col(ConversationDraft.key) == key))


async def expire(
    session: AsyncSession,
    *,
    now: datetime,
    notify: Callable[[AsyncSession, ExpiredDraft], bool],
    limit: int = 200,
) -> list[ExpiredDraft]:
    """Remove drafts silent past their expiry, queueing each owner's notice; return those removed.

    The delete is conditional on `expires_at`, so when two processes sweep at once each draft
    is claimed by exactly one of them, and a citizen who wrote meanwhile keeps theirs. Each
    draft is its own transaction: `notify` adds the notice to the session (an outbox row) and
    it is committed with the delete (DESIGN principle 1), so a deleted draft's notice cannot
    be lost, nor queued twice. Should `notify` fail, that draft is kept for the next sweep and
    the others go on.
    """
    statement = (
        select(ConversationDraft)
        .where(col(ConversationDraft.expires_at) <= now)
        .order_by(col(ConversationDraft.expires_at))
        .limit(limit)
    )
    # Copied out: a rollback below expires every loaded row, and an expired row cannot be
    # read again without I/O in an async session.
    candidates = [
        (draft.key, draft.route, draft.locale, draft.state)
        for draft in (await session.exec(statement)).all()
    ]
    await session.commit()
    expired: list[ExpiredDraft] = []
    for key, route, locale, state in candidates:
        result = await session.exec(
            delete(ConversationDraft).where(
                col(ConversationDraft.key) == key,
                col(ConversationDraft.expires_at) <= now,
            )
        )
        if result.rowcount != 1:
            await session.rollback()
            continue
        await session.exec(delete(TipAttachment).where(col(TipAttachment.draft_key) == key))
        item = ExpiredDraft(route=route, locale=locale, notify=state in STATES_WORTH_NOTICE)
        try:
            queued = notify(session, item)
        except Exception:
            log.exception("draft expiry notice could not be queued; the draft waits")
            await session.rollback()
            continue
        await session.commit()
        expired.append(replace(item, queued=queued))
    return expired
