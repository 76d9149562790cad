"""The demo without a browser: the page's files are served, and the seed is what it says."""

from __future__ import annotations

import asyncio
import io
from pathlib import Path

import httpx
from rich.console import Console
from sqlmodel import select

from sandbox.emulator import Emulator
from storage.db import Database
from storage.models import Inbox, Staff, Tip, TipStatus
from tinbao.demo import DATABASE_FILE, page_config, run_web_demo
from tinbao.demo_seed import CAST, KHA_CUU, XUAN_LUNG, SeedReport


async def test_the_emulator_serves_the_page_and_its_config() -> None:
    emulator = Emulator()
    emulator.add_bot("123456:PAGE", username="page_bot")
    emulator.web_config = page_config()
    transport = httpx.ASGITransport(app=emulator.app)
    async with httpx.AsyncClient(transport=transport, base_url="http://demo") as http:
        page = await http.get("/web/")
        assert page.status_code == 200 and "tinbao" in page.text and 'lang="vi"' in page.text
        assets = (("app.js", "javascript"), ("phone.js", "javascript"), ("app.css", "css"))
        for name, kind in assets:
            asset = await http.get(f"/web/{name}")
            assert asset.status_code == 200 and kind in asset.headers["content-type"]
        config = (await http.get("/web/config.json")).json()
    assert [phone["key"] for phone in config["phones"]] == ["citizen", "inbox", "staff"]
    assert config["phones"][1]["chat_id"] == CAST.inbox.chat_id
    assert config["places"] and config["extra_citizens"]["names"]


async def test_the_demo_seeds_through_the_bot_and_serves(tmp_path: Path) -> None:
    stop = asyncio.Event()
    ready: list[tuple[str, SeedReport]] = []

    def on_ready(url: str, report: SeedReport) -> None:
        ready.append((url, report))
        stop.set()  # checked below, after the demo has shut down

    printed = io.StringIO()
    await asyncio.wait_for(
        run_web_demo(tmp_path, port=0, console=Console(file=printed), stop=stop, on_ready=on_ready),
        60,
    )
    assert "/web/" in printed.getvalue()
    ((url, report),) = ready
    assert url.endswith("/web/")
    assert {status: len(ids) for status, ids in report.tips.items()} == {
        "acknowledged": 1,
        "closed": 1,
        "new": 2,
    }
    assert not report.problems, report.problems
    db = Database(f"sqlite+aiosqlite:///{tmp_path / DATABASE_FILE}")
    async with db.session() as session:
        tips = (await session.exec(select(Tip))).all()
        inboxes = (await session.exec(select(Inbox).where(Inbox.status == "active"))).all()
        staff = (await session.exec(select(Staff))).all()
    await db.dispose()
    assert sorted((tip.commune_code, tip.status, tip.channel) for tip in tips) == sorted(
        [
            (KHA_CUU, TipStatus.ACKNOWLEDGED, "telegram"),
            (KHA_CUU, TipStatus.CLOSED, "telegram"),
            (KHA_CUU, TipStatus.NEW, "telegram"),
            (XUAN_LUNG, TipStatus.NEW, "telegram"),
            (KHA_CUU, TipStatus.NEW, "zalo_oa"),  # sent on the Zalo phone, typing numbers
        ]
    )
    assert sorted(inbox.chat_id for inbox in inboxes) == sorted(
        [CAST.inbox.chat_id, CAST.second_inbox.chat_id]
    )
    assert sorted(member.role for member in staff) == ["officer", "officer", "outreach"]
