"""Reusable citizen journeys for the e2e tests."""

from __future__ import annotations

import re

import vietnam_provinces as vp

from tests.e2e.harness import Citizen, text_of

RECEIPT_CODE = re.compile(r"\b[0-9A-Z]{4}-[0-9A-Z]{4}-[0-9A-Z]{4}\b")


def commune_code(name: str, province_fragment: str = "") -> int:
    """The official code of a commune by its full name (and a piece of its province's name)."""
    for ward in vp.Ward.iter_all():
        if ward.name == name:
            province = vp.Province.from_code(ward.province_code)
            if province_fragment in province.name:
                return int(ward.code)
    raise LookupError(name)


async def begin_tip(
    citizen: Citizen, category: str = "Ma túy", *, happening_now: bool = False
) -> list[dict]:
    """Open the menu, start a tip, pick a category and answer the urgency question."""
    await citizen.say("/start")
    await citizen.press("Gửi tin báo")
    await citizen.press(category)
    return await citizen.press("Có, đang xảy ra" if happening_now else "Không")


async def pick_by_name(citizen: Citizen, typed: str, commune_label: str) -> list[dict]:
    """Type a commune name and press the matching result."""
    replies = await citizen.say(typed)
    assert commune_label in text_of(replies) or any(
        commune_label in str(m.get("reply_markup")) for m in replies
    ), text_of(replies)
    return await citizen.press(commune_label)


async def finish_tip(
    citizen: Citizen, details: str = "Có người bán ma túy ở đầu ngõ 5, tối nào cũng có."
) -> str:
    """Send the details, review, confirm; return the receipt code."""
    await citizen.say(details)
    review = await citizen.press("Xong")
    assert "kiểm tra" in text_of(review).lower(), text_of(review)
    receipt = await citizen.press("📨")
    match = RECEIPT_CODE.search(text_of(receipt))
    assert match, text_of(receipt)
    return match.group(0)


SHORT_ID = re.compile(r"\bT-[0-9A-Z]{6}\b")


async def send_tip(
    citizen: Citizen,
    typed: str = "kha cuu",
    label: str = "Xã Khả Cửu (Phú Thọ)",
    *,
    details: str = "Có người bán ma túy ở đầu ngõ 5, tối nào cũng có.",
    happening_now: bool = False,
) -> tuple[str, str]:
    """A whole tip by name search; return (receipt code, short id)."""
    await begin_tip(citizen, happening_now=happening_now)
    await pick_by_name(citizen, typed, label)
    code = await finish_tip(citizen, details)
    transcript = await citizen.client.transcript(citizen.chat_id)
    short = SHORT_ID.search(text_of([m for m in transcript if code in (m.get("text") or "")]))
    assert short, "the receipt names the short id"
    return code, short.group(0)
