"""Console accounts: opening one with an invite, logging in (throttled), TOTP enrolment.

Every police and outreach role needs TOTP: a password alone opens only the enrolment page.
Failures are counted per account (consecutive; the account locks for a while at the limit)
and per network address (a fixed window, so one address cannot try many accounts), and each
failure is an audit row. The audit rows name a staff member only when the username exists;
what was typed is never stored.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import NoReturn

from sqlmodel import select
from sqlmodel.ext.asyncio.session import AsyncSession

from bot.services import audit, enrollment, flood
from bot.services.anonymity import Keyring
from storage.models import ConsoleAccount, Invite, Staff
from web import credentials, sessions

USERNAME = re.compile(r"^[a-z0-9][a-z0-9._-]{2,31}$")
MIN_PASSWORD_CHARS = 10
MAX_PASSWORD_CHARS = 256  # argon2 takes any length; this bounds the work one request can ask
ADDRESS_WINDOW = timedelta(minutes=10)
PLATFORM = "console"  # Staff.platform of a person enrolled through the console


class AccountError(Exception):
    """A refusal with a reason code the console translates."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class LoginPolicy:
    """The throttle and session limits (from the settings)."""

    max_failures: int
    lockout: timedelta
    address_attempts: int
    timeouts: sessions.Timeouts


@dataclass(frozen=True)
class Login:
    """A successful login: the cookie token and what the session may do."""

    token: str
    stage: str


def normalize_username(username: str) -> str:
    """Usernames are compared lower-case, without surrounding spaces."""
    return username.strip().lower()


def check_new_password(password: str, *, username: str) -> None:
    """Refuse a password that is too short, too long, or the username."""
    if len(password) < MIN_PASSWORD_CHARS:
        raise AccountError("password_short")
    if len(password) > MAX_PASSWORD_CHARS:
        raise AccountError("password_long")
    if normalize_username(password) == username:
        raise AccountError("password_is_username")


async def open_account(
    session: AsyncSession,
    *,
    code: str,
    display_name: str,
    username: str,
    password: str,
    now: datetime,
    policy: LoginPolicy,
) -> Login:
    """Redeem an invite as a console account; returns an enrolment session (commits).

    A console link code (`enrollment.create_console_link`) names an enrolled staff member:
    the account goes on their row and keeps their name, role and scope.
    """
    username = normalize_username(username)
    if not USERNAME.match(username):
        raise AccountError("username_invalid")
    check_new_password(password, username=username)
    try:
        invite = await enrollment.usable_invite(session, code=code, now=now)
    except enrollment.EnrollmentError as error:
        raise AccountError(error.reason) from error
    display_name = " ".join(display_name.split())
    if not display_name and invite.for_staff_id is None:
        raise AccountError("name_missing")
    if await _account_named(session, username) is not None:
        raise AccountError("username_taken")
    if invite.for_staff_id is not None:
        staff = await _linked_staff(session, invite=invite, now=now)
    else:
        staff = Staff(platform=PLATFORM, platform_user_id=username, display_name="", role="")
        await enrollment.redeem_invite(
            session, invite=invite, staff=staff, display_name=display_name, now=now
        )
    assert staff.id is not None
    account = ConsoleAccount(
        staff_id=staff.id,
        username=username,
        password_hash=credentials.hash_password(password),
        password_changed_at=now,
        created_at=now,
    )
    session.add(account)
    await session.flush()
    token = await sessions.start(
        session, account=account, stage=sessions.Stage.ENROLL, now=now, limits=policy.timeouts
    )
    await session.commit()
    return Login(token=token, stage=sessions.Stage.ENROLL)


async def _linked_staff(session: AsyncSession, *, invite: Invite, now: datetime) -> Staff:
    """The staff member a console link code names, if still enrolled and without a login;
    the code is used up (no commit)."""
    staff = await session.get(Staff, invite.for_staff_id)
    taken = (
        await session.exec(
            select(ConsoleAccount.id).where(ConsoleAccount.staff_id == invite.for_staff_id)
        )
    ).first()
    if staff is None or not staff.active or taken is not None:
        raise AccountError("invite_unknown")
    invite.used_at = now
    invite.used_by_staff_id = staff.id
    session.add(invite)
    audit.record(session, actor=staff, action="console_link", now=now)
    return staff


async def link_account(
    session: AsyncSession,
    *,
    keyring: Keyring,
    staff: Staff,
    username: str,
    password: str,
    totp_secret: str,
    now: datetime,
) -> ConsoleAccount:
    """Give an enrolled staff member (a Telegram one) a console login on the same row (commits).

    The operator sets the password and the TOTP secret and hands both over; the staff member's
    role and scope stay those of their `Staff` row.
    """
    username = normalize_username(username)
    if not USERNAME.match(username):
        raise AccountError("username_invalid")
    check_new_password(password, username=username)
    if await _account_named(session, username) is not None:
        raise AccountError("username_taken")
    assert staff.id is not None
    account = ConsoleAccount(
        staff_id=staff.id,
        username=username,
        password_hash=credentials.hash_password(password),
        totp_secret=keyring.seal_credential(totp_secret),
        totp_enrolled_at=now,
        password_changed_at=now,
        created_at=now,
    )
    session.add(account)
    audit.record(session, actor="operator", action="console_link", after=_who(account), now=now)
    await session.commit()
    return account


async def log_in(
    session: AsyncSession,
    *,
    keyring: Keyring,
    username: str,
    password: str,
    code: str,
    address: str,
    now: datetime,
    policy: LoginPolicy,
) -> Login:
    """Check a password and TOTP code; AccountError("bad_login"|"locked"|"throttled") if not."""
    attempts = await flood.hit(
        session,
        key=keyring.address_key(address),
        bucket="console_login",
        now=now,
        window=ADDRESS_WINDOW,
    )
    if attempts > policy.address_attempts:
        audit.record(
            session,
            actor="console login",
            action="console_login",
            allowed=False,
            after={"reason": "throttled"},
            now=now,
        )
        await session.commit()
        raise AccountError("throttled")
    account = await _account_named(session, normalize_username(username))
    staff = await session.get(Staff, account.staff_id) if account else None
    password_ok = credentials.password_matches(account.password_hash if account else None, password)
    if account is None or staff is None or not staff.active:
        audit.record(
            session,
            actor="console login (no such account)",
            action="console_login",
            allowed=False,
            after={"reason": "bad_login"},
            now=now,
        )
        await session.commit()
        raise AccountError("bad_login")
    if account.locked_until is not None and account.locked_until > now:
        await _refuse(session, staff, account, "locked", now, count=False, policy=policy)
    if not password_ok:
        await _refuse(session, staff, account, "bad_password", now, policy=policy)
    stage = sessions.Stage.ENROLL
    if account.totp_secret is not None:
        secret = keyring.open_credential(account.totp_secret)
        step = credentials.accepted_step(secret, code, now, after_step=account.totp_last_step)
        if step is None:
            await _refuse(session, staff, account, "bad_code", now, policy=policy)
        account.totp_last_step = step
        stage = sessions.Stage.FULL
    account.failed_logins = 0
    account.locked_until = None
    if credentials.needs_rehash(account.password_hash):
        account.password_hash = credentials.hash_password(password)
    session.add(account)
    token = await sessions.start(
        session, account=account, stage=stage, now=now, limits=policy.timeouts
    )
    audit.record(session, actor=staff, action="console_login", after={"stage": stage}, now=now)
    await session.commit()
    return Login(token=token, stage=stage)


async def _refuse(
    session: AsyncSession,
    staff: Staff,
    account: ConsoleAccount,
    reason: str,
    now: datetime,
    *,
    policy: LoginPolicy,
    count: bool = True,
) -> NoReturn:
    """Count a failure (locking the account at the limit), audit it, commit, raise."""
    locked = False
    if count:
        account.failed_logins += 1
        if account.failed_logins >= policy.max_failures:
            account.locked_until = now + policy.lockout
            account.failed_logins = 0
            locked = True
        session.add(account)
    audit.record(
        session,
        actor=staff,
        action="console_login",
        allowed=False,
        after={"reason": reason, "locked": locked or reason == "locked"},
        now=now,
    )
    await session.commit()
    raise AccountError("locked" if locked or reason == "locked" else "bad_login")


async def begin_totp(session: AsyncSession, *, keyring: Keyring, current: sessions.Current) -> str:
    """A new TOTP secret for the enrolment page, kept sealed on the session (commits)."""
    secret = credentials.new_totp_secret()
    current.row.pending_totp = keyring.seal_credential(secret)
    session.add(current.row)
    await session.commit()
    return secret


def pending_totp(*, keyring: Keyring, current: sessions.Current) -> str | None:
    """The secret this session is enrolling, if any (to show again after a mistyped code)."""
    if current.row.pending_totp is None:
        return None
    return keyring.open_credential(current.row.pending_totp)


async def confirm_totp(
    session: AsyncSession,
    *,
    keyring: Keyring,
    current: sessions.Current,
    code: str,
    now: datetime,
) -> bool:
    """Enrol the pending secret if `code` matches it; the session becomes full (commits)."""
    row, account = current.row, current.account
    if row.pending_totp is None:
        return False
    secret = keyring.open_credential(row.pending_totp)
    step = credentials.accepted_step(secret, code, now, after_step=0)
    if step is None:
        return False
    account.totp_secret = keyring.seal_credential(secret)
    account.totp_enrolled_at = now
    account.totp_last_step = step
    row.pending_totp = None
    row.stage = sessions.Stage.FULL
    session.add_all([account, row])
    audit.record(session, actor=current.staff, action="console_totp", now=now)
    await session.commit()
    return True


async def set_password(
    session: AsyncSession, *, username: str, password: str, now: datetime
) -> ConsoleAccount:
    """An operator sets a new password; every session of the account ends (commits)."""
    account = await _operator_target(session, username)
    check_new_password(password, username=account.username)
    account.password_hash = credentials.hash_password(password)
    account.password_changed_at = now
    account.failed_logins = 0
    account.locked_until = None
    return await _operator_done(session, account, "console_passwd", now)


async def reset_totp(session: AsyncSession, *, username: str, now: datetime) -> ConsoleAccount:
    """An operator clears a lost TOTP: the next login enrols a new one (commits)."""
    account = await _operator_target(session, username)
    account.totp_secret = None
    account.totp_enrolled_at = None
    return await _operator_done(session, account, "console_totp_reset", now)


async def _operator_target(session: AsyncSession, username: str) -> ConsoleAccount:
    """The account an operator command names; AccountError("no_account") if none."""
    account = await _account_named(session, normalize_username(username))
    if account is None:
        raise AccountError("no_account")
    return account


async def _operator_done(
    session: AsyncSession, account: ConsoleAccount, action: str, now: datetime
) -> ConsoleAccount:
    """Save an operator's change: every session of the account ends, audited (commits)."""
    session.add(account)
    assert account.id is not None
    await sessions.end_all(session, account_id=account.id, now=now)
    audit.record(session, actor="operator", action=action, after=_who(account), now=now)
    await session.commit()
    return account


def _who(account: ConsoleAccount) -> dict[str, object]:
    """The audited identity of an account (staff are not anonymous)."""
    return {"staff": account.staff_id, "username": account.username}


async def _account_named(session: AsyncSession, username: str) -> ConsoleAccount | None:
    """The account with this (normalized) username."""
    statement = select(ConsoleAccount).where(ConsoleAccount.username == username)
    return (await session.exec(statement)).first()
