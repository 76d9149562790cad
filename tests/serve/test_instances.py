"""Two `tinbao serve` instances on one PostgreSQL behind the real Caddy, in webhook mode.

Caddy balances round robin here (the deploy files use least_conn, which may keep a light test
load on one instance): every other update of a citizen lands on the other instance, which is
what these tests are about.
"""

from __future__ import annotations

import asyncio
import shutil
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.engine import make_url
from sqlmodel import select

from bot.services import broadcasts as svc
from bot.services.anonymity import Keyring
from sandbox.client import EmulatorClient, User
from storage.db import is_sqlite
from storage.models import Tip
from storage.types import utcnow
from tests.faults.proxy import CuttableProxy
from tests.faults.tipline import (
    KHA_CUU_LABEL,
    RECEIPT_CODE,
    SECRET,
    Processes,
    TipLine,
    _any,
    _button,
    _has_button,
    _text,
    eventually,
)
from tests.scheduler.conftest import TZ, NewSubscriber, add_subscribers, open_chats, spec
from tests.serve.conftest import WEBHOOK_SECRET, Instance, free_port, set_webhook_raw

pytestmark = pytest.mark.faults

CITIZENS = 200


@pytest.fixture(autouse=True)
def _postgres_only(database_url: str) -> None:
    """Several instances share one PostgreSQL: that is the production setup under test."""
    if is_sqlite(database_url):
        pytest.skip("several instances: set TINBAO_TEST_POSTGRES_URL (PostgreSQL)")


@pytest.fixture
def caddy(tmp_path: Path) -> Iterator[Callable[[list[Instance]], str]]:
    """Start the real Caddy in front of instances; return its URL."""
    if shutil.which("caddy") is None:
        pytest.skip("caddy is not installed (apt-get install caddy)")
    started: list[subprocess.Popen[bytes]] = []

    def start(instances: list[Instance]) -> str:
        port = free_port()
        upstreams = " ".join(f"127.0.0.1:{instance.port}" for instance in instances)
        config = tmp_path / "Caddyfile"
        config.write_text(
            "{\n\tadmin off\n\tauto_https off\n}\n"
            f"http://127.0.0.1:{port} {{\n"
            f"\treverse_proxy {upstreams} {{\n"
            "\t\tlb_policy round_robin\n\t\tlb_try_duration 5s\n\t\tlb_try_interval 100ms\n"
            "\t\thealth_uri /readyz\n\t\thealth_interval 1s\n\t}\n}\n",
            encoding="utf-8",
        )
        log = (tmp_path / "caddy.log").open("wb")
        started.append(
            subprocess.Popen(
                ["caddy", "run", "--config", str(config), "--adapter", "caddyfile"],
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=tmp_path,
            )
        )
        return f"http://127.0.0.1:{port}"

    yield start
    for process in started:
        process.kill()
        process.wait(10)


async def _through_caddy(url: str) -> bool:
    import httpx

    try:
        async with httpx.AsyncClient(timeout=5) as http:
            return (await http.get(url + "/readyz")).status_code == 200
    except httpx.HTTPError:
        return False


async def two_instances_behind_caddy(
    start_serve: Callable[..., Any],
    caddy: Callable[[list[Instance]], str],
    emulator_url: str,
    **env: str,
) -> tuple[list[Instance], str]:
    """Two ready instances, Caddy in front, the emulator's webhook pointing at Caddy."""
    instances = list(await asyncio.gather(start_serve(**env), start_serve(**env)))
    front = caddy(instances)
    await eventually("Caddy answers", lambda: _through_caddy(front))
    await set_webhook_raw(emulator_url, front + "/telegram/webhook", WEBHOOK_SECRET)
    return instances, front


def handled(processes: Processes, instance: Instance) -> int:
    """How many updates an instance logged as handled."""
    return processes.log(instance.name).count('"update handled"')


async def test_200_citizens_split_over_two_instances_each_tip_confirmed_once(
    start_serve: Callable[..., Any],
    caddy: Callable[[list[Instance]], str],
    processes: Processes,
    client: EmulatorClient,
    tipline: TipLine,
    emulator_url: str,
) -> None:
    instances, _ = await two_instances_behind_caddy(start_serve, caddy, emulator_url)
    await tipline.police()
    short_ids = await tipline.send_tips(CITIZENS)
    assert len(set(short_ids)) == CITIZENS
    async with tipline.db.session() as session:
        tips = (await session.exec(select(Tip.short_id))).all()
    assert sorted(tips) == sorted(short_ids)  # each confirmed exactly once
    # One card per tip queued for the commune inbox (a group takes Telegram's 20 messages a
    # minute, so 200 cards need ten minutes to arrive: their rows are what the test checks).
    cards = await tipline.card_states()
    assert sorted(cards) == sorted(short_ids)
    assert len(await tipline.card_rows()) == CITIZENS
    counts = [handled(processes, instance) for instance in instances]
    assert min(counts) > CITIZENS, counts  # both instances took a real share
    for instance in instances:
        log = processes.log(instance.name)
        assert '"level": "error"' not in log, processes.tail(instance.name)


async def test_one_citizens_updates_split_across_instances_lose_no_step(
    start_serve: Callable[..., Any],
    caddy: Callable[[list[Instance]], str],
    processes: Processes,
    client: EmulatorClient,
    tipline: TipLine,
    emulator_url: str,
) -> None:
    instances, _ = await two_instances_behind_caddy(start_serve, caddy, emulator_url)
    await tipline.police()
    user = User(7_300_001, "Người dân")
    chat = user.id
    await client.send_text(user, "/start")
    for label in ("Gửi tin báo", "Ma túy", "Không"):
        message = await tipline.reply(chat, _has_button(label))
        await client.press(user, chat, message["message_id"], _button_data(message, label))
    await tipline.reply(chat, _any)
    await client.send_text(user, "kha cuu")
    menu = await tipline.reply(chat, _has_button(KHA_CUU_LABEL))
    await client.press(user, chat, menu["message_id"], _button_data(menu, KHA_CUU_LABEL))
    await tipline.reply(chat, _any)
    before = [handled(processes, instance) for instance in instances]
    # Back to back: the emulator sends the next as soon as the previous got its 200, and Caddy
    # alternates, so the two instances apply this citizen's steps at the same time.
    parts = [f"phần {number} của tin báo" for number in range(1, 21)]
    await client.send_texts([(user, part) for part in parts])

    async def all_handled() -> bool:
        now = [handled(processes, instance) for instance in instances]
        return sum(now) - sum(before) >= len(parts)

    await eventually("every part was handled", all_handled)
    after = [handled(processes, instance) for instance in instances]
    assert all(a > b for a, b in zip(after, before, strict=True)), (before, after)
    done = await tipline.reply(chat, _has_button("Xong"))
    await client.press(user, chat, done["message_id"], _button_data(done, "Xong"))
    review = await tipline.reply(chat, _has_button("📨"))
    await client.press(user, chat, review["message_id"], _button_data(review, "📨"))
    await tipline.reply(chat, lambda message: bool(RECEIPT_CODE.search(_text(message))))
    async with tipline.db.session() as session:
        tip = (await session.exec(select(Tip))).one()
    missing = [part for part in parts if part not in tip.text]
    assert not missing, missing


def _button_data(message: dict[str, Any], label: str) -> str:
    """The callback data of a message's button."""
    return _button(message, label)


async def test_killed_leader_is_replaced_within_15_s_and_the_broadcast_finishes(
    start_serve: Callable[..., Any],
    caddy: Callable[[list[Instance]], str],
    processes: Processes,
    client: EmulatorClient,
    tipline: TipLine,
    emulator_url: str,
) -> None:
    subscribers = 1500
    # Fast enough to finish in seconds, slow enough to be killed in the middle.
    instances, _ = await two_instances_behind_caddy(
        start_serve, caddy, emulator_url, TINBAO_BROADCAST_RATE="150"
    )
    made = await add_subscribers(tipline.db, Keyring(SECRET), [NewSubscriber()] * subscribers)
    # The subscribers' chats exist at the emulator; their /start updates are not for the bot.
    await set_webhook_raw(emulator_url, "http://127.0.0.1:1/unused", None)
    await open_chats(client, [user for _, user in made])
    leader_port = await _leader_port(instances)
    assert leader_port is not None
    leader = next(instance for instance in instances if instance.port == leader_port)
    other = next(instance for instance in instances if instance is not leader)
    async with tipline.db.session() as session:
        broadcast = await svc.create_broadcast(
            session, spec=spec(urgent=True), staff_id=None, now=utcnow(), tz=TZ
        )
    assert broadcast.id is not None

    async def halfway() -> bool:
        return (await client.counters())["sent_total"] >= subscribers // 3

    await eventually("the leader is sending", halfway, timeout=90, alive=leader.alive())
    processes.kill(leader.name)
    killed_at = time.monotonic()
    at_kill = (await client.counters())["sent_total"]
    assert at_kill < subscribers, "finished before the kill"

    async def other_leads() -> bool:
        body = (await other.get("/readyz")).json()
        return bool(body["checks"]["leader"].get("outreach"))

    await eventually("the other instance leads", other_leads, timeout=30, alive=other.alive())
    took_over = time.monotonic() - killed_at
    assert took_over < 15, took_over

    async def everyone() -> bool:
        per_chat = (await client.counters())["sent_by_chat"]
        return all(per_chat.get(str(user), 0) >= 1 for _, user in made)

    await eventually("everyone got the broadcast", everyone, timeout=120, alive=other.alive())
    per_chat = (await client.counters())["sent_by_chat"]
    repeats = sum(per_chat.get(str(user), 0) - 1 for _, user in made)
    assert repeats <= 16, repeats  # the broadcast sender's slots
    async with tipline.db.session() as session:
        reach = await svc.reach(session, broadcast.id)
    assert (reach.planned, reach.sent, reach.pending) == (subscribers, subscribers, 0)


async def _leader_port(instances: list[Instance]) -> int | None:
    """The port of the instance leading outreach, once one does."""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        for instance in instances:
            body = (await instance.get("/readyz")).json()
            if body["checks"]["leader"].get("outreach"):
                return instance.port
        await asyncio.sleep(0.2)
    return None


async def test_readyz_follows_the_database_away_and_back(
    start_serve: Callable[..., Any], processes: Processes, database_url: str
) -> None:
    url = make_url(database_url)
    proxy = CuttableProxy(url.host or "127.0.0.1", url.port or 5432)
    proxy.start()
    try:
        through = url.set(host="127.0.0.1", port=proxy.port).render_as_string(hide_password=False)
        serve: Instance = await start_serve(TINBAO_DATABASE_URL=through)
        proxy.cut()

        async def not_ready() -> bool:
            answer = await serve.get("/readyz")
            return answer.status_code == 503 and any(
                "database" in reason for reason in answer.json()["reasons"]
            )

        await eventually("/readyz is 503", not_ready, timeout=20, alive=serve.alive())
        assert (await serve.get("/healthz")).status_code == 200  # the process itself is fine
        proxy.restore()
        await eventually("/readyz is 200 again", serve.ready, timeout=30, alive=serve.alive())
    finally:
        processes.kill_all()  # before the proxy goes, so no connection is left mid-pipe
        proxy.stop()
