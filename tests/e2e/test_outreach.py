"""Legal outreach through the real bot: topics, subscriptions, pledges, composing broadcasts."""

from __future__ import annotations

from collections.abc import Callable

from sqlmodel import select

from bot.services import pledges
from bot.services.anonymity import RoutePurpose
from sandbox.client import EmulatorClient
from storage.db import Database
from storage.models import (
    AuditEvent,
    Broadcast,
    ConversationDraft,
    PledgeSignature,
    Subscriber,
    SubscriptionTopic,
)
from tests.e2e.flows import pick_by_name
from tests.e2e.harness import BotUnderTest, Citizen, buttons_of, text_of
from tests.e2e.police import enroll

KHA_CUU = 8635
PHU_THO = 25


async def test_browse_and_read_topics(citizen: Citizen) -> None:
    await citizen.say("/start")
    listing = await citizen.press("Tìm hiểu pháp luật")
    first_page = buttons_of(listing[-1])
    assert len([b for b in first_page if "Trang" not in b and "Menu" not in b]) == 8
    second = await citizen.press("Trang sau")
    assert buttons_of(second[-1]) != first_page
    topic = await citizen.press("ma túy")
    shown = topic[-1]
    assert "ma túy" in shown["text"].lower() and len(shown["text"]) <= 4096
    share = [b for row in shown["reply_markup"]["inline_keyboard"] for b in row if b.get("url")]
    assert share and "start%3Dt_" in share[0]["url"]
    again = await citizen.say("/start t_lua_dao_qua_mang")
    assert "lừa đảo" in text_of(again).lower()


async def test_subscribe_change_and_unsubscribe(citizen: Citizen, database_url: str) -> None:
    await citizen.say("/subscribe")
    await pick_by_name(citizen, "kha cuu", "Xã Khả Cửu (Phú Thọ)")
    await citizen.press("ma túy", message=(await citizen.messages())[-1])
    await citizen.press("lừa đảo", message=(await citizen.messages())[-1])
    done = await citizen.press("Xong")
    assert "Xã Khả Cửu" in text_of(done)
    db = Database(database_url)
    async with db.session() as session:
        subscriber = (await session.exec(select(Subscriber))).one()
        topics = (await session.exec(select(SubscriptionTopic.topic_id))).all()
        draft = (await session.exec(select(ConversationDraft))).one()
    assert subscriber.active and subscriber.commune_code == KHA_CUU and len(topics) == 2
    # Sealed afresh under the subscribers' own subkey: nothing to join the draft (or a tip) on.
    assert bytes(subscriber.route) != bytes(draft.route)
    assert bytes(subscriber.route)[0] == 3 and bytes(subscriber.route)[5] == RoutePurpose.SUBSCRIBER
    assert bytes(draft.route)[5] == RoutePurpose.DRAFT
    status = await citizen.say("/subscribe")
    assert "Xã Khả Cửu" in text_of(status)
    await citizen.press("Hủy đăng ký")
    async with db.session() as session:
        subscriber = (await session.exec(select(Subscriber))).one()
    await db.dispose()
    assert not subscriber.active and subscriber.route == b""


async def test_sign_a_pledge_once(citizen: Citizen, database_url: str, bot: BotUnderTest) -> None:
    db = Database(database_url)
    async with db.session() as session:
        campaign = await pledges.open_campaign(
            session,
            pledge_id="khong_ma_tuy",
            commune_code=None,
            province_code=25,
            staff_id=None,
            now=bot.clock.now,
        )
    await citizen.say("/start")
    listing = await citizen.press("Ký cam kết")
    assert buttons_of(listing[-1])
    await citizen.press("ma túy", message=listing[-1])
    await citizen.press("Tôi cam kết")
    await pick_by_name(citizen, "kha cuu", "Xã Khả Cửu (Phú Thọ)")
    signed = await citizen.say("Hộ ông Hà Văn Sơn")
    assert "P-" in text_of(signed)
    await citizen.say("/pledge")
    await citizen.press("ma túy")
    await citizen.press("Tôi cam kết")
    await pick_by_name(citizen, "kha cuu", "Xã Khả Cửu (Phú Thọ)")
    again = await citizen.press("Bỏ qua")
    assert "đã ký" in text_of(again).lower()
    async with db.session() as session:
        signatures = (await session.exec(select(PledgeSignature))).all()
        counted = await pledges.counts(session, province_code=25)
    await db.dispose()
    assert len(signatures) == 1 and signatures[0].household == "Hộ ông Hà Văn Sơn"
    assert [(c.pledge_id, c.commune_code, c.signatures) for c in counted] == [
        ("khong_ma_tuy", KHA_CUU, 1)
    ]
    assert campaign.id == signatures[0].campaign_id


async def test_compose_recurring_and_one_off_broadcasts(
    client: EmulatorClient,
    bot: BotUnderTest,
    database_url: str,
    new_citizen: Callable[..., Citizen],
) -> None:
    staff = await enroll(client, bot, database_url, role="outreach", name="Cán bộ tuyên truyền")
    chat = staff.private
    await chat.say("/broadcast")
    await chat.press("Chủ đề có sẵn")
    await chat.press("Trang sau")
    await chat.press("ma túy")
    await chat.press("Theo xã")
    await chat.say("kha cuu")
    await chat.press("Xã Khả Cửu")
    await chat.press("Hằng ngày")
    preview = await chat.say("08:00")
    assert "ma túy" in preview[0]["text"].lower(), "the preview is the broadcast itself"
    assert "Xã Khả Cửu" in preview[-1]["text"]
    scheduled = await chat.press("Xác nhận")
    assert "#" in text_of(scheduled)

    await chat.say("/broadcast")
    await chat.press("Tin nhắn mới")
    await chat.say("<b>Họp dân</b> tối thứ Bảy tại nhà văn hóa khu 3.")
    await chat.press("Tất cả")
    await chat.press("Hẹn giờ")
    await chat.say("25/11/2026 22:30")  # in quiet hours
    refused = await chat.press("Xác nhận")
    assert "21:00" in text_of(refused), "quiet hours hold for non-urgent broadcasts"
    await chat.press("Hẹn giờ")
    await chat.say("25/11/2026 08:30")
    assert "#" in text_of(await chat.press("Xác nhận"))

    db = Database(database_url)
    async with db.session() as session:
        rows = (await session.exec(select(Broadcast))).all()
    await db.dispose()
    assert [(b.topic_id, b.audience, b.audience_code, b.trigger) for b in rows] == [
        ("ma_tuy", "commune", KHA_CUU, "cron"),
        (None, "all", None, "once"),
    ]
    assert rows[0].cron == "0 8 * * *" and rows[1].text and "Họp dân" in rows[1].text
    listing = await chat.say("/broadcasts")
    assert "#" in text_of(listing) and buttons_of(listing[-1])
    await chat.press("⏸")
    await chat.press("▶️")
    await chat.press("🗑")
    db = Database(database_url)
    async with db.session() as session:
        states = [b.status for b in (await session.exec(select(Broadcast))).all()]
    await db.dispose()
    assert "cancelled" in states

    outsider = new_citizen()
    refused_citizen = await outsider.say("/broadcast")
    assert "tuyên truyền" in text_of(refused_citizen).lower()


async def test_province_outreach_staff_are_offered_their_area_only(
    client: EmulatorClient, bot: BotUnderTest, database_url: str
) -> None:
    staff = await enroll(
        client, bot, database_url, role="outreach", name="Tuyên truyền tỉnh", province=PHU_THO
    )
    chat = staff.private
    await chat.say("/broadcast")
    await chat.press("Tin nhắn mới")
    audiences = buttons_of((await chat.say("Họp dân tối thứ Bảy."))[-1])
    assert not [b for b in audiences if "Tất cả" in b or "chủ đề" in b.lower()], audiences
    await chat.press("Theo xã")
    await chat.say("kha cuu")
    await chat.press("Xã Khả Cửu")
    await chat.press("Hẹn giờ")
    preview = await chat.say("25/11/2026 08:30")
    assert not [b for b in buttons_of(preview[-1]) if "khẩn" in b.lower()], "urgent: supervisors"
    assert "#" in text_of(await chat.press("Xác nhận"))
    db = Database(database_url)
    async with db.session() as session:
        events = (await session.exec(select(AuditEvent.action, AuditEvent.allowed))).all()
    await db.dispose()
    assert ("broadcast", True) in list(events)


async def test_typing_a_menu_label_in_a_list_goes_back_to_the_menu(
    new_citizen: Callable[..., Citizen],
) -> None:
    """Found by tests/fuzz: a typed choice that is the generic Menu entry reached the flow."""
    citizen = new_citizen()
    await citizen.say("/pledge")
    back = await citizen.say("Menu")
    assert any("Gửi tin báo" in label for m in back for label in buttons_of(m)), back
    await citizen.say("/topics")
    again = await citizen.say("↩️ Menu")
    assert any("Gửi tin báo" in label for m in again for label in buttons_of(m)), again
