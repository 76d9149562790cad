"""Conversation drafts: the row is the state of a citizen's conversation."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import delete, func, update
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from storage.models import ConversationDraft, TipAttachment

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


async def expire(session: AsyncSession, *, now: datetime, limit: int = 200) -> list[ExpiredDraft]:
    """Remove drafts silent past their expiry and return whom to tell (commits).

    The delete is conditional on `expires_at`, so when two processes sweep at once each draft
    is claimed by exactly one of them, and a citizen who wrote meanwhile keeps theirs.
    """
    statement = (
        select(ConversationDraft)
        .where(col(ConversationDraft.expires_at) <= now)
        .order_by(col(ConversationDraft.expires_at))
        .limit(limit)
    )
    candidates = (await session.exec(statement)).all()
    await session.commit()
    expired: list[ExpiredDraft] = []
    for draft in candidates:
        result = await session.exec(
            delete(ConversationDraft).where(
                col(ConversationDraft.key) == draft.key,
                col(ConversationDraft.expires_at) <= now,
            )
        )
        if result.rowcount != 1:
            await session.rollback()
            continue
        await session.exec(delete(TipAttachment).where(col(TipAttachment.draft_key) == draft.key))
        await session.commit()
        expired.append(
            ExpiredDraft(
                route=draft.route,
                locale=draft.locale,
                notify=draft.state in STATES_WORTH_NOTICE,
            )
        )
    return expired
