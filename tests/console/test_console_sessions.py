"""Outreach sessions in the console through the real `tinbao serve`: an officer creates one in
their commune, records the head count and cancels; outreach staff of another province see none
of it and cannot change it."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import pytest
from sqlmodel import col, select

from storage.models import AuditEvent, OutreachSession
from tests.console.conftest import invite
from tests.console.support import ConsoleClient
from tests.faults.tipline import KHA_CUU, PHU_THO, Processes, TipLine
from tests.serve.conftest import Instance

pytestmark = pytest.mark.faults  # real processes

HA_NOI = 1


async def test_officer_creates_counts_and_cancels_a_session(
    start_serve: Callable[..., Any], processes: Processes, tipline: TipLine
) -> None:
    serve: Instance = await start_serve()
    officer, stranger = ConsoleClient(serve.url), ConsoleClient(serve.url)
    await officer.open_account(invite(processes, "officer", commune=KHA_CUU), "Cán bộ", "canbo7")
    await stranger.open_account(
        invite(processes, "outreach", province=HA_NOI), "Tuyên truyền", "tuyentruyen7"
    )
    try:
        form = await officer.http.get("/sessions")
        assert form.status_code == 200 and f'value="{KHA_CUU}"' in form.text
        assert "/sessions" in form.text.split("<nav", 1)[1].split("</nav>", 1)[0]
        created = await officer.post(
            "/sessions",
            {
                "commune": str(KHA_CUU),
                "topic": "ma_tuy",
                "title": "",
                "place": "Nhà văn hóa thôn Đông",
                "starts_at": "2026-12-20T19:30",
                "organiser": "Công an xã Khả Cửu",
                "expected": "60",
                "campaign": "",
            },
        )
        assert created.status_code == 303, created.text[:500]
        listing = await officer.http.get("/sessions")
        async with tipline.db.session() as session:
            outreach = (await session.exec(select(OutreachSession))).one()
        assert outreach.commune_code == KHA_CUU and outreach.expected_attendance == 60
        assert outreach.topic_ids == "ma_tuy" and "ma túy" in outreach.title.lower()
        assert outreach.starts_at.isoformat().startswith("2026-12-20T12:30"), "19:30 local"
        row = re.search(rf'<tr data-session="{outreach.id}">(.*?)</tr>', listing.text, re.S)
        assert row and f"tham dự {outreach.id}" in row.group(1)

        # Outside one's area: not listed, and a change is refused like an unknown session.
        assert f'data-session="{outreach.id}"' not in (await stranger.http.get("/sessions")).text
        refused = await stranger.post(
            f"/sessions/{outreach.id}", {"head_count": "999"}, csrf_from="/sessions"
        )
        assert refused.status_code == 404
        elsewhere = await officer.post(
            "/sessions",
            {"commune": "4", "place": "x", "title": "x", "starts_at": "2026-12-20T19:30"},
            csrf_from="/sessions",
        )
        assert elsewhere.status_code == 400 and "session-error" in elsewhere.text

        counted = await officer.post(
            f"/sessions/{outreach.id}", {"head_count": "42"}, csrf_from="/sessions"
        )
        assert counted.status_code == 303
        listing = await officer.http.get("/sessions")
        row = re.search(rf'<tr data-session="{outreach.id}">(.*?)</tr>', listing.text, re.S)
        assert row and re.search(r'data-count="head_count">42', row.group(1))
        gone = await officer.post(
            f"/sessions/{outreach.id}", {"action": "cancel"}, csrf_from="/sessions"
        )
        assert gone.status_code == 303
        assert f'data-session="{outreach.id}"' not in (await officer.http.get("/sessions")).text
    finally:
        await officer.aclose()
        await stranger.aclose()
    async with tipline.db.session() as session:
        actions = (
            await session.exec(
                select(AuditEvent.action, AuditEvent.allowed).order_by(col(AuditEvent.id))
            )
        ).all()
    assert [a for a in actions if a[0].startswith("session")] == [
        ("session_create", True),
        ("session_head_count", False),
        ("session_create", False),
        ("session_head_count", True),
        ("session_cancel", True),
    ]
    assert PHU_THO
