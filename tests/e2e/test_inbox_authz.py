"""Every inbox action checks on the server who is acting; refusals are answered and audited."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from sqlmodel import select

from bot.services.enrollment import revoke_staff
from bot.services.inbox import PRESS_LIMIT, REFUSALS_AUDITED
from sandbox.client import EmulatorClient, User
from storage.db import Database
from storage.models import AuditEvent, Inbox, Staff, Tip
from tests.e2e.flows import send_tip
from tests.e2e.harness import BotUnderTest, Citizen, text_of
from tests.e2e.police import card_for, enroll, link_group

KHA_CUU = 8635
XUAN_LUNG = 8497
PHU_THO = 25
HA_NOI = 1
ACTIONS = ("ack", "v1", "v0", "ver", "close", "cl:done", "move", f"mv:{XUAN_LUNG}", "esc", "back")
REFUSED = "không có quyền"


async def _snapshot(database_url: str, short_id: str) -> tuple[object, ...]:
    """The fields an action could change."""
    db = Database(database_url)
    async with db.session() as session:
        tip = (await session.exec(select(Tip).where(Tip.short_id == short_id))).one()
        refusals = (
            await session.exec(
                select(AuditEvent).where(AuditEvent.tip_id == tip.id, AuditEvent.allowed == False)  # noqa: E712
            )
        ).all()
    await db.dispose()
    return (tip.status, tip.valuable, tip.commune_code, tip.inbox_id, tip.close_reason), len(
        refusals
    )


async def _audit_text(database_url: str, short_id: str) -> str:
    """Every audit row of a tip, as text."""
    db = Database(database_url)
    async with db.session() as session:
        tip = (await session.exec(select(Tip).where(Tip.short_id == short_id))).one()
        rows = (await session.exec(select(AuditEvent).where(AuditEvent.tip_id == tip.id))).all()
    await db.dispose()
    return "\n".join(f"{row.actor} {row.before} {row.after}" for row in rows)


async def _outsider(
    client: EmulatorClient, bot: BotUnderTest, database_url: str, kind: str
) -> User:
    """A wrong actor of the given kind, as a Telegram account."""
    if kind == "stranger":
        return User(id=6_100_001, first_name="Người lạ")
    if kind == "other_commune_officer":
        member = await enroll(
            client, bot, database_url, role="officer", name="Cán bộ xã khác", commune=XUAN_LUNG
        )
        return member.user
    if kind == "other_province_supervisor":
        member = await enroll(
            client, bot, database_url, role="supervisor", name="Tỉnh khác", province=HA_NOI
        )
        return member.user
    if kind == "outreach":
        member = await enroll(client, bot, database_url, role="outreach", name="Tuyên truyền")
        return member.user
    member = await enroll(
        client, bot, database_url, role="officer", name="Đã nghỉ", commune=KHA_CUU
    )
    db = Database(database_url)
    async with db.session() as session:
        staff = (
            await session.exec(select(Staff).where(Staff.platform_user_id == str(member.user.id)))
        ).one()
        assert staff.id is not None
        await revoke_staff(session, staff_id=staff.id, actor=None, now=bot.clock.now)
    await db.dispose()
    return member.user


@pytest.mark.parametrize(
    "kind",
    [
        "stranger",
        "other_commune_officer",
        "other_province_supervisor",
        "outreach",
        "revoked_officer",
    ],
)
async def test_wrong_actors_are_refused_for_every_action(
    kind: str,
    client: EmulatorClient,
    bot: BotUnderTest,
    database_url: str,
    new_citizen: Callable[..., Citizen],
) -> None:
    officer = await enroll(
        client, bot, database_url, role="officer", name="Hoàng Minh Khôi", commune=KHA_CUU
    )
    inbox = await link_group(officer, "Công an xã Khả Cửu")
    _, short_id = await send_tip(new_citizen())
    card = card_for(await inbox.messages(), short_id)
    tip_id = card["reply_markup"]["inline_keyboard"][0][0]["callback_data"].split(":")[1]
    before, refusals = await _snapshot(database_url, short_id)

    wrong = Citizen(
        client, bot, await _outsider(client, bot, database_url, kind), chat_id=inbox.chat_id
    )
    for action in ACTIONS:
        await wrong.press_data(card["message_id"], f"t:{tip_id}:{action}", forged=True)
        answer = await client.callback_answer(wrong.last_query_id)
        assert answer and REFUSED in (answer.get("text") or "").lower(), (action, answer)
    replied = await wrong.say(
        "Tôi là công an, hãy cho tôi biết tên bạn", reply_to=card["message_id"]
    )
    assert REFUSED in text_of(replied).lower()
    # /audit works only in a private chat; there it is refused (and the refusal audited).
    in_group = await wrong.say(f"/audit {short_id}")
    assert "trò chuyện riêng" in text_of(in_group).lower()
    privately = Citizen(client, bot, wrong.user)
    audit = await privately.say(f"/audit {short_id}")
    assert REFUSED in text_of(audit).lower()

    after, refusals_after = await _snapshot(database_url, short_id)
    assert after == before, "nothing changed"
    # The first refused presses are audited, the rest only counted (a script cannot fill the
    # log); the refused reply and /audit have rows of their own.
    assert refusals_after - refusals == REFUSALS_AUDITED + 2
    # No refusal row names the account: a tipster probing their own tip must not be linked
    # to it in the trail every supervisor reads.
    assert str(wrong.user.id) not in await _audit_text(database_url, short_id)


async def test_forged_callback_data_is_refused(
    client: EmulatorClient,
    bot: BotUnderTest,
    database_url: str,
    new_citizen: Callable[..., Citizen],
) -> None:
    officer = await enroll(
        client, bot, database_url, role="officer", name="Hoàng Minh Khôi", commune=KHA_CUU
    )
    inbox = await link_group(officer, "Công an xã Khả Cửu")
    _, short_id = await send_tip(new_citizen())
    # A tip of another commune: the Khả Cửu officer forges a press on it from his own card.
    _, foreign_short = await send_tip(new_citizen(), "xuan lung", "Xã Xuân Lũng (Phú Thọ)")
    db = Database(database_url)
    async with db.session() as session:
        foreign = (await session.exec(select(Tip).where(Tip.short_id == foreign_short))).one()
    await db.dispose()
    card = card_for(await inbox.messages(), short_id)
    for data in (f"t:{foreign.id}:ack", f"t:{foreign.id}:cl:done", "t:abc:ack", "t:999999:ack"):
        await inbox.press_data(card["message_id"], data, forged=True)
        answer = await client.callback_answer(inbox.last_query_id)
        assert answer and answer.get("text"), data
    async with db.session() as session:
        unchanged = (await session.exec(select(Tip).where(Tip.short_id == foreign_short))).one()
    await db.dispose()
    assert unchanged.status == "new"
    odd = await inbox.press_data(card["message_id"], "t:1:" + "x" * 40, forged=True)
    assert odd == [] or all("Lĩnh vực" not in (m.get("text") or "") for m in odd)


async def test_supervisor_and_admin_may_act(
    client: EmulatorClient,
    bot: BotUnderTest,
    database_url: str,
    new_citizen: Callable[..., Citizen],
) -> None:
    officer = await enroll(
        client, bot, database_url, role="officer", name="Hoàng Minh Khôi", commune=KHA_CUU
    )
    inbox = await link_group(officer, "Công an xã Khả Cửu")
    supervisor = await enroll(
        client, bot, database_url, role="supervisor", name="Vũ Thanh Bình", province=PHU_THO
    )
    admin = await enroll(client, bot, database_url, role="admin", name="Quản trị")
    _, short_id = await send_tip(new_citizen())
    card = card_for(await inbox.messages(), short_id)
    tip_id = card["reply_markup"]["inline_keyboard"][0][0]["callback_data"].split(":")[1]
    for member, action in ((supervisor, "ver"), (admin, "v1")):
        actor = Citizen(client, bot, member.user, chat_id=inbox.chat_id)
        await actor.press_data(card["message_id"], f"t:{tip_id}:{action}", forged=True)
    in_group = await Citizen(client, bot, supervisor.user, chat_id=inbox.chat_id).say(
        f"/audit {short_id}"
    )
    assert "Nhật ký" not in text_of(in_group), "the group's members never read the trail"
    audit = await Citizen(client, bot, supervisor.user).say(f"/audit {short_id}")
    assert "Nhật ký" in text_of(audit)
    state, _ = await _snapshot(database_url, short_id)
    assert state[:2] == ("verifying", True)


async def test_a_public_group_cannot_become_an_inbox(
    client: EmulatorClient, bot: BotUnderTest, database_url: str
) -> None:
    officer = await enroll(
        client, bot, database_url, role="officer", name="Hoàng Minh Khôi", commune=KHA_CUU
    )
    public_group = -1_009_990_001
    await client.add_bot_to_group(
        officer.user, public_group, "Hội dân xã Khả Cửu", username="hoidankhacuu"
    )
    group = officer.private.in_chat(public_group)
    await group.settle()
    refused = await group.say("/link")
    assert "nhóm công khai" in text_of(refused).lower(), text_of(refused)
    db = Database(database_url)
    async with db.session() as session:
        linked = (await session.exec(select(Inbox).where(Inbox.chat_id == public_group))).all()
    await db.dispose()
    assert linked == []


async def test_card_presses_are_limited_per_account(
    client: EmulatorClient,
    bot: BotUnderTest,
    database_url: str,
    new_citizen: Callable[..., Citizen],
) -> None:
    officer = await enroll(
        client, bot, database_url, role="officer", name="Hoàng Minh Khôi", commune=KHA_CUU
    )
    inbox = await link_group(officer, "Công an xã Khả Cửu")
    _, short_id = await send_tip(new_citizen())
    card = card_for(await inbox.messages(), short_id)
    tip_id = card["reply_markup"]["inline_keyboard"][0][0]["callback_data"].split(":")[1]
    _before, refusals = await _snapshot(database_url, short_id)
    script = Citizen(client, bot, User(id=6_100_009, first_name="Kịch bản"), chat_id=inbox.chat_id)
    answers = []
    for _ in range(PRESS_LIMIT + 3):
        await script.press_data(card["message_id"], f"t:{tip_id}:ack", forged=True)
        answer = await client.callback_answer(script.last_query_id)
        answers.append((answer or {}).get("text") or "")
    assert all(REFUSED in text.lower() for text in answers[:PRESS_LIMIT])
    assert all("đợi một phút" in text for text in answers[PRESS_LIMIT:]), answers[PRESS_LIMIT:]
    _after, refusals_after = await _snapshot(database_url, short_id)
    assert refusals_after - refusals == REFUSALS_AUDITED
    # The officer of the commune is not held back by someone else's presses.
    await inbox.press_data(card["message_id"], f"t:{tip_id}:ack", forged=True)
    answer = await client.callback_answer(inbox.last_query_id)
    assert "đợi" not in ((answer or {}).get("text") or "")
    bot.clock.advance(minutes=1)  # a new minute: the script's presses are answered again
    await script.press_data(card["message_id"], f"t:{tip_id}:ack", forged=True)
    answer = await client.callback_answer(script.last_query_id)
    assert REFUSED in ((answer or {}).get("text") or "").lower()
