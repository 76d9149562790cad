"""Following up a tip: /status and /add from any account; restart and expiry of drafts."""

from __future__ import annotations

from collections.abc import Callable

from sandbox.client import EmulatorClient
from tests.conftest import FakeClock
from tests.e2e.flows import begin_tip, finish_tip, pick_by_name
from tests.e2e.harness import BotUnderTest, Citizen, text_of


async def test_status_and_add_from_another_account(new_citizen: Callable[..., Citizen]) -> None:
    author = new_citizen()
    await begin_tip(author)
    await pick_by_name(author, "kha cuu", "Xã Khả Cửu (Phú Thọ)")
    code = await finish_tip(author)

    other = new_citizen("Lê Thị")
    status = await other.say(f"/status {code.lower().replace('-', ' ')}")
    shown = text_of(status)
    assert "Ma túy" in shown and "Xã Khả Cửu" in shown and "chờ" in shown

    asked = await other.say(f"/add {code}")
    assert "Xong" in str(asked[-1].get("reply_markup"))
    added = await other.say("Người bán thường đi xe máy màu đỏ.")
    assert "đã thêm vào tin báo" in text_of(added).lower()
    await other.send(other.client.send_photo(other.user, b"not really a jpeg"))
    await other.press("Xong")
    status = await author.say(f"/status {code}")
    assert "xe máy màu đỏ" in text_of(status)
    assert "[1 tệp]" in text_of(status)


async def test_status_with_a_wrong_code(citizen: Citizen) -> None:
    assert "không phải" in text_of(await citizen.say("/status 12")).lower()
    assert "không có tin báo" in text_of(await citizen.say("/status 0000-0000-0000")).lower()


async def test_restart_mid_flow_resumes(citizen: Citizen, bot: BotUnderTest) -> None:
    await citizen.say("/start")
    await citizen.press("Gửi tin báo")
    await citizen.press("Ma túy")
    await bot.restart()
    # The button shown before the restart still works: the state is the draft row.
    await citizen.press("Không")
    await pick_by_name(citizen, "kha cuu", "Xã Khả Cửu (Phú Thọ)")
    await bot.restart()
    await finish_tip(citizen)


async def test_silent_draft_expires_with_a_message(
    citizen: Citizen, bot: BotUnderTest, clock: FakeClock
) -> None:
    await begin_tip(citizen)
    before = len(await citizen.client.bot_messages(citizen.chat_id))
    clock.advance(hours=25)
    assert bot.services is not None
    assert await bot.services.intake.expire_drafts() == 1
    assert await bot.services.intake.expire_drafts() == 0
    await citizen.settle()  # the outbox sender delivers the notice
    notices = (await citizen.client.bot_messages(citizen.chat_id))[before:]
    assert len(notices) == 1 and "24" in notices[0]["text"] and "/start" in notices[0]["text"]
    menu = await citizen.say("Xin chào")
    assert "Gửi tin báo" in str(menu[-1].get("reply_markup"))


async def test_expiry_notice_survives_a_failed_send(
    citizen: Citizen, bot: BotUnderTest, clock: FakeClock, client: EmulatorClient
) -> None:
    await begin_tip(citizen)
    before = len(await client.bot_messages(citizen.chat_id))
    clock.advance(hours=25)
    await client.add_fault("sendMessage", "error", status=500, count=1, chat_id=citizen.chat_id)
    assert bot.services is not None
    assert await bot.services.intake.expire_drafts() == 1
    await citizen.settle()  # the first send failed: the row waits for its backoff
    assert len(await client.bot_messages(citizen.chat_id)) == before
    assert (await client.counters())["faults"]["injected_total"] == 1
    clock.advance(minutes=1)
    bot.services.wake_outbox()
    await citizen.settle()
    after = (await client.bot_messages(citizen.chat_id))[before:]
    assert len(after) == 1 and "24" in after[0]["text"]
