"""An outreach session through the real bot: an officer creates it, attendees check in by its
link (one of them twice), the organiser records a head count, and the report counts them."""

from __future__ import annotations

from collections.abc import Callable
from datetime import date
from urllib.parse import unquote

from sqlmodel import select

from bot.channels.keywords import parse_text
from bot.i18n import translator
from bot.services import outreach_sessions
from bot.services.events import Start
from bot.services.report_xlsx import summary_paragraph
from bot.services.reports import Period, Scope, build_report
from sandbox.client import EmulatorClient
from storage.db import Database
from storage.models import AuditEvent, OutreachSession, PledgeSignature, SessionCheckIn
from tests.e2e.harness import BotUnderTest, Citizen, buttons_of, text_of
from tests.e2e.police import enroll

KHA_CUU = 8635
PHU_THO = 25


async def test_session_created_in_the_bot_and_counted(
    client: EmulatorClient,
    bot: BotUnderTest,
    database_url: str,
    new_citizen: Callable[..., Citizen],
) -> None:
    officer = await enroll(
        client, bot, database_url, role="officer", name="Cán bộ xã", commune=KHA_CUU
    )
    chat = officer.private
    await chat.say("/session")  # an officer's commune is known: straight to the subject
    await chat.press("Trang sau")
    await chat.press("ma túy")
    await chat.say("Nhà văn hóa thôn Đông")
    await chat.say("22/11/2026 14:00")  # the fake clock reads 10:00 local that day
    await chat.press("Cán bộ xã")
    await chat.say("80")
    preview = await chat.press("Không cam kết")
    assert "Nhà văn hóa thôn Đông" in text_of(preview) and "80" in text_of(preview)
    created = await chat.press("Tạo")
    db = Database(database_url)
    async with db.session() as session:
        outreach = (await session.exec(select(OutreachSession))).one()
    assert f"#{outreach.id}" in text_of(created)
    assert outreach.commune_code == KHA_CUU and outreach.expected_attendance == 80
    assert outreach.topic_ids == "ma_tuy" and outreach.organiser == "Cán bộ xã"
    shown = created[-1]
    links = [
        b["url"] for row in shown["reply_markup"]["inline_keyboard"] for b in row if "url" in b
    ]
    assert links and f"start=s{outreach.id}" in unquote(links[0])
    assert f"tham dự {outreach.id}" in shown["text"]

    early = new_citizen("Lê Thị")
    too_soon = await early.say(f"/start s{outreach.id}")
    assert "hai giờ" in text_of(too_soon), text_of(too_soon)

    bot.clock.advance(hours=3)  # 13:00 local: check-in is open
    first, second = new_citizen("Trần Văn"), new_citizen("Phạm Thị")
    welcome = await first.say(f"/start s{outreach.id}")
    assert "Nhà văn hóa thôn Đông" in text_of(welcome) and "điểm danh" in text_of(welcome).lower()
    assert any("Xã Khả Cửu" in label for label in buttons_of(welcome[-1])), "offer to subscribe"
    again = await first.say(f"/start s{outreach.id}")
    assert "đã điểm danh" in text_of(again).lower()
    await second.say(f"/start s{outreach.id}")
    unknown = await second.say("/start s999999")
    assert "không tồn tại" in text_of(unknown).lower() or "đã hủy" in text_of(unknown).lower()

    await chat.say("/sessions")
    await chat.press(f"#{outreach.id}")
    await chat.press("Ghi số người")
    counted = await chat.say("35")
    assert "35" in text_of(counted) and "2" in text_of(counted)

    bot.clock.advance(hours=4)  # 17:00 local: the session (14:00-16:00) is over
    assert bot.services is not None
    async with db.session() as session:
        queued = await outreach_sessions.queue_summaries(
            session, t=bot.services.inbox.t, now=bot.clock.now
        )
    async with db.session() as session:
        assert queued == 1
        assert (
            await outreach_sessions.queue_summaries(
                session, t=bot.services.inbox.t, now=bot.clock.now
            )
            == 0
        ), "once"
    bot.services.inbox.on_outbox()
    await chat.settle()
    summary = (await chat.messages())[-1]["text"]
    assert f"#{outreach.id}" in summary and "kết thúc" in summary
    assert "Điểm danh qua mã QR: 2" in summary and "Số người đếm tại chỗ: 35" in summary

    async with db.session() as session:
        check_ins = (await session.exec(select(SessionCheckIn))).all()
        actions = (await session.exec(select(AuditEvent.action, AuditEvent.allowed))).all()
        report = await build_report(
            session,
            scope=Scope.commune(KHA_CUU),
            period=Period(date(2026, 11, 1), date(2026, 11, 30)),
            now=bot.clock.now,
        )
    await db.dispose()
    assert len(check_ins) == 2, "the attendee who scanned twice is counted once"
    assert ("session_create", True) in actions and ("session_head_count", True) in actions
    sessions = report.sessions
    assert (sessions.held, sessions.check_ins, sessions.head_counts) == (1, 2, 35)
    paragraph = summary_paragraph(report, translator("vi"))
    assert "tổ chức 1 buổi tuyên truyền với 37 lượt người tham dự" in paragraph


async def test_attendee_signs_the_sessions_pledge(
    client: EmulatorClient,
    bot: BotUnderTest,
    database_url: str,
    new_citizen: Callable[..., Citizen],
) -> None:
    outreach_staff = await enroll(
        client, bot, database_url, role="outreach", name="Tuyên truyền tỉnh", province=PHU_THO
    )
    chat = outreach_staff.private
    await chat.say("/campaign open khong_ma_tuy")  # the province's campaign
    await chat.say("/session")
    await chat.say("kha cuu")
    await chat.press("Xã Khả Cửu")
    await chat.press("Tự đặt tiêu đề")
    await chat.say("Ngày hội toàn dân bảo vệ an ninh Tổ quốc")
    await chat.say("Sân vận động xã")
    await chat.say("22/11/2026 10:30")
    await chat.say("Công an xã và Đoàn thanh niên")
    await chat.press("Bỏ qua")
    await chat.press("ma túy")
    await chat.press("Tạo")
    db = Database(database_url)
    async with db.session() as session:
        outreach = (await session.exec(select(OutreachSession))).one()

    attendee = new_citizen("Đỗ Văn")
    await attendee.say(f"/start s{outreach.id}")
    await attendee.press("Ký cam kết của buổi")
    await attendee.press("Tôi cam kết")
    signed = await attendee.press("Bỏ qua")
    assert "P-" in text_of(signed)
    async with db.session() as session:
        signature = (await session.exec(select(PledgeSignature))).one()
    await db.dispose()
    assert signature.session_id == outreach.id and signature.commune_code == KHA_CUU
    assert outreach.title == "Ngày hội toàn dân bảo vệ an ninh Tổ quốc"


def test_zalo_words_stand_for_the_poster_links() -> None:
    assert parse_text("Tham dự 12") == Start(payload="s12")
    assert parse_text("diem danh 7") == Start(payload="s7")
    assert parse_text("báo tin 8635") == Start(payload="c8635")
    assert parse_text("tham dự buổi sáng") != Start(payload="s")
