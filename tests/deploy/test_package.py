"""What `pip install .` in deploy/Dockerfile installs: built from exactly the paths it COPYs.

No Docker engine is needed: the paths the Dockerfile copies into its build stage are copied
into a scratch directory, a wheel is built there with pip (as the image's `pip install .` does),
and the unpacked wheel, alone on sys.path, must migrate a fresh database. This catches a
package, a migration or a data file that `pip install -e .` finds in the checkout but a real
install would leave behind.
"""

from __future__ import annotations

import os
import shutil
import sqlite3
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
DOCKERFILE = REPO / "deploy" / "Dockerfile"


def _build_stage_copies() -> list[str]:
    sources = []
    stage = 0
    for line in DOCKERFILE.read_text(encoding="utf-8").splitlines():
        words = line.split()
        if words[:1] == ["FROM"]:
            stage += 1
        elif stage == 1 and words[:1] == ["COPY"] and not words[1].startswith("--"):
            sources += [word.removeprefix("./") for word in words[1:-1]]
    return sources


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    work = tmp_path_factory.mktemp("image")
    context = work / "src"
    context.mkdir()
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", "*.egg-info")
    for source in _build_stage_copies():
        path = REPO / source
        if path.is_dir():
            shutil.copytree(path, context / source, ignore=ignore)
        else:
            shutil.copy2(path, context / source)
    out = work / "wheels"
    result = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--quiet", "-w", str(out), "."],
        cwd=context,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    (built,) = out.glob("tinbao-*.whl")
    return built


def test_the_wheel_carries_code_migrations_and_data(wheel: Path) -> None:
    names = set(zipfile.ZipFile(wheel).namelist())
    migrations = {p.name for p in (REPO / "storage" / "migrations" / "versions").glob("*.py")}
    assert migrations and all(f"storage/migrations/versions/{m}" in names for m in migrations)
    expected = [
        "storage/migrations/env.py",
        "storage/migrations/script.py.mako",
        "bot/content/locale/vi/LC_MESSAGES/tinbao.po",
        "bot/content/locale/en/LC_MESSAGES/tinbao.po",
        "bot/content/categories.yaml",
        "tinbao/cli.py",
        "scheduler/__init__.py",
    ]
    for path in (REPO / "bot" / "content").rglob("*"):
        if path.suffix in (".yaml", ".md"):
            expected.append(path.relative_to(REPO).as_posix())
    missing = [path for path in expected if path not in names]
    assert not missing, f"not in the wheel: {missing}"
    entry_points = next(n for n in names if n.endswith(".dist-info/entry_points.txt"))
    assert "tinbao = tinbao.cli:app" in zipfile.ZipFile(wheel).read(entry_points).decode()
    assert not [n for n in names if n.startswith("tests/")]


def test_the_installed_code_migrates_a_fresh_database(wheel: Path, tmp_path: Path) -> None:
    site = tmp_path / "site"
    zipfile.ZipFile(wheel).extractall(site)
    database = tmp_path / "fresh.db"
    script = (
        "import sys, storage.migrate, tinbao.cli\n"
        "from alembic.script import ScriptDirectory\n"
        f"assert storage.migrate.__file__.startswith({str(site)!r}), storage.migrate.__file__\n"
        "config = storage.migrate.alembic_config('unused')\n"
        "print('head', ScriptDirectory.from_config(config).get_current_head())\n"
        "sys.argv = ['tinbao', 'db', 'upgrade']\n"
        "tinbao.cli.app()\n"
    )
    env = {
        **os.environ,
        # The wheel first on sys.path, ahead of the editable checkout in the venv.
        "PYTHONPATH": str(site),
        "TINBAO_DATABASE_URL": f"sqlite+aiosqlite:///{database}",
        "TINBAO_MODE": "production",
        "TINBAO_SECRET_KEY": "x" * 48,
    }
    result = subprocess.run(
        [sys.executable, "-c", script],
        cwd=tmp_path,  # away from the checkout, whose packages would shadow the wheel's
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "database upgraded" in result.stdout

    head = result.stdout.split("head ", 1)[1].split()[0]
    with sqlite3.connect(database) as connection:
        (version,) = connection.execute("SELECT version_num FROM alembic_version").fetchone()
    assert version == head
