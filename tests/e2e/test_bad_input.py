"""Everything a messenger can send gets a short polite answer, and nothing is lost."""

from __future__ import annotations

from typing import Any

import pytest
from sqlmodel import select

from sandbox.client import EmulatorClient, User
from storage.db import Database
from storage.models import Tip
from tests.conftest import FakeClock
from tests.e2e.flows import begin_tip, finish_tip, pick_by_name
from tests.e2e.harness import BotUnderTest, Citizen, buttons_of, text_of
from tinbao.settings import Settings

ODD_MESSAGES: dict[str, dict[str, Any]] = {
    "sticker": {
        "sticker": {
            "file_id": "CAACAgIAAxkBAAE",
            "file_unique_id": "AgAD",
            "type": "regular",
            "width": 512,
            "height": 512,
            "is_animated": False,
            "is_video": False,
        }
    },
    "poll": {
        "poll": {
            "id": "1",
            "question": "?",
            "options": [{"text": "a", "voter_count": 0, "persistent_id": "o1"}],
            "total_voter_count": 0,
            "is_closed": False,
            "is_anonymous": True,
            "type": "regular",
            "allows_multiple_answers": False,
            "allows_revoting": False,
            "members_only": False,
        }
    },
    "contact": {"contact": {"phone_number": "+84901234567", "first_name": "A"}},
    "dice": {"dice": {"emoji": "🎲", "value": 3}},
}


@pytest.mark.parametrize("kind", sorted(ODD_MESSAGES))
async def test_odd_messages_where_text_is_expected(citizen: Citizen, kind: str) -> None:
    await begin_tip(citizen)
    replies = await citizen.send(citizen.client.send_raw(citizen.user, ODD_MESSAGES[kind]))
    assert "không dùng được" in text_of(replies).lower() or "không thể" in text_of(replies).lower()
    assert "Chọn theo tỉnh" in str(replies[-1].get("reply_markup")), "the step is shown again"
    await pick_by_name(citizen, "kha cuu", "Xã Khả Cửu (Phú Thọ)")


async def test_huge_text_is_kept_whole(citizen: Citizen, settings: Settings) -> None:
    await begin_tip(citizen)
    await pick_by_name(citizen, "kha cuu", "Xã Khả Cửu (Phú Thọ)")
    huge = "Chi tiết vụ việc. " * 400  # 7,200 characters: more than one Telegram message
    ack = await citizen.say(huge)
    assert "1 tin nhắn" in text_of(ack)
    review = await citizen.press("Xong")
    assert all(len(m["text"]) <= 4096 for m in review)
    await citizen.press("📨")
    db = Database(settings.database_url)
    async with db.session() as session:
        tip = (await session.exec(select(Tip))).one()
    await db.dispose()
    assert tip.text == huge


async def test_edited_message_updates_the_draft(citizen: Citizen) -> None:
    await begin_tip(citizen)
    await pick_by_name(citizen, "kha cuu", "Xã Khả Cửu (Phú Thọ)")
    sent = await citizen.client.send_text(citizen.user, "Xe biển số 29A-123.45")
    await citizen.settle()
    fixed = await citizen.send(
        citizen.client.edit_text(
            citizen.user, citizen.chat_id, sent["message_id"], "Xe biển số 29A-543.21"
        )
    )
    assert "đã lưu" in text_of(fixed).lower()
    review = await citizen.press("Xong")
    assert "29A-543.21" in text_of(review) and "29A-123.45" not in text_of(review)


async def test_stale_and_forged_buttons(citizen: Citizen) -> None:
    menu = await citizen.say("/start")
    await citizen.press("Gửi tin báo", message=menu[-1])
    stale = await citizen.press("Gửi tin báo", message=menu[-1])
    answer = await citizen.client.callback_answer(citizen.last_query_id)
    assert answer and "không còn" in (answer.get("text") or "").lower()
    assert "Ma túy" in buttons_of(stale[-1]), "the current step is shown again"
    forged = await citizen.press_data(stale[-1]["message_id"], "not-ours", forged=True)
    assert "Ma túy" in buttons_of(forged[-1])
    token = (await citizen.find_button("Ma túy"))[1].split(":", 1)[0]
    evil = await citizen.press_data(stale[-1]["message_id"], f"{token}:c:../../admin", forged=True)
    assert "Ma túy" in buttons_of(evil[-1])


async def test_commands_mid_flow(citizen: Citizen) -> None:
    await begin_tip(citizen)
    helped = await citizen.say("/help")
    assert "/status" in text_of(helped) and "Chọn theo tỉnh" in str(helped[-1].get("reply_markup"))
    unknown = await citizen.say("/xyz")
    assert "không nhận ra lệnh" in text_of(unknown).lower()
    resume = await citizen.say("/start")
    assert "Tiếp tục" in str(resume[-1].get("reply_markup"))
    back = await citizen.press("Tiếp tục")
    assert "Chọn theo tỉnh" in str(back[-1].get("reply_markup"))
    cancelled = await citizen.say("/cancel")
    assert "đã hủy" in text_of(cancelled).lower()


async def test_file_over_20_mb_is_refused_politely(citizen: Citizen) -> None:
    await begin_tip(citizen)
    await pick_by_name(citizen, "kha cuu", "Xã Khả Cửu (Phú Thọ)")
    replies = await citizen.send(
        citizen.client.send_declared_file(
            citizen.user,
            kind="video",
            size=25 * 1024 * 1024,
            filename="clip.mp4",
            mime_type="video/mp4",
        )
    )
    assert "20 MB" in text_of(replies)
    await finish_tip(citizen, "Vẫn gửi được tin báo sau khi tệp bị từ chối.")


async def test_limits_in_the_texts_follow_the_settings(
    client: EmulatorClient, settings: Settings, clock: FakeClock
) -> None:
    custom = settings.model_copy(
        update={"draft_ttl_hours": 36.0, "max_file_bytes": 5 * 1024 * 1024}
    )
    bot = BotUnderTest(custom, clock)  # instead of the `bot` fixture: one bot per emulator
    await bot.start()
    try:
        citizen = Citizen(client, bot, User(id=5_900_001, first_name="Trần Thị"))
        await begin_tip(citizen)
        await pick_by_name(citizen, "kha cuu", "Xã Khả Cửu (Phú Thọ)")
        replies = await citizen.send(
            client.send_declared_file(
                citizen.user,
                kind="video",
                size=6 * 1024 * 1024,
                filename="clip.mp4",
                mime_type="video/mp4",
            )
        )
        assert "5 MB" in text_of(replies)
        before = len(await client.bot_messages(citizen.chat_id))
        assert bot.services is not None
        clock.advance(hours=35)
        assert await bot.services.intake.expire_drafts() == 0
        clock.advance(hours=2)
        assert await bot.services.intake.expire_drafts() == 1
        await citizen.settle()
        notices = (await client.bot_messages(citizen.chat_id))[before:]
        assert len(notices) == 1 and "36" in notices[0]["text"]
    finally:
        await bot.stop()


async def test_deep_link_naming_no_commune(citizen: Citizen) -> None:
    for payload in ("c999999", "garbage"):
        replies = await citizen.say(f"/start {payload}")
        assert "không" in text_of(replies).lower()
        assert "📝 Gửi tin báo" in buttons_of(replies[-1])


async def test_group_chats_get_a_pointer_not_the_flow(
    client: EmulatorClient, citizen: Citizen
) -> None:
    group_id = -100_777
    member = citizen.user
    await client.add_bot_to_group(member, group_id, "Nhóm thôn 3")
    await citizen.settle()
    await client.send_text(member, "/start", chat_id=group_id)
    await client.send_text(member, "có ai không", chat_id=group_id)
    await citizen.settle()
    said = [m for m in await client.transcript(group_id) if m.get("from_bot")]
    assert len(said) == 2, "one note when added, one answer to /start, none to chatter"
    assert all("riêng" in m["text"] for m in said)


async def test_forwarded_text_is_taken_as_content(citizen: Citizen) -> None:
    await begin_tip(citizen)
    await pick_by_name(citizen, "kha cuu", "Xã Khả Cửu (Phú Thọ)")
    forwarded = await citizen.send(
        citizen.client.send_text(
            citizen.user,
            "Tin nhắn lừa đảo nhận được",
            forward_origin={"type": "hidden_user", "sender_user_name": "Ai đó", "date": 1700000000},
        )
    )
    assert "1 tin nhắn" in text_of(forwarded)
