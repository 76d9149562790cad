"""The citizen side on the Zalo Bot Platform, through the real `tinbao serve` and the emulator."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from sqlmodel import select

from sandbox.zalo_bot import ZaloBotEmulator
from sandbox.zalo_client import ZaloCitizen
from storage.db import Database
from storage.models import Tip
from tests.factories_media import make_test_jpeg_with_gps
from tests.faults.tipline import Processes, eventually
from tests.serve.conftest import Instance
from tests.zalo.conftest import ZALO_BOT_SECRET

pytestmark = pytest.mark.faults  # real processes

RECEIPT_CODE = re.compile(r"\b[0-9A-Z]{4}-[0-9A-Z]{4}-[0-9A-Z]{4}\b")
SHORT_ID = re.compile(r"\bT-[0-9A-Z]{6}\b")
KHA_CUU = "Xã Khả Cửu (Phú Thọ)"


async def send_tip_by_numbers(citizen: ZaloCitizen, details: str) -> tuple[str, str]:
    """A whole tip with every choice typed as its number; returns (receipt code, short id)."""
    await citizen.say("/start", "Gửi tin báo")
    await citizen.choose("Gửi tin báo", "Ma túy")
    await citizen.choose("Ma túy", "Không")
    await citizen.choose("Không")
    await citizen.say("kha cuu", "Khả Cửu")
    await citizen.choose(KHA_CUU)
    await citizen.say(details, "Xong")
    await citizen.choose("Xong", "📨")
    answer = await citizen.choose("📨", lambda text: bool(RECEIPT_CODE.search(text)))
    text = answer[-1]["text"]
    code, short = RECEIPT_CODE.search(text), SHORT_ID.search(text)
    assert code and short, text
    return code.group(0), short.group(0)


async def tips(database_url: str) -> list[Tip]:
    """Every tip stored."""
    db = Database(database_url)
    try:
        async with db.session() as session:
            return list((await session.exec(select(Tip))).all())
    finally:
        await db.dispose()


async def test_a_whole_tip_on_zalo_bot_with_no_telegram_at_all(
    start_zalo_serve: Callable[..., Any],
    zalo_citizen: Callable[..., ZaloCitizen],
    database_url: str,
) -> None:
    serve: Instance = await start_zalo_serve()
    assert "zalo_bot" in (await serve.get("/readyz")).json()["checks"]
    citizen = zalo_citizen("an", "Trần Thị An")
    code, short = await send_tip_by_numbers(citizen, "Có người bán ma túy ở đầu ngõ 5.")

    stored = await tips(database_url)
    assert [(t.short_id, t.channel, t.category) for t in stored] == [(short, "zalo_bot", "drugs")]
    # The receipt code works as typed words, without a slash.
    await citizen.say(f"tra cứu {code}", short)


async def test_choices_typed_as_labels_and_unknown_numbers(
    start_zalo_serve: Callable[..., Any], zalo_citizen: Callable[..., ZaloCitizen]
) -> None:
    await start_zalo_serve()
    citizen = zalo_citizen("binh")
    await citizen.say("menu", "Gửi tin báo")
    # A label typed back, without its emoji or diacritics.
    await citizen.say("gui tin bao", "Ma túy")
    await citizen.say("ma tuy", "Không")
    # A number that is not on the list gets an answer, never silence, and the step again.
    await citizen.say("9", "chọn")
    assert "Có, đang xảy ra" in " ".join(m["text"] for m in (await citizen.messages())[-2:])


async def test_bad_input_gets_a_clear_vietnamese_answer(
    start_zalo_serve: Callable[..., Any],
    zalo_citizen: Callable[..., ZaloCitizen],
    zalo_bot: ZaloBotEmulator,
) -> None:
    await start_zalo_serve()
    citizen = zalo_citizen("chi")
    await citizen.send(sticker="abc123")
    sticker = await citizen.wait_for(
        lambda text: "không" in text.lower() or "xin lỗi" in text.lower()
    )
    assert sticker
    await citizen.send(unsupported=True)
    unsupported = await citizen.wait_for(lambda text: "văn bản" in text.lower())
    assert unsupported
    # A 5,000-character text in the details step is taken, and every answer fits 2,000.
    await citizen.say("/start", "Gửi tin báo")
    await citizen.choose("Gửi tin báo", "Ma túy")
    await citizen.choose("Ma túy", "Không")
    await citizen.choose("Không")
    await citizen.say("kha cuu", "Khả Cửu")
    await citizen.choose(KHA_CUU)
    await citizen.say("Rất dài. " * 560, "Xong")
    assert all(len(m.get("text") or "") <= 2000 for m in await citizen.messages())
    # A photo is downloaded and re-encoded, with "typing…" shown meanwhile.
    await citizen.send(image=make_test_jpeg_with_gps())
    await citizen.wait_for("1 tệp")
    assert zalo_bot.bot().counters.get("sendChatAction") == 1


async def test_webhook_secret_is_checked_and_a_repeat_is_taken_once(
    start_zalo_serve: Callable[..., Any],
    zalo_citizen: Callable[..., ZaloCitizen],
    zalo_http: httpx.AsyncClient,
    zalo_bot: ZaloBotEmulator,
) -> None:
    serve: Instance = await start_zalo_serve()
    update = {
        "event_name": "message.text.received",
        "message": {
            "message_id": "f0rg3d",
            "from": {"id": "forger", "display_name": "X"},
            "chat": {"id": "forger", "chat_type": "PRIVATE"},
            "date": 0,
            "text": "/start",
        },
    }
    async with httpx.AsyncClient(timeout=10) as http:
        url = serve.url + "/zalo/bot/webhook"
        for headers in ({}, {"X-Bot-Api-Secret-Token": "wrong-secret-123"}):
            assert (await http.post(url, json=update, headers=headers)).status_code == 403
        good = {"X-Bot-Api-Secret-Token": ZALO_BOT_SECRET}
        assert (await http.post(url, content=b"{not json", headers=good)).status_code == 400
    assert "forger" not in zalo_bot.bot().chats  # nothing was processed

    citizen = zalo_citizen("dung")
    await citizen.say("/start", "Gửi tin báo")
    before = len(await citizen.messages())
    # The platform delivers the same update again (its answer came too late, say).
    assert (await zalo_http.post("/control/redeliver", json={})).json()["ok"]

    async def delivered_twice() -> bool:
        return zalo_bot.bot().webhook is not None and zalo_bot.bot().webhook.delivered >= 2

    await eventually("the repeat is delivered", delivered_twice)
    await eventually(
        "the repeat is counted and dropped",
        lambda: _has_repeat(serve),
    )
    assert len(await citizen.messages()) == before


async def _has_repeat(serve: Instance) -> bool:
    text = (await serve.get("/metrics")).text
    return 'reason="repeat"' in text


async def test_get_updates_polling_without_a_webhook(
    start_zalo_serve: Callable[..., Any],
    zalo_citizen: Callable[..., ZaloCitizen],
    processes: Processes,
) -> None:
    serve: Instance = await start_zalo_serve(webhook=False)
    assert (await serve.get("/readyz")).json()["checks"]["zalo_bot"]["mode"] == "polling"
    citizen = zalo_citizen("em")
    await citizen.say("menu", "Gửi tin báo")
