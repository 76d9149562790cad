"""The officer's whole path in Debian's Chromium, against the real `tinbao serve`: on Telegram,
and with no Telegram at all (a Zalo OA citizen)."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from sandbox.client import EmulatorClient, User
from sandbox.zalo_client import ZaloCitizen
from tests.console.browser import LIVE, Officer
from tests.console.conftest import invite, point_telegram_webhook
from tests.faults.tipline import KHA_CUU, Processes, TipLine, _has_button, _text
from tests.serve.conftest import Instance
from tests.zalo.test_zalo_bot import send_tip_by_numbers

pytestmark = pytest.mark.faults  # real processes and a browser

ANSWER_WORDS = re.compile(r"TL (\d+)")


async def test_officer_works_a_telegram_tip_live_in_the_browser(
    start_serve: Callable[..., Any],
    processes: Processes,
    tipline: TipLine,
    client: EmulatorClient,
    chromium: Any,
    artifacts: Path,
) -> None:
    serve: Instance = await start_serve()
    point_telegram_webhook(processes, serve.url)
    context = await chromium.new_context(viewport={"width": 1280, "height": 900}, locale="vi-VN")
    officer = Officer(await context.new_page(), serve.url, artifacts)
    await officer.open_account(invite(processes, "officer", commune=KHA_CUU), "Cán bộ Ba", "canbo3")
    page = officer.page
    await page.get_by_role("button", name="Đăng xuất", exact=True).click()
    await page.wait_for_url("**/console/login")
    await officer.log_in("canbo3")

    # A citizen's tip appears in the open list without a reload, with a badge in the title.
    citizen = User(7_200_001, "Người dân")
    short_id = await tipline.send_tip(1, citizen)
    await page.wait_for_selector(f"tr[data-tip='{short_id}']", timeout=20_000)
    await page.wait_for_selector("#new-badge:not([hidden])")
    assert (await page.title()).startswith("(1)")
    await officer.shot("inbox")

    await officer.open_tip(short_id)
    assert "ngõ 5" in await page.locator("#tip").inner_text()
    await page.get_by_role("button", name="Tiếp nhận", exact=True).click()
    await page.wait_for_selector("#tip-head[data-status='acknowledged']")
    await tipline.reply(citizen.id, lambda m: "đã được Công an tiếp nhận" in _text(m))

    await officer.reply("Bạn thấy mấy người ở đó?")
    asked = await tipline.reply(citizen.id, lambda m: "mấy người" in _text(m))
    assert "Cán bộ Ba" not in _text(asked), "the officer stays unnamed to the tipster"
    await tipline._press(citizen, asked, "Trả lời")
    await tipline.reply(citizen.id, lambda m: True)
    await client.send_text(citizen, "Hai người, mặc áo khoác đen.")
    done = await tipline.reply(citizen.id, _has_button("Xong"))
    await tipline._press(citizen, done, "Xong")
    # The answer shows up on the open tip page by itself.
    await page.wait_for_selector("#thread .message.citizen:has-text('Hai người')", timeout=20_000)
    await officer.shot("tip")

    await page.get_by_label("Đóng với lý do").select_option("cl:done")
    await page.get_by_role("button", name="Đóng tin báo").click()
    await page.wait_for_selector("#tip-head[data-status='closed']")
    await tipline.reply(citizen.id, lambda m: "kết thúc" in _text(m) or "đóng" in _text(m))
    await officer.shot("closed")
    await context.close()
    assert not officer.errors, officer.errors


async def test_the_same_path_with_no_telegram_a_zalo_tip(
    start_oa_serve: Callable[..., Any],
    oa_citizen: Callable[..., ZaloCitizen],
    processes: Processes,
    chromium: Any,
    artifacts: Path,
) -> None:
    serve: Instance = await start_oa_serve()  # TINBAO_BOT_TOKEN is empty: no Telegram at all
    context = await chromium.new_context(viewport={"width": 390, "height": 844}, locale="vi-VN")
    officer = Officer(await context.new_page(), serve.url, artifacts)
    await officer.open_account(invite(processes, "officer", commune=KHA_CUU), "Cán bộ Tư", "canbo4")
    await officer.page.wait_for_selector(LIVE)

    tipster = oa_citizen("zalo-lan", "Lê Thị Lan")
    await tipster.follow()
    await tipster.wait_for("Gửi tin báo")
    _code, short_id = await send_tip_by_numbers(tipster, "Có người lạ trộm xe máy ở chợ.")
    page = officer.page
    await page.wait_for_selector(f"tr[data-tip='{short_id}']", timeout=20_000)
    await officer.open_tip(short_id)
    await officer.reply("Xe màu gì vậy bạn?")
    question = await tipster.wait_for("màu gì")
    words = ANSWER_WORDS.search(question[-1]["text"])
    assert words, question[-1]["text"]
    await tipster.say(words.group(0), lambda text: bool(text.strip()))
    await tipster.say("Xe màu đỏ, biển 19.", lambda text: bool(text.strip()))
    await page.wait_for_selector("#thread .message.citizen:has-text('màu đỏ')", timeout=20_000)
    await officer.shot("zalo-tip-phone")
    await context.close()
    assert not officer.errors, officer.errors
