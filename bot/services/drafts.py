"""Conversation drafts: the row is the state of a citizen's conversation."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import delete
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


async def load(session: AsyncSession, key: str) -> ConversationDraft | None:
    """Load a citizen's draft."""
    return await session.get(ConversationDraft, key, populate_existing=True)


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
