"""Logging for tinbao processes: text or JSON lines, with tokens and secrets never written.

PTB and httpx put the bot token in every Bot API URL they log ("/bot123456:AA.../sendMessage"),
so a redacting filter sits on the handler itself: whatever logger a record comes from, its
final text passes through it. Records carry ids and figures only (update id, channel, handler,
duration); code never logs a user id, name, phone or text, and the filter is the second line.
"""

from __future__ import annotations

import json
import logging
import re
import sys
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any, Literal

# Bot API URLs (Telegram, Zalo Bot Platform): /bot<id>:<secret>/method.
_BOT_TOKEN_IN_URL = re.compile(r"bot\d+:[A-Za-z0-9_-]+")
REDACTED = "<redacted>"
# Structured fields a record may carry via `extra=`; anything else is not copied out.
FIELDS = ("update_id", "channel", "kind", "handler", "duration_ms", "status", "path", "reason")
# The standard LogRecord attributes, to tell `extra=` fields apart from them.
_RECORD_ATTRS = frozenset(vars(logging.makeLogRecord({})))


class RedactingFilter(logging.Filter):
    """Replace bot tokens in URLs and every configured secret with a placeholder."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        super().__init__()
        # Longest first, so a secret containing another is replaced whole.
        self.secrets = sorted({value for value in secrets if len(value) >= 6}, key=len)[::-1]

    def redact(self, text: str) -> str:
        """Return `text` with tokens and secrets replaced."""
        text = _BOT_TOKEN_IN_URL.sub("bot" + REDACTED, text)
        for value in self.secrets:
            text = text.replace(value, REDACTED)
        return text

    def filter(self, record: logging.LogRecord) -> bool:
        """Render the message once, redacted, so handlers never see the raw arguments."""
        message = record.getMessage()
        clean = self.redact(message)
        record.msg, record.args = clean, None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = self.redact(record.exc_text)
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time (UTC), level, logger, message, structured fields."""

    def format(self, record: logging.LogRecord) -> str:
        """Format a record as a JSON line."""
        entry: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        for name in FIELDS:
            value = record.__dict__.get(name)
            if value is not None:
                entry[name] = value
        if record.exc_text:
            entry["exception"] = record.exc_text
        return json.dumps(entry, ensure_ascii=False)


class TextFormatter(logging.Formatter):
    """The classic line, with the structured fields appended as key=value."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s: %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        """Format a record as a text line."""
        line = super().format(record)
        extras = [
            f"{name}={record.__dict__[name]}"
            for name in FIELDS
            if record.__dict__.get(name) is not None and name not in _RECORD_ATTRS
        ]
        return f"{line} {' '.join(extras)}" if extras else line


def configure(
    *,
    log_format: Literal["text", "json"] = "text",
    verbose: bool = False,
    secrets: Iterable[str] = (),
    per_update: bool | None = None,
) -> RedactingFilter:
    """Set up the root logger once for a process; return the redacting filter in use.

    `per_update` logs one line per handled update (default: in JSON mode or when verbose).
    """
    handler = logging.StreamHandler(sys.stderr)
    redactor = RedactingFilter(secrets)
    handler.addFilter(redactor)
    handler.setFormatter(JsonFormatter() if log_format == "json" else TextFormatter())
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(logging.DEBUG if verbose else logging.INFO)
    # httpx logs every request line (URL only; the token in it is redacted); at INFO that is
    # one line per message sent, so only when verbose.
    logging.getLogger("httpx").setLevel(logging.INFO if verbose else logging.WARNING)
    logging.getLogger("httpcore").setLevel(logging.WARNING)
    # PTB's debug lines print request parameters and updates: chat ids and message texts.
    # Verbose means tinbao's own debug lines; PTB never goes below INFO.
    logging.getLogger("telegram").setLevel(logging.INFO)
    logging.getLogger("apscheduler").setLevel(logging.WARNING)
    logging.getLogger("alembic").setLevel(logging.WARNING)  # a line per plugin at start
    if per_update is None:
        per_update = log_format == "json" or verbose
    logging.getLogger("tinbao.updates").setLevel(logging.INFO if per_update else logging.WARNING)
    return redactor
