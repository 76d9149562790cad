"""An enrolled Telegram staff member opens their own console login from the bot (/console):
the same `Staff` row, its role and area; the code works once, only in the console."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import pytest
from sqlmodel import func, select

from storage.models import ConsoleAccount, Staff
from tests.console.conftest import point_telegram_webhook
from tests.console.support import ConsoleClient
from tests.faults.tipline import KHA_CUU, Processes, TipLine, _text
from tests.serve.conftest import Instance

pytestmark = pytest.mark.faults  # real processes

CODE = re.compile(r"/console/join\?code=([A-Z0-9]+)")


async def test_a_telegram_officer_links_a_console_login_to_their_own_row(
    start_serve: Callable[..., Any], processes: Processes, tipline: TipLine
) -> None:
    serve: Instance = await start_serve()
    point_telegram_webhook(processes, serve.url)
    officer = await tipline.enroll("officer", "Cán bộ Telegram", commune=KHA_CUU)
    short_id = await tipline.send_tip(1)
    async with tipline.db.session() as session:
        people = (await session.exec(select(func.count()).select_from(Staff))).one()

    await tipline.client.send_text(officer, "/console")
    answer = _text(await tipline.reply(officer.id, lambda m: "web" in _text(m).lower()))
    found = CODE.search(answer)
    assert found, answer
    code = found.group(1)
    assert f"{serve.url}/console/join?code={code}" in answer and code in answer.split("(")[0]

    # The code is no invite for a second Telegram account.
    stranger_says = await _join_in_telegram(tipline, code)
    assert "không hợp lệ" in stranger_says

    browser = ConsoleClient(serve.url)
    try:
        await browser.open_account(code, "", "canbo.telegram")
        listing = await browser.http.get("/tips")
        assert f'data-tip="{short_id}"' in listing.text  # their commune's tip: same scope
        again = ConsoleClient(serve.url)
        refused = await again.post(
            "/join",
            {
                "code": code,
                "name": "",
                "username": "lan.hai",
                "password": "mat-khau-rat-dai-2026",
                "password2": "mat-khau-rat-dai-2026",
            },
        )
        assert refused.status_code == 400  # once only
        await again.aclose()
    finally:
        await browser.aclose()
    async with tipline.db.session() as session:
        after = (await session.exec(select(func.count()).select_from(Staff))).one()
        account = (await session.exec(select(ConsoleAccount))).one()
        staff = await session.get(Staff, account.staff_id)
    assert after == people, "no second person: the login is on the Telegram row"
    assert staff is not None and staff.platform == "telegram"
    assert staff.display_name == "Cán bộ Telegram" and staff.commune_code == KHA_CUU

    await tipline.client.send_text(officer, "/console")
    exists = _text(await tipline.reply(officer.id, lambda m: "web" in _text(m).lower()))
    assert "đã có" in exists


async def _join_in_telegram(tipline: TipLine, code: str) -> str:
    """Someone else tries the code with /join in the bot; the bot's answer."""
    from sandbox.client import User

    other = User(7_400_001, "Người khác")
    await tipline.client.send_text(other, f"/join {code}")
    return _text(await tipline.reply(other.id, lambda m: True))
