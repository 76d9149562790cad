"""Migrations that change data in place keep it: staff user ids become text (0008)."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import pytest
from sqlalchemy import text

from storage.db import Database
from storage.migrate import upgrade_async

POSTGRES_URL = os.environ.get("TINBAO_TEST_POSTGRES_URL", "")


async def _reset_postgres(url: str) -> None:
    db = Database(url)
    async with db.engine.begin() as connection:
        await connection.execute(text("DROP SCHEMA public CASCADE"))
        await connection.execute(text("CREATE SCHEMA public"))
    await db.dispose()


@pytest.fixture(params=["sqlite", "postgresql"])
def empty_database(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """An empty database of each kind (PostgreSQL only when configured)."""
    if request.param == "sqlite":
        return f"sqlite+aiosqlite:///{tmp_path / 'migrate.db'}"
    if not POSTGRES_URL:
        pytest.skip("TINBAO_TEST_POSTGRES_URL is not set")
    asyncio.run(_reset_postgres(POSTGRES_URL))
    return POSTGRES_URL


async def test_staff_user_ids_become_text_and_references_to_staff_survive(
    empty_database: str, request: pytest.FixtureRequest
) -> None:
    await upgrade_async(empty_database, "0007")
    db = Database(empty_database)
    try:
        async with db.engine.begin() as connection:
            await connection.execute(
                text(
                    "INSERT INTO staff (id, platform, platform_user_id, display_name, role,"
                    " active, created_at) VALUES (7, 'telegram', 6000123456, 'Cán bộ', 'officer',"
                    " true, CURRENT_TIMESTAMP)"
                )
            )
            await connection.execute(
                text(
                    "INSERT INTO invite (code_hash, role, created_at, expires_at, used_at,"
                    " used_by_staff_id) VALUES ('h', 'officer', CURRENT_TIMESTAMP,"
                    " CURRENT_TIMESTAMP, CURRENT_TIMESTAMP, 7)"
                )
            )
        await upgrade_async(empty_database, "head")
        async with db.engine.begin() as connection:
            (stored,) = (
                await connection.execute(text("SELECT platform_user_id FROM staff WHERE id = 7"))
            ).one()
            (used_by,) = (
                await connection.execute(text("SELECT used_by_staff_id FROM invite"))
            ).one()
            # A Zalo id (not a number) fits now.
            await connection.execute(
                text(
                    "INSERT INTO staff (platform, platform_user_id, display_name, role, active,"
                    " created_at) VALUES ('zalo_oa', '8ff93b82ead08ef02a45', 'B', 'officer', true,"
                    " CURRENT_TIMESTAMP)"
                )
            )
        assert stored == "6000123456" and isinstance(stored, str)
        assert used_by == 7
    finally:
        await db.dispose()
        if POSTGRES_URL and empty_database == POSTGRES_URL:
            # Leave the shared test database migrated, as the other tests expect it.
            await _reset_postgres(POSTGRES_URL)
            from tinbao.runtime import prepare_database

            await prepare_database(POSTGRES_URL)
