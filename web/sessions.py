"""Console sessions as rows: any instance serves any request, logout takes effect at once.

The cookie holds a random token; the row is keyed by its SHA-256, so a database dump holds no
usable session. A session ends at its absolute expiry, after `idle` without a request, when
its owner logs out (this one) or out everywhere (all of theirs), or when the staff member is
revoked.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import delete, update
from sqlmodel import col
from sqlmodel.ext.asyncio.session import AsyncSession

from storage.models import ConsoleAccount, ConsoleSession, Staff

# last_seen_at is written at most this often: a page and its partial updates are not a write
# each, and the idle timeout is minutes long.
TOUCH_EVERY = timedelta(seconds=60)


class Stage:
    """What a session may do."""

    ENROLL = "enroll"  # password checked, TOTP still to set up: only the enrolment page
    FULL = "full"


@dataclass(frozen=True)
class Timeouts:
    """How long a session lives without a request, and at most."""

    idle: timedelta
    absolute: timedelta


@dataclass
class Current:
    """The session of a request, with its account and staff member."""

    row: ConsoleSession
    account: ConsoleAccount
    staff: Staff


def _row_id(token: str) -> str:
    """The stored key of a cookie token."""
    return hashlib.sha256(token.encode()).hexdigest()


async def start(
    session: AsyncSession, *, account: ConsoleAccount, stage: str, now: datetime, limits: Timeouts
) -> str:
    """Open a session for an account and return its cookie token (no commit)."""
    assert account.id is not None
    token = secrets.token_urlsafe(32)
    session.add(
        ConsoleSession(
            id=_row_id(token),
            account_id=account.id,
            stage=stage,
            csrf_token=secrets.token_urlsafe(32),
            created_at=now,
            last_seen_at=now,
            expires_at=now + limits.absolute,
        )
    )
    return token


async def load(
    session: AsyncSession, *, token: str, now: datetime, limits: Timeouts, touch: bool = True
) -> Current | None:
    """The live session a cookie names, touched; None if unknown, ended, idle or revoked.

    `touch=False` for the live stream: an open tab nobody uses must still time out.
    """
    if not token or len(token) > 128:
        return None
    row = await session.get(ConsoleSession, _row_id(token))
    if row is None or row.revoked_at is not None or row.expires_at <= now:
        return None
    if row.last_seen_at + limits.idle <= now:
        row.revoked_at = now
        session.add(row)
        await session.commit()
        return None
    account = await session.get(ConsoleAccount, row.account_id)
    staff = await session.get(Staff, account.staff_id) if account else None
    if account is None or staff is None or not staff.active:
        return None
    if touch and now - row.last_seen_at >= TOUCH_EVERY:
        row.last_seen_at = now
        session.add(row)
        await session.commit()
    return Current(row=row, account=account, staff=staff)


async def end(session: AsyncSession, *, row: ConsoleSession, now: datetime) -> None:
    """End one session (no commit)."""
    row.revoked_at = now
    session.add(row)


async def end_all(session: AsyncSession, *, account_id: int, now: datetime) -> None:
    """End every session of an account: logout everywhere, new password, TOTP reset."""
    await session.exec(
        update(ConsoleSession)
        .where(
            col(ConsoleSession.account_id) == account_id, col(ConsoleSession.revoked_at).is_(None)
        )
        .values(revoked_at=now)
    )


async def purge_ended(session: AsyncSession, *, now: datetime, keep: timedelta) -> None:
    """Delete sessions that ended more than `keep` ago (no commit)."""
    cutoff = now - keep
    await session.exec(
        delete(ConsoleSession).where(
            (col(ConsoleSession.expires_at) < cutoff) | (col(ConsoleSession.revoked_at) < cutoff)
        )
    )
