"""Process-local Prometheus metrics (counters and histograms the code increments).

Figures that live in the database (tips by status, outbox depth, broadcast deliveries) are read
at scrape time by `tinbao.serve.metrics` instead, so every instance reports the same truth.
Label values are fixed vocabularies (channel, update kind, handler name, outcome): never a user
id, chat id or text.
"""

from __future__ import annotations

from prometheus_client import Counter, Histogram

UPDATES = Counter(
    "tinbao_updates",
    "Updates received from a messenger, by channel and kind.",
    ["channel", "kind"],
)
UPDATE_SECONDS = Histogram(
    "tinbao_update_duration_seconds",
    "Time to handle one update, by channel.",
    ["channel"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
)
HANDLER_ERRORS = Counter(
    "tinbao_handler_errors",
    "Updates whose handler raised, by channel.",
    ["channel"],
)
WEBHOOK_REJECTED = Counter(
    "tinbao_webhook_rejected",
    "Webhook requests refused (wrong or missing secret, bad body), by channel and reason.",
    ["channel", "reason"],
)
SENDS = Counter(
    "tinbao_sends",
    "Messages handed to a messenger's API by the outbox or broadcast sender, by outcome.",
    ["channel", "sender", "outcome"],
)
RATE_LIMITED = Counter(
    "tinbao_rate_limited",
    "Answers asking to slow down (Telegram 429, Zalo quota), by channel and sender.",
    ["channel", "sender"],
)


def count_send(channel: str, sender: str, outcome: str) -> None:
    """Count one send attempt's outcome (sent, retry, rate_limited, unreachable, dead)."""
    SENDS.labels(channel=channel, sender=sender, outcome=outcome).inc()
    if outcome == "rate_limited":
        RATE_LIMITED.labels(channel=channel, sender=sender).inc()
