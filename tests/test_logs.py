"""Logs: JSON lines with the structured fields, and no token or secret in any line."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator

import pytest

from tinbao import logs

TOKEN = "7654321:AAH-secretpart_ofthe-token"
SECRET = "server-secret-value-0123456789"


@pytest.fixture(autouse=True)
def _restore_logging() -> Iterator[None]:
    """Put the root logger back as it was (other tests rely on pytest's capture)."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


def test_json_lines_carry_fields_and_redact_tokens(capsys: pytest.CaptureFixture[str]) -> None:
    logs.configure(log_format="json", verbose=True, secrets=[TOKEN, SECRET])
    # PTB's debug lines carry chat ids and texts: kept off even when verbose.
    logging.getLogger("telegram.ext.ExtBot").debug("Calling sendMessage with {'text': 'tip'}")
    logging.getLogger("telegram.ext.ExtBot").info(
        "Calling Bot API endpoint `%s` with url https://api.telegram.org/bot%s/getMe",
        "getMe",
        TOKEN,
    )
    # The same token somewhere else than a Bot API URL, and a secret in an exception.
    logging.getLogger("httpx").info("token=%s", TOKEN)
    try:
        raise RuntimeError(f"cannot use {SECRET}")
    except RuntimeError:
        logging.getLogger("tinbao").exception("failed")
    logging.getLogger("tinbao.updates").info(
        "update handled",
        extra={"update_id": 5, "channel": "telegram", "handler": "citizen.on_message",
               "duration_ms": 3.2},
    )  # fmt: skip
    output = capsys.readouterr().err
    assert TOKEN not in output and "secretpart" not in output and SECRET not in output
    assert "'tip'" not in output
    lines = [json.loads(line) for line in output.splitlines()]
    assert "bot<redacted>/getMe" in lines[0]["message"]
    assert lines[1]["message"] == "token=<redacted>"
    assert "<redacted>" in lines[2]["exception"]
    assert lines[3] | {"ts": None} == {
        "ts": None,
        "level": "info",
        "logger": "tinbao.updates",
        "message": "update handled",
        "update_id": 5,
        "channel": "telegram",
        "handler": "citizen.on_message",
        "duration_ms": 3.2,
    }


def test_text_format_and_per_update_lines_off_by_default(
    capsys: pytest.CaptureFixture[str],
) -> None:
    logs.configure(log_format="text", secrets=[TOKEN])
    logging.getLogger("tinbao.updates").info("update handled", extra={"update_id": 1})
    logging.getLogger("tinbao").warning("sending to https://x/bot%s/sendMessage failed", TOKEN)
    output = capsys.readouterr().err
    assert "update handled" not in output  # one line per update only in JSON or verbose mode
    assert "bot<redacted>/sendMessage" in output and TOKEN not in output
