"""Console sessions and logins on a real database: timeouts, lockout, one-time codes, purge."""

from __future__ import annotations

from datetime import timedelta

import pyotp
import pytest
from sqlmodel import select

from bot.services.anonymity import Keyring
from bot.services.enrollment import create_invite
from storage.db import Database
from storage.models import ConsoleAccount, ConsoleSession
from tests.conftest import FakeClock
from web import accounts, sessions

POLICY = accounts.LoginPolicy(
    max_failures=3,
    lockout=timedelta(minutes=15),
    address_attempts=100,
    timeouts=sessions.Timeouts(idle=timedelta(minutes=30), absolute=timedelta(hours=12)),
)
KEYS = Keyring("console-session-tests-secret-0123456789abcdef")


async def _enrolled(db: Database, clock: FakeClock) -> str:
    """An officer with a password and TOTP; returns the TOTP secret."""
    async with db.session() as session:
        new = await create_invite(
            session, role="officer", commune_code=8635, province_code=None, now=clock()
        )
        login = await accounts.open_account(
            session,
            code=new.code,
            display_name="Cán bộ Năm",
            username="canbo5",
            password="mat-khau-rat-dai",
            now=clock(),
            policy=POLICY,
        )
        current = await sessions.load(
            session, token=login.token, now=clock(), limits=POLICY.timeouts
        )
        assert current is not None and current.row.stage == sessions.Stage.ENROLL
        secret = await accounts.begin_totp(session, keyring=KEYS, current=current)
        code = pyotp.TOTP(secret).at(clock())
        assert await accounts.confirm_totp(
            session, keyring=KEYS, current=current, code=code, now=clock()
        )
    return secret


async def _log_in(db: Database, clock: FakeClock, code: str) -> accounts.Login:
    async with db.session() as session:
        return await accounts.log_in(
            session,
            keyring=KEYS,
            username="  CanBo5 ",
            password="mat-khau-rat-dai",
            code=code,
            address="192.0.2.7",
            now=clock(),
            policy=POLICY,
        )


async def test_a_code_works_once_and_sessions_time_out(db: Database, clock: FakeClock) -> None:
    secret = await _enrolled(db, clock)
    clock.advance(seconds=90)
    code = pyotp.TOTP(secret).at(clock())
    login = await _log_in(db, clock, code)
    assert login.stage == sessions.Stage.FULL
    with pytest.raises(accounts.AccountError, match="bad_login"):
        await _log_in(db, clock, code)  # the same code again: replay refused

    async with db.session() as session:
        clock.advance(minutes=29)
        assert await sessions.load(session, token=login.token, now=clock(), limits=POLICY.timeouts)
        clock.advance(minutes=29)  # touched 29 minutes ago: still alive
        assert await sessions.load(session, token=login.token, now=clock(), limits=POLICY.timeouts)
        clock.advance(minutes=31)  # idle past 30 minutes: ended for good
        assert not await sessions.load(
            session, token=login.token, now=clock(), limits=POLICY.timeouts
        )
        clock.advance(seconds=1)
        assert not await sessions.load(
            session, token=login.token, now=clock(), limits=POLICY.timeouts
        )


async def test_the_absolute_timeout_ends_a_busy_session(db: Database, clock: FakeClock) -> None:
    secret = await _enrolled(db, clock)
    clock.advance(seconds=60)
    login = await _log_in(db, clock, pyotp.TOTP(secret).at(clock()))
    async with db.session() as session:
        for _ in range(30):  # busy all day: a request every 29 minutes
            clock.advance(minutes=29)
            live = await sessions.load(
                session, token=login.token, now=clock(), limits=POLICY.timeouts
            )
            if live is None:
                break
        assert live is None
        ended = (await session.exec(select(ConsoleSession))).all()
        await sessions.purge_ended(session, now=clock() + timedelta(days=2), keep=timedelta(days=1))
        await session.commit()
        assert ended and not (await session.exec(select(ConsoleSession))).all()


async def test_failures_in_a_row_lock_then_the_lock_lapses(db: Database, clock: FakeClock) -> None:
    secret = await _enrolled(db, clock)
    for _ in range(2):
        with pytest.raises(accounts.AccountError, match="bad_login"):
            await _log_in(db, clock, "123456")
    with pytest.raises(accounts.AccountError, match="locked"):
        await _log_in(db, clock, "123456")
    clock.advance(minutes=10)
    with pytest.raises(accounts.AccountError, match="locked"):
        await _log_in(db, clock, pyotp.TOTP(secret).at(clock()))
    clock.advance(minutes=6)
    assert (await _log_in(db, clock, pyotp.TOTP(secret).at(clock()))).stage == "full"
    async with db.session() as session:
        account = (await session.exec(select(ConsoleAccount))).one()
        assert account.failed_logins == 0 and account.locked_until is None
        assert account.password_hash.startswith("$argon2id$")
        assert account.totp_secret is not None and secret.encode() not in account.totp_secret
