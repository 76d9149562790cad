"""`tinbao serve` with real processes: webhook secret, whole tips, readiness, metrics, drain."""

from __future__ import annotations

import asyncio
import re
import signal
from collections.abc import Callable
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families
from sqlmodel import col, func, select

from sandbox.client import EmulatorClient, User
from storage.db import Database
from storage.models import ConversationDraft, Tip
from tests.faults.tipline import Processes, TipLine, eventually
from tests.serve.conftest import WEBHOOK_SECRET, Instance, set_webhook_raw, tinbao_cli

pytestmark = pytest.mark.faults  # real processes: slower, skipped with -m "not faults"


async def drafts_count(db: Database) -> int:
    """How many conversations the bot holds."""
    async with db.session() as session:
        return int((await session.exec(select(func.count()).select_from(ConversationDraft))).one())


async def webhook_info(client: EmulatorClient) -> dict[str, Any]:
    """The emulator's getWebhookInfo for the test bot."""
    from tests.faults.tipline import TOKEN

    answer = await client._http.post(f"/bot{TOKEN}/getWebhookInfo")
    result: dict[str, Any] = answer.json()["result"]
    return result


async def test_webhook_refuses_wrong_and_missing_secret_then_takes_the_right_one(
    start_serve: Callable[..., Any],
    processes: Processes,
    client: EmulatorClient,
    tipline: TipLine,
    emulator_url: str,
) -> None:
    serve: Instance = await start_serve()
    citizen = User(7_100_001, "Người dân")

    # A wrong secret: the emulator keeps the update and retries; nothing is processed.
    await set_webhook_raw(emulator_url, serve.url + "/telegram/webhook", "not-the-secret")
    await client.send_text(citizen, "/start")

    async def refused() -> bool:
        info = await webhook_info(client)
        return "403" in str(info.get("last_error_message", ""))

    await eventually("the emulator is refused with 403", refused, alive=serve.alive())
    # No secret at all: refused the same way.
    await set_webhook_raw(emulator_url, serve.url + "/telegram/webhook", None)
    forged = {"update_id": 999, "message": {"message_id": 1, "date": 0, "text": "/start",
              "chat": {"id": 7_100_002, "type": "private"},
              "from": {"id": 7_100_002, "is_bot": False, "first_name": "X"}}}  # fmt: skip
    assert (await serve.post_update(forged, None)).status_code == 403
    assert (await serve.post_update(forged, "wrong")).status_code == 403
    await asyncio.sleep(1.0)  # anything wrongly queued would have been handled by now
    assert await drafts_count(tipline.db) == 0
    assert await client.bot_messages(citizen.id) == []
    assert (await webhook_info(client))["pending_update_count"] >= 1

    # The operator registers the webhook properly: the retried update gets through.
    done = tinbao_cli(processes, "webhook", "set", TINBAO_PUBLIC_URL=serve.url,
                      TINBAO_WEBHOOK_SECRET=WEBHOOK_SECRET)  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    assert "webhook set" in done.stdout
    await tipline.reply(citizen.id, lambda message: "Gửi tin báo" in str(message))
    assert await drafts_count(tipline.db) == 1
    shown = tinbao_cli(processes, "webhook", "info")
    assert serve.url + "/telegram/webhook" in shown.stdout

    metrics = await serve.get("/metrics")
    rejected = {
        sample.labels["reason"]: sample.value
        for family in text_string_to_metric_families(metrics.text)
        if family.name == "tinbao_webhook_rejected"
        for sample in family.samples
        if sample.name == "tinbao_webhook_rejected_total"
    }
    assert rejected["secret"] >= 4  # the emulator's retries and both forgeries


async def test_whole_tips_by_webhook_reach_the_inbox(
    start_serve: Callable[..., Any],
    processes: Processes,
    client: EmulatorClient,
    tipline: TipLine,
    emulator_url: str,
) -> None:
    serve: Instance = await start_serve("--verbose")  # the most the logs ever say
    await set_webhook_raw(emulator_url, serve.url + "/telegram/webhook", WEBHOOK_SECRET)
    inboxes = await tipline.police()
    short_ids = await tipline.send_tips(5)
    await eventually(
        "every tip has its card",
        lambda: _cards_for(tipline, inboxes, short_ids),
        alive=serve.alive(),
    )
    async with tipline.db.session() as session:
        assert int((await session.exec(select(func.count()).select_from(Tip))).one()) == 5
    # Every update was logged as a JSON line with ids and timing, never the citizens' text.
    log = processes.log(serve.name)
    handled = [line for line in log.splitlines() if '"update handled"' in line]
    assert handled and all('"duration_ms"' in line and '"handler"' in line for line in handled)
    assert "có người bán ma túy" not in log and "Nguyễn Văn" not in log
    assert "FAULT-TEST-TOKEN" not in log
    assert "bot<redacted>/" in log  # the request lines were there, token removed
    for user_id in (inboxes.officer.id, inboxes.supervisor.id):
        assert str(user_id) not in log


async def _cards_for(tipline: TipLine, inboxes: Any, short_ids: list[str]) -> bool:
    cards = await tipline.cards(inboxes)
    return all(cards[short_id] >= 1 for short_id in short_ids)


async def test_metrics_parse_and_carry_no_ids_readyz_names_both_leaders(
    start_serve: Callable[..., Any],
    client: EmulatorClient,
    tipline: TipLine,
    emulator_url: str,
    database_url: str,
) -> None:
    serve: Instance = await start_serve()
    await set_webhook_raw(emulator_url, serve.url + "/telegram/webhook", WEBHOOK_SECRET)
    inboxes = await tipline.police()
    await tipline.send_tips(2)

    async def both_lead() -> bool:
        body = (await serve.get("/readyz")).json()
        return bool(body["ready"]) and body["checks"]["leader"] == {
            "maintenance": True,
            "outreach": True,
        }

    # One process on its own leads both duties (each has its own lock).
    await eventually("this only instance leads both duties", both_lead, timeout=30)
    text = (await serve.get("/metrics")).text
    families = {family.name: family for family in text_string_to_metric_families(text)}
    for name in (
        "tinbao_updates",
        "tinbao_update_duration_seconds",
        "tinbao_tips",
        "tinbao_outbox_depth",
        "tinbao_outbox_oldest_due_seconds",
        "tinbao_leader",
        "tinbao_sends",
    ):
        assert name in families, f"{name} missing from /metrics"
    tips = {
        tuple(sorted(sample.labels.items())): sample.value
        for sample in families["tinbao_tips"].samples
    }
    assert sum(tips.values()) == 2
    ids = {str(inboxes.officer.id), str(inboxes.supervisor.id), str(inboxes.commune_chat),
           str(inboxes.province_chat)}  # fmt: skip
    for family in families.values():
        for sample in family.samples:
            for value in sample.labels.values():
                assert value not in ids
                assert not re.fullmatch(r"-?\d{5,}", value), (sample.name, value)


async def test_serve_without_telegram_starts_and_is_ready(
    start_serve: Callable[..., Any], processes: Processes
) -> None:
    serve: Instance = await start_serve(TINBAO_BOT_TOKEN="")
    body = (await serve.get("/readyz")).json()
    assert body["ready"] is True
    assert "telegram" not in body["checks"]
    assert body["checks"]["leader"] == {"maintenance": True}
    missing = await serve.post_update({"update_id": 1}, WEBHOOK_SECRET)
    assert missing.status_code == 404  # no Telegram here at all
    assert "channels: none" in processes.log(serve.name)


async def test_readyz_is_503_on_an_old_schema(
    start_serve: Callable[..., Any], processes: Processes, tmp_path: Any
) -> None:
    old = f"sqlite+aiosqlite:///{tmp_path / 'old.db'}"
    done = tinbao_cli(processes, "db", "upgrade", "0004", TINBAO_DATABASE_URL=old)
    assert done.returncode == 0, done.stderr
    serve: Instance = await start_serve(wait_ready=False, TINBAO_DATABASE_URL=old)
    await eventually("healthz answers", lambda: _healthy(serve), alive=serve.alive())
    answer = await serve.get("/readyz")
    assert answer.status_code == 503
    assert any("tinbao db upgrade" in reason for reason in answer.json()["reasons"])


async def _healthy(serve: Instance) -> bool:
    try:
        return (await serve.get("/healthz")).status_code == 200
    except Exception:
        return False


async def test_sigterm_handles_every_update_it_took_then_the_next_instance_the_rest(
    start_serve: Callable[..., Any],
    processes: Processes,
    client: EmulatorClient,
    tipline: TipLine,
    emulator_url: str,
) -> None:
    first: Instance = await start_serve()
    await set_webhook_raw(emulator_url, first.url + "/telegram/webhook", WEBHOOK_SECRET)
    citizens = [User(7_200_000 + number, "Người dân") for number in range(60)]
    await asyncio.gather(*(client.send_text(citizen, "/start") for citizen in citizens))
    await asyncio.sleep(0.3)  # some taken, some still queued at the emulator
    processes.running[first.name].send_signal(signal.SIGTERM)
    # uvicorn re-raises the signal once shut down, so the exit status is "killed by SIGTERM"
    # (what systemd and docker expect of a clean stop on SIGTERM).
    assert processes.running[first.name].wait(60) in (0, -signal.SIGTERM)
    log = processes.log(first.name)
    assert "stopped" in log
    taken = log.count('"update handled"')
    answered = [citizen for citizen in citizens if await client.bot_messages(citizen.id)]
    # Every update answered 200 was handled before the process exited.
    assert len(answered) == taken, (len(answered), taken)

    second: Instance = await start_serve()
    await set_webhook_raw(emulator_url, second.url + "/telegram/webhook", WEBHOOK_SECRET)

    async def everyone_answered() -> bool:
        counts = [len(await client.bot_messages(citizen.id)) for citizen in citizens]
        return all(count >= 1 for count in counts)

    await eventually("every citizen got the menu", everyone_answered, alive=second.alive())
    counts = [len(await client.bot_messages(citizen.id)) for citizen in citizens]
    assert all(count == 1 for count in counts), counts  # once each: nothing handled twice
    async with tipline.db.session() as session:
        keys = (await session.exec(select(col(ConversationDraft.key)))).all()
    assert len(keys) == len(citizens)
