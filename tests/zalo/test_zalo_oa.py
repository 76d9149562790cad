"""The citizen side on a Zalo Official Account, through the real `tinbao serve` and the emulator."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from sqlmodel import select

from sandbox.zalo_client import ZaloCitizen
from sandbox.zalo_oa import ZaloOaEmulator, signature
from storage.db import Database
from storage.models import OutreachSession, SessionCheckIn
from tests.factories_media import make_test_jpeg_with_gps
from tests.faults.tipline import Processes, eventually
from tests.serve.conftest import Instance, tinbao_cli
from tests.zalo.conftest import ZALO_OA_APP_ID, ZALO_OA_SECRET_KEY, oa_settings
from tests.zalo.test_zalo_bot import KHA_CUU, send_tip_by_numbers, tips

pytestmark = pytest.mark.faults  # real processes


async def test_follow_greets_and_a_whole_tip_works_with_no_telegram(
    start_oa_serve: Callable[..., Any],
    oa_citizen: Callable[..., ZaloCitizen],
    database_url: str,
) -> None:
    serve: Instance = await start_oa_serve()
    assert (await serve.get("/readyz")).json()["checks"]["zalo_oa"]["ok"]
    citizen = oa_citizen("lan", "Lê Thị Lan")
    await citizen.follow()
    await citizen.wait_for("Gửi tin báo")  # following greets with the menu
    code, short = await send_tip_by_numbers(citizen, "Có người lạ trộm xe máy ở chợ.")
    assert [(t.short_id, t.channel) for t in await tips(database_url)] == [(short, "zalo_oa")]
    await citizen.say(f"tra cuu {code}", short)


async def test_signature_is_checked_and_a_repeated_msg_id_is_taken_once(
    start_oa_serve: Callable[..., Any],
    oa_citizen: Callable[..., ZaloCitizen],
    oa_http: httpx.AsyncClient,
    zalo_oa: ZaloOaEmulator,
) -> None:
    serve: Instance = await start_oa_serve()
    event = {
        "app_id": ZALO_OA_APP_ID,
        "event_name": "user_send_text",
        "timestamp": "1764760000000",
        "sender": {"id": "forger"},
        "recipient": {"id": zalo_oa.oa_id},
        "message": {"msg_id": "m-forged", "text": "/start"},
    }
    body = json.dumps(event).encode()
    good = signature(ZALO_OA_APP_ID, body, event["timestamp"], ZALO_OA_SECRET_KEY)
    wrong = signature(ZALO_OA_APP_ID, body, event["timestamp"], "not-the-secret")
    other_app = dict(event, app_id="999")
    other_body = json.dumps(other_app).encode()
    other_sig = signature("999", other_body, event["timestamp"], ZALO_OA_SECRET_KEY)
    url = serve.url + "/zalo/oa/webhook"
    async with httpx.AsyncClient(timeout=10) as http:
        assert (await http.post(url, content=body)).status_code == 403
        assert (
            await http.post(url, content=body, headers={"X-ZEvent-Signature": wrong})
        ).status_code == 403
        forged_app = await http.post(
            url, content=other_body, headers={"X-ZEvent-Signature": other_sig}
        )
        assert forged_app.status_code == 403
        # Tampered after signing: the signature no longer matches.
        tampered = body.replace(b"/start", b"/help!")
        assert (
            await http.post(url, content=tampered, headers={"X-ZEvent-Signature": good})
        ).status_code == 403
        assert (
            await http.post(url, content=body, headers={"X-ZEvent-Signature": good})
        ).status_code == 200

    citizen = oa_citizen("minh")
    await citizen.say("menu", "Gửi tin báo")
    before = len(await citizen.messages())
    assert (await oa_http.post("/control/redeliver", json={})).json()["ok"]

    async def dropped() -> bool:
        return 'channel="zalo_oa",reason="repeat"' in (await serve.get("/metrics")).text

    await eventually("the repeat is dropped", dropped)
    await asyncio.sleep(0.3)
    assert len(await citizen.messages()) == before


async def test_bad_input_on_the_oa_gets_clear_answers(
    start_oa_serve: Callable[..., Any], oa_citizen: Callable[..., ZaloCitizen]
) -> None:
    await start_oa_serve()
    citizen = oa_citizen("nam")
    await citizen.send(sticker="st-1")
    await citizen.wait_for(lambda text: "xin lỗi" in text.lower())
    await citizen.say("9", "chọn")  # a number with no choices on screen
    await citizen.say("/start", "Gửi tin báo")
    await citizen.choose("Gửi tin báo", "Ma túy")
    await citizen.choose("Ma túy", "Không")
    await citizen.choose("Không")
    await citizen.say("kha cuu", "Khả Cửu")
    await citizen.choose(KHA_CUU)
    # A photo (re-encoded without its GPS), a PDF, a location and a 5,000-character text.
    await citizen.send(image=make_test_jpeg_with_gps())
    await citizen.wait_for("1 tệp")
    await citizen.send(file=("so-do.pdf", b"%PDF-1.4\n% tinbao test\n"))
    await citizen.wait_for("2 tệp")
    await citizen.send(location=(21.05, 105.2))
    await citizen.wait_for(lambda text: bool(text.strip()))
    await citizen.say("Rất dài. " * 560, "Xong")
    assert all(len(m.get("text") or "") <= 2000 for m in await citizen.messages())


async def test_expired_access_token_is_refreshed_once_across_two_instances(
    start_oa_serve: Callable[..., Any],
    oa_citizen: Callable[..., ZaloCitizen],
    oa_http: httpx.AsyncClient,
    zalo_oa: ZaloOaEmulator,
    processes: Processes,
) -> None:
    await start_oa_serve()
    second: Instance = await start_oa_serve(set_token=False, point_webhook=False)
    asked_before = zalo_oa.counters.get("refresh_requests", 0)
    refreshed_before = zalo_oa.counters.get("refreshed", 0)
    # Zalo answers -216 from now on; the first instance's refresh is held in flight...
    zalo_oa.expire_access_tokens()
    await oa_http.post("/control/hold", json={"hold": True})
    first_citizen, second_citizen = oa_citizen("o1"), oa_citizen("o2")
    await first_citizen.send(text="menu")

    async def asked() -> bool:
        return zalo_oa.counters.get("refresh_requests", 0) > asked_before

    await eventually("the first instance asks for a new token", asked)
    # ...while the second instance needs one too.
    await oa_http.post("/control/webhook", json={"url": second.url + "/zalo/oa/webhook"})
    await second_citizen.send(text="menu")
    await asyncio.sleep(1.0)  # the second instance finds the lease taken and waits
    await oa_http.post("/control/hold", json={"hold": False})
    await first_citizen.wait_for("Gửi tin báo")
    await second_citizen.wait_for("Gửi tin báo")
    assert zalo_oa.counters.get("refresh_requests", 0) - asked_before == 1
    assert zalo_oa.counters.get("refreshed", 0) - refreshed_before == 1
    status = tinbao_cli(processes, "zalo", "oa", "status", **oa_settings(zalo_oa))
    assert "state: ok" in status.stdout, status.stdout + status.stderr


async def test_a_refresh_cut_by_a_crash_loses_no_token(
    start_oa_serve: Callable[..., Any],
    oa_citizen: Callable[..., ZaloCitizen],
    oa_http: httpx.AsyncClient,
    zalo_oa: ZaloOaEmulator,
    processes: Processes,
) -> None:
    first: Instance = await start_oa_serve()
    asked_before = zalo_oa.counters.get("refresh_requests", 0)  # the operator's `token set`
    zalo_oa.expire_access_tokens()
    assert (await oa_http.post("/control/hold", json={"hold": True})).json()["ok"]
    citizen = oa_citizen("p")
    await citizen.send(text="menu")

    async def refresh_in_flight() -> bool:
        return zalo_oa.counters.get("refresh_requests", 0) > asked_before

    await eventually("the refresh request is in flight", refresh_in_flight)
    processes.kill(first.name)  # SIGKILL in the middle of the refresh
    await oa_http.post("/control/hold", json={"hold": False})
    second: Instance = await start_oa_serve(set_token=False)
    # The stored refresh token still works, once the dead instance's lease has run out.
    await citizen.say("menu", "Gửi tin báo", timeout=60)

    async def abandoned() -> bool:
        return zalo_oa.counters.get("refresh_abandoned", 0) == 1

    await eventually("the killed instance's request is seen abandoned", abandoned)
    assert zalo_oa.counters.get("refreshed", 0) == 2  # the operator's set, then second's
    del second

    # A refresh token Zalo refuses (used elsewhere, or lapsed) needs a person: it says so.
    zalo_oa.refresh_tokens.clear()
    zalo_oa.expire_access_tokens()
    await citizen.send(text="menu")
    settings = oa_settings(zalo_oa)

    async def reauthorize_shown() -> bool:
        shown = tinbao_cli(processes, "zalo", "oa", "status", **settings)
        return "state: reauthorize" in shown.stdout

    await eventually("status asks for re-authorization", reauthorize_shown)
    issued = (await oa_http.post("/control/tokens", json={})).json()["refresh_token"]
    done = tinbao_cli(processes, "zalo", "oa", "token", "set", issued, **settings)
    assert done.returncode == 0 and "state: ok" in done.stdout, done.stdout + done.stderr


async def test_an_oa_follower_checks_in_at_a_session_by_its_words(
    start_oa_serve: Callable[..., Any],
    oa_citizen: Callable[..., ZaloCitizen],
    database_url: str,
) -> None:
    await start_oa_serve()
    db = Database(database_url)
    now = datetime.now(UTC)
    async with db.session() as session:
        outreach = OutreachSession(
            commune_code=8635,  # Xã Khả Cửu
            place="Nhà văn hóa thôn Đông",
            title="Phòng, chống lừa đảo qua mạng",
            organiser="Công an xã Khả Cửu",
            starts_at=now,
            ends_at=now + timedelta(hours=2),
        )
        session.add(outreach)
        await session.commit()
        session_id = outreach.id
    citizen = oa_citizen("hoa", "Đinh Thị Hoa")
    await citizen.say(f"Tham dự {session_id}", "Bạn đã điểm danh")
    await citizen.say(f"tham du {session_id}", "rồi")  # a second time: counted once
    await citizen.choose("Nhận tin tuyên truyền", "Xong")  # the commune's news, topics next
    async with db.session() as session:
        check_ins = (await session.exec(select(SessionCheckIn))).all()
    await db.dispose()
    assert [(c.session_id, c.channel) for c in check_ins] == [(session_id, "zalo_oa")]
