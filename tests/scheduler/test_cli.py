"""`tinbao broadcast ...`: create, list, show, pause, resume, cancel, send."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from typer.testing import CliRunner

from tests.scheduler.conftest import SECRET
from tinbao.cli_broadcast import broadcast_app

runner = CliRunner()


@pytest.fixture
def cli_env(database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The CLI's settings point at the test database; no stray .env is read."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("TINBAO_DATABASE_URL", database_url)
    monkeypatch.setenv("TINBAO_SECRET_KEY", SECRET)
    monkeypatch.setenv("TINBAO_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("COLUMNS", "200")  # rich tables wide enough to read in assertions


def run(*args: str) -> tuple[int, str]:
    """Invoke the CLI; return the exit code and output."""
    result = runner.invoke(broadcast_app, list(args))
    return result.exit_code, result.output


def created(out: str) -> str:
    """The id `create` printed (ids need not start at 1: PostgreSQL sequences survive TRUNCATE)."""
    match = re.search(r"broadcast (\d+) scheduled", out)
    assert match is not None, out
    return match.group(1)


@pytest.mark.usefixtures("cli_env")
def test_schedule_follow_and_change_broadcasts() -> None:
    code, out = run("create", "--text", "<b>Họp dân</b> tối nay", "--daily", "08:00")
    assert code == 0, out
    assert "08:00" in out
    first = created(out)
    code, out = run("create", "--text", "Tuần", "--weekly", "T2 19:30", "--audience", "province")
    assert code == 1 and "bad_audience" in out  # a province audience needs --code
    code, out = run(
        "create",
        "--text",
        "Tuần",
        "--weekly",
        "T2 19:30",
        "--audience",
        "commune",
        "--code",
        "8635",
    )
    assert code == 0, out
    code, out = run("create", "--text", "Cũ", "--at", "01/01/2020 08:00")
    assert code == 1 and "in_past" in out
    code, out = run("create", "--text", "x", "--cron", "* * * * *")
    assert code == 1 and "bad_cron" in out

    code, out = run("list")
    assert code == 0, out
    assert "cron 0 8 * * *" in out and "cron 30 19 * * mon" in out and "commune 8635" in out

    assert run("pause", first) == (0, f"broadcast {first}: paused\n")
    code, out = run("show", first)
    assert code == 0 and "paused" in out
    assert run("resume", first) == (0, f"broadcast {first}: scheduled\n")
    assert run("cancel", first) == (0, f"broadcast {first}: cancelled\n")
    code, out = run("cancel", first)
    assert code == 1 and "bad_state" in out
    code, out = run("show", "999999")
    assert code == 1 and "not_found" in out


@pytest.mark.usefixtures("cli_env")
def test_send_has_nothing_to_do_before_the_first_run() -> None:
    code, out = run("create", "--text", "Sáng mai", "--daily", "08:00")
    assert code == 0, out
    code, out = run("send", created(out))
    assert code == 0, out
    assert "nothing to send now" in out
