"""A Zalo tip in the Telegram inbox; the officer asks on Zalo; the answer lands in the inbox."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from sqlmodel import select

from sandbox.client import EmulatorClient
from sandbox.zalo_client import ZaloCitizen
from sandbox.zalo_oa import ZaloOaEmulator
from storage.models import InboxPost
from tests.anonymity import scan_database
from tests.faults.tipline import TipLine, eventually
from tests.zalo.test_zalo_bot import send_tip_by_numbers

pytestmark = pytest.mark.faults  # real processes

ANSWER_WORDS = re.compile(r"TL (\d+)")


def _text(message: dict[str, Any]) -> str:
    return str(message.get("text") or message.get("caption") or "")


async def test_zalo_tip_reaches_the_telegram_inbox_and_the_thread_goes_both_ways(
    start_zalo_serve: Callable[..., Any],
    zalo_citizen: Callable[..., ZaloCitizen],
    tipline: TipLine,
    client: EmulatorClient,
    database_url: str,
) -> None:
    await start_zalo_serve(telegram=True)
    inboxes = await tipline.police()
    tipster = zalo_citizen("bimat", "Trần Thị Bímật")
    _code, short = await send_tip_by_numbers(tipster, "Có đối tượng lạ lảng vảng quanh trường.")

    card = await tipline.reply(inboxes.commune_chat, lambda m: short in _text(m))
    assert "lảng vảng" in _text(card)

    # The emulator shows the card a moment before the sender records its post; an officer's
    # reply in that moment would find no tip (people are slower than tests).
    await eventually("the card's post is recorded", lambda: _post_recorded(tipline, card))
    await client.send_text(
        inboxes.officer,
        "Cảm ơn, bạn thấy mấy người?",
        chat_id=inboxes.commune_chat,
        reply_to=card["message_id"],
    )
    question = await tipster.wait_for("mấy người")
    words = ANSWER_WORDS.search(question[-1]["text"])
    assert words, question[-1]["text"]  # Zalo has no buttons: the words that answer are shown
    await tipster.say(words.group(0), lambda text: bool(text.strip()))
    await tipster.say("Hai người, mặc áo khoác đen.", lambda text: bool(text.strip()))
    answer = await tipline.reply(inboxes.commune_chat, lambda m: "Hai người" in _text(m))
    assert answer.get("reply_to") == card["message_id"]
    # Someone else typing the same words is refused: the route is not theirs.
    stranger = zalo_citizen("stranger")
    refused = await stranger.say(words.group(0), lambda text: bool(text.strip()))
    assert "không còn" in refused[-1]["text"].lower()

    # Nothing stored names the Zalo tipster: neither the per-OA id nor the display name.
    needles = [tipster.chat_id, "Trần Thị Bímật", stranger.chat_id]
    scan = await scan_database(database_url, needles, str(inboxes.officer.id))
    assert scan.scanned_cells > 1000 and "staff" in scan.control_seen_in
    assert not scan.found, scan.found


async def test_a_reply_past_zalo_oas_7_day_window_waits_for_the_citizen(
    start_oa_serve: Callable[..., Any],
    oa_citizen: Callable[..., ZaloCitizen],
    oa_http: httpx.AsyncClient,
    zalo_oa: ZaloOaEmulator,
    tipline: TipLine,
    client: EmulatorClient,
) -> None:
    await start_oa_serve(telegram=True)
    inboxes = await tipline.police()
    tipster = oa_citizen("im-lang", "Người im lặng")
    _code, short = await send_tip_by_numbers(tipster, "Có người cho vay nặng lãi ở xóm 3.")
    card = await tipline.reply(inboxes.commune_chat, lambda m: short in _text(m))
    await eventually("the card's post is recorded", lambda: _post_recorded(tipline, card))

    # The tipster says nothing for 8 days; then the officer asks something.
    assert (await oa_http.post("/control/age", json={"chat_id": tipster.chat_id})).json()["ok"]
    await client.send_text(
        inboxes.officer,
        "Bạn có biết tên người cho vay không?",
        chat_id=inboxes.commune_chat,
        reply_to=card["message_id"],
    )
    notice = await tipline.reply(inboxes.commune_chat, lambda m: "⏳" in _text(m))
    assert short in _text(notice) and "7 ngày" in _text(notice)
    assert notice.get("reply_to") == card["message_id"]
    await asyncio.sleep(3)  # no retry storm: Zalo was asked once, the row waits
    assert zalo_oa.counters.get("window_refused") == 1

    # The tipster writes again: the reply that waited is delivered.
    await tipster.send(text="Xin chào")
    await tipster.wait_for("tên người cho vay")
    assert zalo_oa.counters.get("window_refused") == 1
    # Nothing stored names the OA tipster either.
    scan = await scan_database(
        tipline_url(tipline), [tipster.chat_id, "Người im lặng"], str(inboxes.officer.id)
    )
    assert "staff" in scan.control_seen_in and not scan.found, scan.found


def tipline_url(tipline: TipLine) -> str:
    """The database the tip line's processes use."""
    return tipline.db.url


async def _post_recorded(tipline: TipLine, card: dict[str, Any]) -> bool:
    async with tipline.db.session() as session:
        found = await session.exec(
            select(InboxPost).where(InboxPost.message_id == card["message_id"])
        )
        return found.first() is not None
