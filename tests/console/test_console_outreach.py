"""Outreach in Debian's Chromium against the real `tinbao serve`: compose with previews and
the live audience size, the calendar, delivery progress to a Telegram subscriber, pause and
cancel, pledge campaigns; all of it inside the staff member's area."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from sqlmodel import col, select

from sandbox.client import User
from storage.models import AuditEvent, Broadcast
from tests.console.browser import Officer
from tests.console.conftest import invite, point_telegram_webhook
from tests.console.support import ConsoleClient
from tests.faults.tipline import KHA_CUU, PHU_THO, Processes, TipLine, _text
from tests.serve.conftest import Instance

pytestmark = pytest.mark.faults  # real processes

MESSAGE = "<b>Cảnh báo</b>: giả danh công an gọi điện đòi chuyển tiền là lừa đảo.\nHãy báo ngay."


def quiet_hours_away() -> dict[str, str]:
    """Quiet hours an hour wide, three hours from now: "now" sends at any time of day."""
    hour = (datetime.now(ZoneInfo("Asia/Ho_Chi_Minh")).hour + 3) % 24
    return {"TINBAO_QUIET_START": str(hour), "TINBAO_QUIET_END": str((hour + 1) % 24)}


async def test_outreach_staff_compose_preview_send_and_follow_delivery(
    start_serve: Callable[..., Any],
    processes: Processes,
    tipline: TipLine,
    chromium: Any,
    artifacts: Path,
) -> None:
    serve: Instance = await start_serve(**quiet_hours_away())
    point_telegram_webhook(processes, serve.url)
    subscriber = User(7_300_001, "Người đăng ký")
    await tipline.subscribe(subscriber)

    context = await chromium.new_context(viewport={"width": 1280, "height": 900}, locale="vi-VN")
    staff = Officer(await context.new_page(), serve.url, artifacts)
    code = invite(processes, "outreach", province=PHU_THO)
    await staff.open_account(code, "Cán bộ tuyên truyền", "tuyentruyen1", lands_on="outreach")
    page = staff.page
    assert await page.locator("#calendar").count() == 1
    await page.get_by_role("link", name="Soạn tin tuyên truyền").click()
    await page.wait_for_url("**/console/outreach/new")

    # Province staff are offered no country-wide audience and no urgent flag.
    audience = page.get_by_label("Khi nào gửi?")
    options = await page.locator("select[name=audience] option").all_inner_texts()
    assert "Tất cả người đăng ký" not in options and "Theo chủ đề" not in options
    assert await page.locator("input[name=urgent]").count() == 0
    assert await audience.count() == 1

    await page.get_by_label("Nội dung tin", exact=False).fill(MESSAGE)
    await page.locator("select[name=audience]").select_option("commune")
    await page.locator("select[name=commune]").select_option(str(KHA_CUU))
    # The previews follow what is typed: Telegram with its formatting, Zalo as plain text.
    await page.wait_for_selector("#preview-telegram b:has-text('Cảnh báo')")
    assert "<b>" not in await page.locator("#preview-zalo-oa").inner_text()
    assert "Cảnh báo" in await page.locator("#preview-zalo-oa strong").inner_text()
    await page.wait_for_selector("#audience-size:has-text('1')")
    await staff.shot("outreach-compose")

    await page.get_by_role("button", name="Lên lịch gửi").click()
    await page.wait_for_url("**/console/outreach/*")
    received = await tipline.reply(subscriber.id, lambda m: "giả danh công an" in _text(m))
    assert "Cảnh báo" in _text(received)
    # The progress on the open page reaches "sent" by itself.
    await page.wait_for_selector("#reach-counts [data-count='sent']:has-text('1')", timeout=20_000)
    await staff.shot("outreach-delivered")

    # A daily one shows in the calendar; pausing and cancelling it is audited.
    await page.goto(f"{serve.url}/console/outreach/new")
    await page.get_by_label("Nội dung tin", exact=False).fill(
        "Họp dân tối thứ Bảy tại nhà văn hóa."
    )
    await page.locator("select[name=audience]").select_option("province")
    await page.locator("select[name=when]").select_option("daily")
    await page.get_by_label("Giờ", exact=True).fill("08:00")
    await page.get_by_role("button", name="Lên lịch gửi").click()
    await page.wait_for_url("**/console/outreach/*")
    daily_id = int(page.url.rsplit("/", 1)[1])
    await page.get_by_role("button", name="Tạm dừng").click()
    await page.wait_for_selector("#broadcast-status:has-text('tạm dừng')")
    await page.get_by_role("button", name="Tiếp tục").click()
    await page.wait_for_selector("#broadcast-status:has-text('đã lên lịch')")
    await page.goto(f"{serve.url}/console/outreach")
    assert await page.locator(f"#calendar a[data-broadcast='{daily_id}']").count() >= 1
    await staff.shot("outreach-calendar")
    await page.goto(f"{serve.url}/console/outreach/{daily_id}")
    await page.get_by_role("button", name="Hủy tin tuyên truyền").click()
    await page.wait_for_selector("#broadcast-status:has-text('đã hủy')")

    # A pledge campaign for Khả Cửu: opened and closed from the page.
    await page.goto(f"{serve.url}/console/campaigns")
    await page.get_by_label("Địa bàn").select_option(f"c:{KHA_CUU}")
    await page.get_by_role("button", name="Mở đợt ký").click()
    await page.wait_for_selector("table.campaigns tr[data-campaign]")
    await page.get_by_role("button", name="Kết thúc").click()
    await page.wait_for_selector("table.campaigns td:has-text('Đã kết thúc')")
    await context.close()
    assert not staff.errors, staff.errors

    async with tipline.db.session() as session:
        actions = (
            await session.exec(
                select(AuditEvent.action)
                .where(col(AuditEvent.allowed).is_(True))
                .order_by(col(AuditEvent.id))
            )
        ).all()
        daily = await session.get(Broadcast, daily_id)
    assert daily is not None and daily.status == "cancelled" and daily.cron == "0 8 * * *"
    outreach = [a for a in actions if a.startswith(("broadcast", "campaign"))]
    assert outreach == [
        "broadcast",
        "broadcast",
        "broadcast_pause",
        "broadcast_resume",
        "broadcast_cancel",
        "campaign_open",
        "campaign_close",
    ]


async def test_outreach_pages_refuse_others_and_stay_in_the_area(
    start_serve: Callable[..., Any], processes: Processes, tipline: TipLine
) -> None:
    serve: Instance = await start_serve(**quiet_hours_away())
    province_staff, officer = ConsoleClient(serve.url), ConsoleClient(serve.url)
    await province_staff.open_account(
        invite(processes, "outreach", province=PHU_THO), "Tuyên truyền", "tuyentruyen2"
    )
    await officer.open_account(invite(processes, "officer", commune=KHA_CUU), "Cán bộ", "canbo9")
    try:
        # An officer handles tips: the outreach pages are not theirs.
        assert (await officer.http.get("/outreach")).status_code == 403
        assert (await officer.http.get("/campaigns")).status_code == 403
        # A country-wide audience posted by hand is refused and audited, nothing stored.
        sent = await province_staff.post(
            "/outreach/new",
            {"content": "text", "text": "Thử", "audience": "all", "when": "now"},
            csrf_from="/outreach/new",
        )
        assert sent.status_code == 400 and "chỉ được gửi" in sent.text
        urgent = await province_staff.post(
            "/outreach/new",
            {
                "content": "text",
                "text": "Thử",
                "audience": "commune",
                "commune": str(KHA_CUU),
                "when": "now",
                "urgent": "1",
            },
            csrf_from="/outreach/new",
        )
        assert urgent.status_code == 400
        # Forged CSRF on a state change: 403 before anything is looked at.
        forged = await province_staff.http.post("/outreach/1/state", data={"action": "cancel"})
        assert forged.status_code == 403
        # The preview gives no audience size for a place outside the area.
        token = await province_staff.csrf("/outreach/new")
        peek = await province_staff.http.post(
            "/outreach/preview",
            data={"csrf": token, "content": "text", "text": "x", "audience": "all", "when": "now"},
        )
        assert "audience-size" not in peek.text and "preview-error" in peek.text
    finally:
        await province_staff.aclose()
        await officer.aclose()
    async with tipline.db.session() as session:
        stored = (await session.exec(select(Broadcast))).all()
        refused = (
            await session.exec(select(AuditEvent.action).where(col(AuditEvent.allowed).is_(False)))
        ).all()
    assert stored == [] and list(refused).count("broadcast") == 2
