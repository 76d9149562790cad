"""Shared fixtures: a real database (SQLite file, or PostgreSQL when configured)."""

from __future__ import annotations

import asyncio
import os
import shutil
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import text

from storage.db import Database
from tinbao.runtime import prepare_database

POSTGRES_URL = os.environ.get("TINBAO_TEST_POSTGRES_URL")
# Tables that tests fill; reference tables (province, commune) are loaded once per session.
MUTABLE_TABLES = (
    "inboundseen",
    "zalooatoken",
    "delivery",
    "broadcastrun",
    "broadcast",
    "sessioncheckin",
    "pledgesignature",
    "outreachsession",
    "pledgecampaign",
    "subscriptiontopic",
    "subscriber",
    "auditevent",
    "consolesession",
    "consoleaccount",
    "tipnote",
    "inboxpost",
    "outboxmessage",
    "tipmessage",
    "tipattachment",
    "tip",
    "inbox",
    "invite",
    "staff",
    "conversationdraft",
    "floodcounter",
)


class FakeClock:
    """A clock tests move by hand: deadlines and expiry are tested without sleeping."""

    def __init__(self, start: datetime | None = None) -> None:
        self.now = start or datetime(2026, 11, 22, 3, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        """The current fake time."""
        return self.now

    def advance(self, **delta: float) -> None:
        """Move time forward."""
        self.now += timedelta(**delta)


@pytest.fixture(scope="session")
def _sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A migrated SQLite file with communes loaded, copied for each test."""
    path = tmp_path_factory.mktemp("template") / "template.db"
    asyncio.run(prepare_database(f"sqlite+aiosqlite:///{path}"))
    return path


@pytest.fixture(scope="session")
def _postgres_ready() -> str | None:
    """Reset the PostgreSQL test database once per session and migrate it."""
    if not POSTGRES_URL:
        return None

    async def reset() -> None:
        db = Database(POSTGRES_URL)
        async with db.engine.begin() as connection:
            await connection.execute(text("DROP SCHEMA public CASCADE"))
            await connection.execute(text("CREATE SCHEMA public"))
        await db.dispose()
        await prepare_database(POSTGRES_URL)

    asyncio.run(reset())
    return POSTGRES_URL


@pytest.fixture
def database_url(
    request: pytest.FixtureRequest, tmp_path: Path, _sqlite_template: Path
) -> Iterator[str]:
    """A fresh database for one test: PostgreSQL when configured, else a SQLite file."""
    if POSTGRES_URL:
        url = request.getfixturevalue("_postgres_ready")

        async def truncate() -> None:
            db = Database(url)
            async with db.engine.begin() as connection:
                await connection.execute(text(f"TRUNCATE {', '.join(MUTABLE_TABLES)} CASCADE"))
            await db.dispose()

        asyncio.run(truncate())
        yield url
        return
    path = tmp_path / "tinbao.db"
    shutil.copy(_sqlite_template, path)
    yield f"sqlite+aiosqlite:///{path}"


@pytest.fixture
async def db(database_url: str) -> AsyncIterator[Database]:
    """An open Database on the test's database."""
    database = Database(database_url)
    yield database
    await database.dispose()


@pytest.fixture
def clock() -> FakeClock:
    """A controllable clock."""
    return FakeClock()


async def queued_receipt(db: Database) -> str:
    """The newest receipt message queued for a tipster (the outbox delivers it)."""
    from sqlmodel import col, select

    from storage.models import OutboxMessage

    async with db.session() as session:
        row = (
            await session.exec(
                select(OutboxMessage)
                .where(OutboxMessage.kind == "receipt")
                .order_by(col(OutboxMessage.id).desc())
            )
        ).first()
    assert row is not None, "no receipt queued"
    return str(row.payload["text"])
