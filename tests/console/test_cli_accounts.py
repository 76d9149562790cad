"""`tinbao staff passwd` and `tinbao staff totp-reset`: the real CLI on a real database."""

from __future__ import annotations

import asyncio
import os
import subprocess
from collections.abc import Awaitable, Callable
from datetime import timedelta
from pathlib import Path
from typing import TypeVar

import pytest
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession
from typer.testing import CliRunner

from bot.services.enrollment import create_invite
from storage.db import Database
from storage.models import AuditEvent, ConsoleAccount, ConsoleSession
from storage.types import utcnow
from tests.faults.tipline import TINBAO
from web import accounts, credentials, sessions

SECRET = "console-cli-tests-secret-key-0123456789-abcdefghijklmnop"
USERNAME = "canbo7"
OLD_PASSWORD = "mat-khau-cu-rat-dai"
NEW_PASSWORD = "mat khau moi, that dai 7"
POLICY = accounts.LoginPolicy(
    max_failures=5,
    lockout=timedelta(minutes=15),
    address_attempts=30,
    timeouts=sessions.Timeouts(idle=timedelta(minutes=30), absolute=timedelta(hours=12)),
)
T = TypeVar("T")


def _on_db(url: str, work: Callable[[AsyncSession], Awaitable[T]]) -> T:
    """Run `work` in a fresh session (the CLI runs in another process: nothing is cached)."""

    async def _run() -> T:
        db = Database(url)
        try:
            async with db.session() as session:
                return await work(session)
        finally:
            await db.dispose()

    return asyncio.run(_run())


@pytest.fixture
def cli_env(database_url: str, tmp_path: Path) -> dict[str, str]:
    """The environment of a `tinbao` process on the test database, upgraded by the CLI."""
    env = {
        **os.environ,
        "TINBAO_DATABASE_URL": database_url,
        "TINBAO_SECRET_KEY": SECRET,
        "TINBAO_MODE": "dev",
        "TINBAO_DATA_DIR": str(tmp_path / "data"),
        "COLUMNS": "200",  # rich wraps at 80 columns when not on a terminal
    }
    done = _tinbao(env, tmp_path, "db", "upgrade")
    assert done.returncode == 0, done.stdout + done.stderr
    return env


def _tinbao(
    env: dict[str, str], cwd: Path, *argv: str, stdin: str | None = None
) -> subprocess.CompletedProcess[str]:
    """Run a `tinbao` command as its own process (cwd has no .env) and return its output."""
    return subprocess.run(
        [TINBAO, *argv],
        env=env,
        cwd=cwd,
        input=stdin if stdin is not None else "",  # never the test runner's own stdin
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def _open_account(url: str) -> int:
    """An officer's console account, as /console/join makes it (one session open); its id."""

    async def work(session: AsyncSession) -> int:
        new = await create_invite(
            session, role="officer", commune_code=8635, province_code=None, now=utcnow()
        )
        await accounts.open_account(
            session,
            code=new.code,
            display_name="Cán bộ Bảy",
            username=USERNAME,
            password=OLD_PASSWORD,
            now=utcnow(),
            policy=POLICY,
        )
        account = (
            await session.exec(select(ConsoleAccount).where(ConsoleAccount.username == USERNAME))
        ).one()
        assert account.id is not None
        # A second browser: both sessions must end.
        await sessions.start(
            session,
            account=account,
            stage=sessions.Stage.ENROLL,
            now=utcnow(),
            limits=POLICY.timeouts,
        )
        await session.commit()
        return account.id

    return _on_db(url, work)


def _account(url: str) -> ConsoleAccount:
    async def work(session: AsyncSession) -> ConsoleAccount:
        statement = select(ConsoleAccount).where(ConsoleAccount.username == USERNAME)
        return (await session.exec(statement)).one()

    return _on_db(url, work)


def _sessions(url: str, account_id: int) -> list[ConsoleSession]:
    async def work(session: AsyncSession) -> list[ConsoleSession]:
        statement = select(ConsoleSession).where(ConsoleSession.account_id == account_id)
        return list((await session.exec(statement)).all())

    return _on_db(url, work)


def _audit(url: str, action: str) -> list[AuditEvent]:
    async def work(session: AsyncSession) -> list[AuditEvent]:
        statement = (
            select(AuditEvent).where(AuditEvent.action == action).order_by(col(AuditEvent.id))
        )
        return list((await session.exec(statement)).all())

    return _on_db(url, work)


def test_passwd_from_stdin_sets_the_hash_and_ends_every_session(
    cli_env: dict[str, str], database_url: str, tmp_path: Path
) -> None:
    account_id = _open_account(database_url)
    before = _account(database_url)
    assert [row.revoked_at for row in _sessions(database_url, account_id)] == [None, None]

    done = _tinbao(
        cli_env,
        tmp_path,
        "staff",
        "passwd",
        " CanBo7 ",  # typed as the login form takes it
        "--password-stdin",
        stdin=NEW_PASSWORD + "\n",
    )

    assert done.returncode == 0, done.stdout + done.stderr
    assert f"password set for {USERNAME}; every session of the account ended" in done.stdout
    assert NEW_PASSWORD not in done.stdout + done.stderr
    after = _account(database_url)
    assert credentials.password_matches(after.password_hash, NEW_PASSWORD)
    assert not credentials.password_matches(after.password_hash, OLD_PASSWORD)
    assert after.password_changed_at > before.password_changed_at
    ended = _sessions(database_url, account_id)
    assert len(ended) == 2 and all(row.revoked_at is not None for row in ended)
    (event,) = _audit(database_url, "console_passwd")
    assert event.actor == "operator" and event.allowed
    assert event.after == {"staff": after.staff_id, "username": USERNAME}
    assert NEW_PASSWORD not in str(event.after)


def test_passwd_refuses_a_short_password_and_keeps_the_old_one(
    cli_env: dict[str, str], database_url: str, tmp_path: Path
) -> None:
    account_id = _open_account(database_url)
    before = _account(database_url)

    done = _tinbao(
        cli_env, tmp_path, "staff", "passwd", USERNAME, "--password-stdin", stdin="ngan\n"
    )

    assert done.returncode == 1, done.stdout + done.stderr
    assert "too short" in done.stdout and "at least 10 characters" in done.stdout
    assert "ngan" not in done.stdout + done.stderr
    after = _account(database_url)
    assert after.password_hash == before.password_hash
    assert credentials.password_matches(after.password_hash, OLD_PASSWORD)
    assert all(row.revoked_at is None for row in _sessions(database_url, account_id))
    assert _audit(database_url, "console_passwd") == []


def test_passwd_refuses_the_username_as_password(
    cli_env: dict[str, str], database_url: str, tmp_path: Path
) -> None:
    _open_account(database_url)
    before = _account(database_url)

    # Ten characters with the spaces (kept: only the line ending is cut), the username once
    # normalized as the login form normalizes it.
    done = _tinbao(
        cli_env, tmp_path, "staff", "passwd", USERNAME, "--password-stdin", stdin="  CanBo7  \n"
    )

    assert done.returncode == 1, done.stdout + done.stderr
    assert "the password must not be the username" in done.stdout
    assert _account(database_url).password_hash == before.password_hash


def test_passwd_and_totp_reset_refuse_an_unknown_username(
    cli_env: dict[str, str], database_url: str, tmp_path: Path
) -> None:
    _open_account(database_url)
    before = _account(database_url)

    done = _tinbao(
        cli_env,
        tmp_path,
        "staff",
        "passwd",
        "khong-co-ai",
        "--password-stdin",
        stdin=NEW_PASSWORD + "\n",
    )
    assert done.returncode == 1, done.stdout + done.stderr
    assert "no console account has that username" in done.stdout
    done = _tinbao(cli_env, tmp_path, "staff", "totp-reset", "khong-co-ai")
    assert done.returncode == 1, done.stdout + done.stderr
    assert "no console account has that username" in done.stdout

    assert _account(database_url).password_hash == before.password_hash
    assert _audit(database_url, "console_passwd") == []
    assert _audit(database_url, "console_totp_reset") == []


def test_passwd_with_empty_stdin_changes_nothing(
    cli_env: dict[str, str], database_url: str, tmp_path: Path
) -> None:
    _open_account(database_url)
    before = _account(database_url)

    done = _tinbao(cli_env, tmp_path, "staff", "passwd", USERNAME, "--password-stdin", stdin="")

    assert done.returncode == 1, done.stdout + done.stderr
    assert "no password on stdin" in done.stdout
    assert _account(database_url).password_hash == before.password_hash


def test_totp_reset_clears_the_authenticator_and_ends_every_session(
    cli_env: dict[str, str], database_url: str, tmp_path: Path
) -> None:
    account_id = _open_account(database_url)

    async def enrol(session: AsyncSession) -> None:
        account = await session.get(ConsoleAccount, account_id)
        assert account is not None
        account.totp_secret = b"sealed secret, as confirm_totp stores it"
        account.totp_enrolled_at = utcnow()
        session.add(account)
        await session.commit()

    _on_db(database_url, enrol)
    before = _account(database_url)

    done = _tinbao(cli_env, tmp_path, "staff", "totp-reset", USERNAME)

    assert done.returncode == 0, done.stdout + done.stderr
    assert f"authenticator cleared for {USERNAME}" in done.stdout
    assert "next login with the password will show a new QR code to enrol" in done.stdout
    after = _account(database_url)
    assert after.totp_secret is None and after.totp_enrolled_at is None
    assert after.password_hash == before.password_hash  # the password still works
    assert all(row.revoked_at is not None for row in _sessions(database_url, account_id))
    (event,) = _audit(database_url, "console_totp_reset")
    assert event.actor == "operator"
    assert event.after == {"staff": after.staff_id, "username": USERNAME}


def test_passwd_prompts_twice_without_echo(
    database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The default path: typer's hidden prompt with confirmation (in-process, to type into)."""
    from tinbao.cli import app

    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("TINBAO_DATABASE_URL", database_url)
    monkeypatch.setenv("TINBAO_SECRET_KEY", SECRET)
    monkeypatch.setenv("TINBAO_MODE", "dev")
    monkeypatch.setenv("TINBAO_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("COLUMNS", "200")
    _open_account(database_url)

    typed = f"{NEW_PASSWORD}\nnot the same one\n{NEW_PASSWORD}\n{NEW_PASSWORD}\n"
    result = CliRunner().invoke(app, ["staff", "passwd", USERNAME], input=typed)

    assert result.exit_code == 0, result.output
    assert "do not match" in result.output  # asked again after a mismatch
    assert NEW_PASSWORD not in result.output and "not the same one" not in result.output
    assert f"password set for {USERNAME}" in result.output
    assert credentials.password_matches(_account(database_url).password_hash, NEW_PASSWORD)
