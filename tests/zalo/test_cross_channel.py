"""A Zalo tip in the Telegram inbox; the officer asks on Zalo; the answer lands in the inbox."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import pytest
from sqlmodel import select

from sandbox.client import EmulatorClient
from sandbox.zalo_client import ZaloCitizen
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

    async def card_recorded() -> bool:
        # The emulator shows the card a moment before the sender records its post; an
        # officer's reply in that moment would find no tip (people are slower than tests).
        async with tipline.db.session() as session:
            found = await session.exec(
                select(InboxPost).where(InboxPost.message_id == card["message_id"])
            )
            return found.first() is not None

    await eventually("the card's post is recorded", card_recorded)
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
