"""The console's guards over plain HTTP against the real `tinbao serve`: scope, CSRF, lockout,
sessions that end."""

from __future__ import annotations

import html
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
from sqlmodel import col, select

from bot.i18n import translator
from bot.services import cards
from storage.models import AuditEvent, Tip, TipAttachment, TipStatus
from tests.console.conftest import invite, point_telegram_webhook
from tests.console.support import PASSWORD, ConsoleClient
from tests.faults.tipline import KHA_CUU, Processes, TipLine
from tests.serve.conftest import Instance

pytestmark = pytest.mark.faults  # real processes

XUAN_LUNG = 8497


@pytest.fixture
async def officers(
    start_serve: Callable[..., Any], processes: Processes
) -> AsyncIterator[tuple[Instance, ConsoleClient, ConsoleClient]]:
    """Serve, and two officers with console accounts: Khả Cửu's and Xuân Lũng's."""
    serve: Instance = await start_serve()
    here, there = ConsoleClient(serve.url), ConsoleClient(serve.url)
    await here.open_account(invite(processes, "officer", commune=KHA_CUU), "Cán bộ Một", "canbo1")
    await there.open_account(
        invite(processes, "officer", commune=XUAN_LUNG), "Cán bộ Hai", "canbo2"
    )
    yield serve, here, there
    await here.aclose()
    await there.aclose()


async def _tip(tipline: TipLine, short_id: str) -> Tip:
    async with tipline.db.session() as session:
        found = (await session.exec(select(Tip).where(Tip.short_id == short_id))).one()
        return found


async def _audit(tipline: TipLine, action: str) -> list[AuditEvent]:
    async with tipline.db.session() as session:
        rows = await session.exec(
            select(AuditEvent).where(AuditEvent.action == action).order_by(col(AuditEvent.id))
        )
        return list(rows.all())


async def test_another_communes_officer_gets_403_and_no_search_hit(
    officers: tuple[Instance, ConsoleClient, ConsoleClient], tipline: TipLine, processes: Processes
) -> None:
    serve, here, there = officers
    point_telegram_webhook(processes, serve.url)
    short_id = await tipline.send_tip(1)
    tip = await _tip(tipline, short_id)
    row = f'data-tip="{short_id}"'
    assert row in (await here.http.get("/tips")).text
    assert row in (await here.http.get("/tips", params={"q": "MA TUY o ngo"})).text
    assert row not in (await here.http.get("/tips", params={"q": "trộm"})).text
    opened = await here.http.get(f"/tips/{tip.id}")
    assert opened.status_code == 200 and "ngõ 5" in opened.text

    assert (await there.http.get(f"/tips/{tip.id}")).status_code == 403
    assert (await there.http.get(f"/tips/{tip.id}/move", params={"q": "xuan"})).status_code == 403
    for query in (short_id, "ma tuy", "ngõ 5"):
        assert row not in (await there.http.get("/tips", params={"q": query})).text
    assert row not in (await there.http.get("/tips")).text
    acted = await there.post(f"/tips/{tip.id}/action", {"action": "ack"}, csrf_from="/tips")
    assert acted.status_code == 403
    assert (await _tip(tipline, short_id)).status == TipStatus.NEW

    views = await _audit(tipline, "view")
    assert [(v.allowed, v.actor.startswith("Cán bộ Một")) for v in views] == [
        (True, True),
        (False, False),
    ], "the view and the refused view are both audited, by name"


async def test_forged_or_missing_csrf_is_refused(
    officers: tuple[Instance, ConsoleClient, ConsoleClient], tipline: TipLine, processes: Processes
) -> None:
    serve, here, _ = officers
    point_telegram_webhook(processes, serve.url)
    tip = await _tip(tipline, await tipline.send_tip(2))
    path = f"/tips/{tip.id}/action"
    assert (await here.http.post(path, data={"action": "ack"})).status_code == 403
    forged = {"action": "ack", "csrf": "x" * 43}
    assert (await here.http.post(path, data=forged)).status_code == 403
    header_only = await here.http.post(path, data={"action": "ack"}, headers={"X-CSRF-Token": "no"})
    assert header_only.status_code == 403
    assert (await _tip(tipline, tip.short_id)).status == TipStatus.NEW
    # The real token works, and so does the header htmx sends.
    token = await here.csrf("/tips")
    done = await here.http.post(path, data={"action": "ack"}, headers={"X-CSRF-Token": token})
    assert done.status_code == 200
    assert (await _tip(tipline, tip.short_id)).status == TipStatus.ACKNOWLEDGED
    # Before login the form token is a cookie and a field; without both, refused.
    stranger = ConsoleClient(serve.url)
    login = {"username": "canbo1", "password": PASSWORD, "code": "000000"}
    assert (await stranger.http.post("/login", data=login)).status_code == 403
    await stranger.aclose()


async def test_five_wrong_codes_lock_the_account(
    officers: tuple[Instance, ConsoleClient, ConsoleClient], tipline: TipLine
) -> None:
    serve, here, _ = officers
    fresh = ConsoleClient(serve.url)
    fresh.secret, fresh.used = here.secret, here.used
    answers = [await fresh.log_in("canbo1", code="000000") for _ in range(5)]
    assert [a.status_code for a in answers] == [401] * 5
    assert "Sai tên đăng nhập" in answers[0].text
    assert "bị khóa" in answers[-1].text
    right = await fresh.log_in("canbo1")  # the right code now: still locked
    assert right.status_code == 401 and "bị khóa" in right.text
    refusals = [e for e in await _audit(tipline, "console_login") if not e.allowed]
    assert len(refusals) == 6 and all(e.actor.startswith("Cán bộ Một") for e in refusals)
    assert refusals[4].after == {"reason": "bad_code", "locked": True}
    stored = " ".join(str(e.after) for e in refusals)
    assert "000000" not in stored and PASSWORD not in stored, "nothing typed is stored"
    await fresh.aclose()


async def test_a_session_cookie_replayed_after_logout_is_refused(
    officers: tuple[Instance, ConsoleClient, ConsoleClient],
) -> None:
    serve, here, _ = officers
    cookie = here.http.cookies.get("tinbao_console")
    assert cookie and (await here.http.get("/tips")).status_code == 200
    assert (await here.post("/logout", {}, csrf_from="/tips")).status_code == 303
    replay = ConsoleClient(serve.url)
    replay.http.cookies.set("tinbao_console", cookie, path="/console")
    gone = await replay.http.get("/tips")
    assert gone.status_code == 303 and gone.headers["location"].endswith("/login")
    assert (await replay.http.get("/events")).status_code == 401
    await replay.aclose()

    # Logging out everywhere ends the other sessions too.
    first, second = ConsoleClient(serve.url), ConsoleClient(serve.url)
    for client in (first, second):
        client.secret, client.used = here.secret, here.used
        assert (await client.log_in("canbo1")).status_code == 303
    assert (await first.post("/logout-everywhere", {}, csrf_from="/tips")).status_code == 303
    assert (await second.http.get("/tips")).status_code == 303
    await first.aclose()
    await second.aclose()


async def test_the_tip_page_shows_the_metadata_warning_next_to_each_file(
    officers: tuple[Instance, ConsoleClient, ConsoleClient], tipline: TipLine, processes: Processes
) -> None:
    serve, here, _there = officers
    point_telegram_webhook(processes, serve.url)
    tip = await _tip(tipline, await tipline.send_tip(1))
    async with tipline.db.session() as session:
        for position, (kind, note) in enumerate(
            [
                ("video", "video: metadata not stripped, video needs ffmpeg"),
                ("document", "metadata not stripped: documents are kept as sent"),  # before codes
                ("photo", None),
            ]
        ):
            session.add(
                TipAttachment(
                    tip_id=tip.id, position=position, kind=kind, size=3, content=b"abc", note=note
                )
            )
        await session.commit()
    page = html.unescape((await here.http.get(f"/tips/{tip.id}")).text)
    vi = translator("vi")
    assert vi.gettext(cards.FILE_NOTES["video"]) in page
    assert vi.gettext(cards.FILE_NOTE_GENERIC) in page
    assert page.count("⚠️") == 2, "a cleaned file has no warning"
    assert "needs ffmpeg" not in page, "the English log text is not shown"
