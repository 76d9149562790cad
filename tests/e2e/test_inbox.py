"""The police inbox through the real bot: routing, every card button, replies, fallbacks."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import pytest
from sqlmodel import select

from bot.services import retention
from sandbox.client import EmulatorClient
from storage.db import Database
from storage.models import Inbox, Tip, TipAttachment, TipStatus
from tests.conftest import FakeClock
from tests.e2e.flows import send_tip
from tests.e2e.harness import BotUnderTest, Citizen, buttons_of, text_of
from tests.e2e.police import StaffMember, card_for, enroll, link_group
from tests.factories_media import make_test_jpeg_with_gps

KHA_CUU = 8635
XUAN_LUNG = 8497
PHU_THO = 25


@dataclass
class Police:
    """The police of Phú Thọ in these tests."""

    officer: StaffMember  # commune police of Xã Khả Cửu, with the commune inbox
    supervisor: StaffMember  # province supervisor, with the province inbox
    commune_inbox: Citizen
    province_inbox: Citizen


@pytest.fixture
async def police(client: EmulatorClient, bot: BotUnderTest, database_url: str) -> Police:
    """An officer and a supervisor, each with a linked inbox group."""
    officer = await enroll(
        client, bot, database_url, role="officer", name="Hoàng Minh Khôi", commune=KHA_CUU
    )
    supervisor = await enroll(
        client, bot, database_url, role="supervisor", name="Vũ Thanh Bình", province=PHU_THO
    )
    commune_inbox = await link_group(officer, "Công an xã Khả Cửu")
    province_inbox = await link_group(supervisor, "Công an tỉnh Phú Thọ")
    return Police(officer, supervisor, commune_inbox, province_inbox)


async def tip_row(database_url: str, short_id: str) -> Tip:
    """A tip as stored."""
    db = Database(database_url)
    async with db.session() as session:
        tip = (await session.exec(select(Tip).where(Tip.short_id == short_id))).one()
    await db.dispose()
    return tip


async def test_tip_reaches_the_commune_inbox_as_a_card(
    police: Police, citizen: Citizen, database_url: str
) -> None:
    await citizen.say("/start")
    code, short_id = await send_tip(citizen, happening_now=True)
    card = card_for(await police.commune_inbox.messages(), short_id)
    assert "Ma túy" in card["text"] and "Xã Khả Cửu" in card["text"] and "XẢY RA" in card["text"]
    assert "Có người bán ma túy" in card["text"]
    assert code not in card["text"], "the receipt code never reaches the police"
    assert citizen.user.first_name not in card["text"]
    labels = buttons_of(card)
    for label in (
        "Nhận xử lý",
        "Có giá trị",
        "Không có giá trị",
        "Đang xác minh",
        "Đóng",
        "Chuyển xã khác",
        "Báo cáo lên tỉnh",
    ):
        assert any(label in b for b in labels), (label, labels)
    assert not [
        m for m in await police.province_inbox.messages() if short_id in (m.get("text") or "")
    ]
    tip = await tip_row(database_url, short_id)
    assert tip.route_level == "commune"


async def test_files_arrive_as_copies_threaded_under_the_card(
    police: Police, citizen: Citizen
) -> None:
    from tests.e2e.flows import begin_tip, pick_by_name

    await begin_tip(citizen)
    await pick_by_name(citizen, "kha cuu", "Xã Khả Cửu (Phú Thọ)")
    await citizen.send(
        citizen.client.send_album(
            citizen.user, [("photo", make_test_jpeg_with_gps(), {}) for _ in range(3)]
        )
    )
    await citizen.send(citizen.client.send_location(citizen.user, 21.2, 105.3))
    await citizen.press("Xong")
    await citizen.press("📨")
    messages = await police.commune_inbox.messages()
    card = next(m for m in messages if "Lĩnh vực" in (m.get("text") or ""))
    copies = [m for m in messages if m["message"].get("photo")]
    assert len(copies) == 3
    assert all(m["reply_to"] == card["message_id"] for m in copies)
    assert not any("forward_origin" in m["message"] for m in messages), "copies, never forwards"
    assert any(m["message"].get("location") for m in messages)


async def test_every_card_button(police: Police, citizen: Citizen, database_url: str) -> None:
    _, short_id = await send_tip(citizen)
    inbox = police.commune_inbox
    await inbox.press("Nhận xử lý")
    card = card_for(await inbox.messages(), short_id)
    assert "Đang xử lý" in card["text"] and "Hoàng Minh Khôi" in card["text"]
    told = await citizen.messages()
    assert "đang được xử lý" in told[-1]["text"].lower() or "tiếp nhận" in told[-1]["text"].lower()
    await inbox.press("⭐ Có giá trị")
    assert "Có giá trị" in card_for(await inbox.messages(), short_id)["text"]
    await inbox.press("Không có giá trị")
    await inbox.press("Đang xác minh")
    tip = await tip_row(database_url, short_id)
    assert (tip.status, tip.valuable) == (TipStatus.VERIFYING, False)
    await inbox.press("✅ Đóng")
    reasons = buttons_of(card_for(await inbox.messages(), short_id))
    assert any("Đã xử lý" in r for r in reasons)
    await inbox.press("Đã xử lý")
    card = card_for(await inbox.messages(), short_id)
    assert "Đã đóng" in card["text"] and not buttons_of(card)
    assert "kết thúc" in (await citizen.messages())[-1]["text"]
    tip = await tip_row(database_url, short_id)
    assert tip.status == TipStatus.CLOSED and tip.close_reason == "done"


async def test_reply_round_trip_both_ways(police: Police, citizen: Citizen) -> None:
    code, short_id = await send_tip(citizen)
    inbox = police.commune_inbox
    card = card_for(await inbox.messages(), short_id)
    confirm = await inbox.say(
        "Bạn có thể cho biết giờ nào nhóm này thường tụ tập?", reply_to=card["message_id"]
    )
    assert "ẩn danh" in text_of(confirm).lower()
    asked = (await citizen.messages())[-1]
    assert "Công an trả lời" in asked["text"] and "giờ nào" in asked["text"]
    assert police.officer.user.first_name not in asked["text"], "officers stay unnamed to tipsters"
    await citizen.press("Trả lời", message=asked)
    await citizen.say("Khoảng 22 giờ, gần cổng chợ.")
    await citizen.press("Xong")
    answer = [m for m in await inbox.messages() if "22 giờ" in (m.get("text") or "")]
    assert answer and answer[0]["reply_to"] == card["message_id"]
    assert citizen.user.first_name not in answer[0]["text"]
    status = text_of(await citizen.say(f"/status {code}"))
    assert "giờ nào" in status and "22 giờ" in status


async def test_reroute_to_another_commune(
    police: Police, citizen: Citizen, client: EmulatorClient, bot: BotUnderTest, database_url: str
) -> None:
    other = await enroll(
        client, bot, database_url, role="officer", name="Lê Văn Nam", commune=XUAN_LUNG
    )
    other_inbox = await link_group(other, "Công an xã Xuân Lũng")
    _, short_id = await send_tip(citizen)
    inbox = police.commune_inbox
    await inbox.press("Chuyển xã khác")
    prompt = (await inbox.messages())[-1]
    assert "trả lời" in prompt["text"].lower()
    await inbox.say("xuan lung", reply_to=prompt["message_id"])
    await inbox.press("Xã Xuân Lũng")
    moved = card_for(await other_inbox.messages(), short_id)
    assert "Xã Xuân Lũng" in moved["text"] and buttons_of(moved)
    old = card_for(await inbox.messages(), short_id)
    assert not buttons_of(old) and "Xuân Lũng" in old["text"]
    assert (await tip_row(database_url, short_id)).commune_code == XUAN_LUNG


async def test_escalation_to_the_province(
    police: Police, citizen: Citizen, database_url: str
) -> None:
    _, short_id = await send_tip(citizen)
    await police.commune_inbox.press("Báo cáo lên tỉnh")
    card = card_for(await police.province_inbox.messages(), short_id)
    assert buttons_of(card)
    tip = await tip_row(database_url, short_id)
    assert tip.route_level == "province" and tip.escalated_at is not None
    await police.province_inbox.press("Nhận xử lý")  # the supervisor may act on it
    assert (await tip_row(database_url, short_id)).status == TipStatus.ACKNOWLEDGED


async def test_no_commune_inbox_falls_back_to_the_province(
    police: Police, new_citizen: Callable[..., Citizen], database_url: str
) -> None:
    citizen = new_citizen()
    _, short_id = await send_tip(citizen, "xuan lung", "Xã Xuân Lũng (Phú Thọ)")
    card_for(await police.province_inbox.messages(), short_id)
    tip = await tip_row(database_url, short_id)
    assert tip.route_level == "province"


async def test_bot_removed_from_inbox_reroutes_and_alerts(
    police: Police, citizen: Citizen, client: EmulatorClient, database_url: str
) -> None:
    await client.remove_bot_from_group(police.officer.user, police.commune_inbox.chat_id)
    await citizen.settle()
    _, short_id = await send_tip(citizen)
    card_for(await police.province_inbox.messages(), short_id)
    alerts = [
        m
        for m in await police.supervisor.private.messages()
        if "Công an xã Khả Cửu" in (m.get("text") or "")
    ]
    assert alerts and short_id in alerts[-1]["text"]
    db = Database(database_url)
    async with db.session() as session:
        statuses = {i.title: i.status for i in (await session.exec(select(Inbox))).all()}
    await db.dispose()
    assert statuses["Công an xã Khả Cửu"] == "broken"
    assert (await tip_row(database_url, short_id)).route_level == "province"


async def test_missed_deadline_escalates(
    police: Police, citizen: Citizen, clock: FakeClock, bot: BotUnderTest, database_url: str
) -> None:
    _, short_id = await send_tip(citizen, happening_now=True)  # urgent: 15 minutes to acknowledge
    assert bot.services is not None
    clock.advance(minutes=14)
    assert await bot.services.inbox.check_deadlines() == 0
    clock.advance(minutes=2)
    assert await bot.services.inbox.check_deadlines() == 1
    assert await bot.services.inbox.check_deadlines() == 0, "escalated once"
    await citizen.settle()
    card_for(await police.province_inbox.messages(), short_id)
    reminder = [
        m
        for m in await police.commune_inbox.messages()
        if "quá hạn" in (m.get("text") or "").lower()
    ]
    assert reminder


async def test_retention_purge_removes_content_and_keeps_figures(
    police: Police, citizen: Citizen, clock: FakeClock, database_url: str
) -> None:
    from tests.e2e.flows import begin_tip, pick_by_name

    await begin_tip(citizen)
    await pick_by_name(citizen, "kha cuu", "Xã Khả Cửu (Phú Thọ)")
    await citizen.send(citizen.client.send_photo(citizen.user, make_test_jpeg_with_gps()))
    await citizen.press("Xong")
    await citizen.press("📨")
    _, open_short = await send_tip(citizen)
    inbox = police.commune_inbox
    first_card = next(m for m in await inbox.messages() if "Lĩnh vực" in (m.get("text") or ""))
    await inbox.press("✅ Đóng", message=first_card)
    await inbox.press("Trùng lặp")
    clock.advance(days=91)
    db = Database(database_url)
    async with db.session() as session:
        dry = await retention.purge(session, now=clock.now, days=90, dry_run=True)
        assert (dry.tips, dry.routes, dry.attachments) == (1, 1, 1)
        assert dry.outbox > 0 and dry.inbox_posts > 0
        done = await retention.purge(session, now=clock.now, days=90, dry_run=False)
        assert done == dry
    async with db.session() as session:
        tips = {t.short_id: t for t in (await session.exec(select(Tip))).all()}
        files = (await session.exec(select(TipAttachment))).all()
    await db.dispose()
    closed = next(t for t in tips.values() if t.status == TipStatus.CLOSED)
    assert (
        closed.reply_route is None and closed.category == "drugs" and closed.commune_code == KHA_CUU
    )
    assert closed.text == "" and closed.location_lat is None
    assert all(
        f.content is None and f.filename is None and f.size > 0
        for f in files
        if f.tip_id == closed.id
    )
    assert tips[open_short].reply_route is not None and tips[open_short].text
    # A reply to the old card is told plainly that the tipster cannot be reached any more.
    answer = await inbox.say("Anh còn thông tin gì thêm không?", reply_to=first_card["message_id"])
    assert "Không thể liên lạc với người báo tin nữa" in text_of(answer)


async def test_tips_waiting_for_an_inbox_are_delivered_when_one_is_linked(
    client: EmulatorClient,
    bot: BotUnderTest,
    database_url: str,
    new_citizen: Callable[..., Citizen],
) -> None:
    # Review: tips confirmed while their commune had no inbox waited for a deadline job.
    _, waiting = await send_tip(new_citizen())
    db = Database(database_url)
    async with db.session() as session:
        tip = (await session.exec(select(Tip).where(Tip.short_id == waiting))).one()
    assert tip.inbox_id is None, "no inbox anywhere yet"
    officer = await enroll(
        client, bot, database_url, role="officer", name="Hoàng Minh Khôi", commune=KHA_CUU
    )
    inbox = await link_group(officer, "Công an xã Khả Cửu")
    assert "đã được chuyển tới đây" in text_of(await inbox.messages())
    card_for(await inbox.messages(), waiting)  # the card is there at once, no clock moved
    async with db.session() as session:
        tip = (await session.exec(select(Tip).where(Tip.short_id == waiting))).one()
        linked = (await session.exec(select(Inbox))).one()
    await db.dispose()
    assert tip.inbox_id == linked.id and tip.route_level == "commune"
