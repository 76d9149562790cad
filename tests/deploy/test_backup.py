"""deploy/tinbao-backup.sh against a real PostgreSQL: dump, rotate, restore, fail loudly.

Needs PostgreSQL at 127.0.0.1:5432 with trust auth for the `postgres` user (as on CI) and the
PostgreSQL client tools. Each test works in scratch databases of its own, created and dropped
through the `postgres` maintenance database; the `test` database is never touched.
"""

from __future__ import annotations

import asyncio
import os
import re
import secrets
import shutil
import socket
import stat
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlmodel import func, select

from storage.db import Database
from storage.models import Commune, Tip
from tinbao.runtime import prepare_database

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "deploy" / "tinbao-backup.sh"
HOST, PORT = "127.0.0.1", 5432
DUMP_NAME = re.compile(r"^tinbao-\d{8}-\d{6}\.dump$")


def _postgres_reachable() -> bool:
    try:
        socket.create_connection((HOST, PORT), timeout=2).close()
    except OSError:
        return False
    return True


_missing = [tool for tool in ("pg_dump", "pg_restore", "psql") if shutil.which(tool) is None]
pytestmark = [
    pytest.mark.skipif(
        bool(_missing), reason=f"PostgreSQL client tools missing: {', '.join(_missing)}"
    ),
    pytest.mark.skipif(
        not _postgres_reachable(), reason=f"PostgreSQL is not reachable at {HOST}:{PORT}"
    ),
]


def _url(database: str, driver: str = "+asyncpg") -> str:
    return f"postgresql{driver}://postgres@{HOST}:{PORT}/{database}"


def _psql(sql: str) -> None:
    subprocess.run(
        [
            "psql",
            "-h",
            HOST,
            "-p",
            str(PORT),
            "-U",
            "postgres",
            "-d",
            "postgres",
            "-v",
            "ON_ERROR_STOP=1",
            "-q",
            "-c",
            sql,
        ],
        check=True,
        capture_output=True,
        env=_clean_env(),
    )


def _clean_env(**extra: str) -> dict[str, str]:
    """The test's environment without libpq or backup settings that could redirect a run."""
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith("PG") and key not in ("BACKUP_DATABASE_URL", "TINBAO_DATABASE_URL")
    }
    env.update(extra)
    return env


@pytest.fixture
def scratch_databases() -> Iterator[tuple[str, str]]:
    """Two empty databases (source, restore target), dropped afterwards whatever happens."""
    suffix = secrets.token_hex(4)
    names = (f"tinbao_backup_src_{suffix}", f"tinbao_backup_dst_{suffix}")
    for name in names:
        _psql(f'CREATE DATABASE "{name}"')
    try:
        yield names
    finally:
        for name in names:
            _psql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _backup(backup_dir: Path, url: str, keep: int) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["bash", str(SCRIPT)],
        env=_clean_env(TINBAO_DATABASE_URL=url, BACKUP_DIR=str(backup_dir), KEEP_DAILY=str(keep)),
        capture_output=True,
        text=True,
        timeout=120,
    )


async def _add_tip(url: str, number: int) -> None:
    db = Database(url)
    try:
        async with db.session() as session:
            commune = (await session.exec(select(func.min(Commune.code)))).one()
            session.add(
                Tip(
                    short_id=f"BK{number:04d}",
                    receipt_hash=f"{number:064x}",
                    channel="telegram",
                    category="other",
                    commune_code=commune,
                    text=f"tin báo thử số {number}",
                )
            )
            await session.commit()
    finally:
        await db.dispose()


async def _row_counts(url: str) -> dict[str, int]:
    """Rows in every table of the public schema, alembic_version included."""
    db = Database(url)
    try:
        async with db.engine.connect() as connection:
            tables = (
                (
                    await connection.execute(
                        text(
                            "SELECT table_name FROM information_schema.tables "
                            "WHERE table_schema = 'public' AND table_type = 'BASE TABLE'"
                        )
                    )
                )
                .scalars()
                .all()
            )
            counts = {}
            for table in tables:
                query = text(f'SELECT count(*) FROM "{table}"')
                counts[table] = (await connection.execute(query)).scalar_one()
            version = (
                await connection.execute(text("SELECT version_num FROM alembic_version"))
            ).scalar_one()
    finally:
        await db.dispose()
    counts[f"alembic_version={version}"] = 1
    return counts


def test_backup_rotates_and_the_newest_restores_whole(
    scratch_databases: tuple[str, str], tmp_path: Path
) -> None:
    source, target = scratch_databases
    asyncio.run(prepare_database(_url(source)))
    backup_dir = tmp_path / "backups"

    written = []
    for number in (1, 2, 3):
        asyncio.run(_add_tip(_url(source), number))
        result = _backup(backup_dir, _url(source), keep=2)
        assert result.returncode == 0, result.stderr
        path = Path(result.stdout.strip().splitlines()[-1])
        assert path.parent == backup_dir and DUMP_NAME.match(path.name), result.stdout
        written.append(path)
        time.sleep(1.1)  # names have a one-second resolution; the script refuses to overwrite

    files = sorted(p.name for p in backup_dir.iterdir() if p.name != ".lock")
    # Rotation kept the two newest and no temporary file is left.
    assert files == [written[1].name, written[2].name]
    for name in files:
        mode = stat.S_IMODE((backup_dir / name).stat().st_mode)
        assert mode == 0o600, f"{name} is {oct(mode)}: dumps hold tip texts"
    assert stat.S_IMODE(backup_dir.stat().st_mode) == 0o700

    restored = subprocess.run(
        ["bash", str(SCRIPT), "--restore", str(written[2]), _url(target)],
        env=_clean_env(),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert restored.returncode == 0, restored.stderr

    expected = asyncio.run(_row_counts(_url(source)))
    assert expected["tip"] == 3 and expected["commune"] == 3321 and expected["province"] == 34
    assert asyncio.run(_row_counts(_url(target))) == expected


def test_restore_again_over_a_restored_database(
    scratch_databases: tuple[str, str], tmp_path: Path
) -> None:
    """A restore drill repeated on the same target: --clean --if-exists replaces, not appends."""
    source, target = scratch_databases
    asyncio.run(prepare_database(_url(source)))
    asyncio.run(_add_tip(_url(source), 1))
    result = _backup(tmp_path, _url(source, driver=""), keep=14)  # a plain libpq URL works too
    assert result.returncode == 0, result.stderr
    dump = result.stdout.strip().splitlines()[-1]
    for _ in range(2):
        restored = subprocess.run(
            ["bash", str(SCRIPT), "--restore", dump, _url(target)],
            env=_clean_env(),
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert restored.returncode == 0, restored.stderr
    assert asyncio.run(_row_counts(_url(target))) == asyncio.run(_row_counts(_url(source)))


@pytest.mark.parametrize(
    ("database", "keep", "message"),
    [
        (f"tinbao_backup_missing_{secrets.token_hex(4)}", "2", "pg_dump failed"),
        ("postgres", "0", "KEEP_DAILY"),
    ],
    ids=["database-missing", "keep-zero"],
)
def test_a_failed_backup_exits_non_zero_and_leaves_no_file(
    tmp_path: Path, database: str, keep: str, message: str
) -> None:
    result = subprocess.run(
        ["bash", str(SCRIPT)],
        env=_clean_env(
            TINBAO_DATABASE_URL=_url(database), BACKUP_DIR=str(tmp_path), KEEP_DAILY=keep
        ),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode != 0
    assert message in result.stderr
    assert [p.name for p in tmp_path.iterdir() if p.name != ".lock"] == []


def test_restore_refuses_a_file_that_is_not_a_dump(tmp_path: Path) -> None:
    junk = tmp_path / "tinbao-20260101-000000.dump"
    junk.write_text("not a dump")
    result = subprocess.run(
        ["bash", str(SCRIPT), "--restore", str(junk), _url("postgres")],
        env=_clean_env(),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode != 0
    assert "not a pg_dump custom-format archive" in result.stderr
