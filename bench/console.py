"""The console's inbox list and search on many tips in one province: server-side page times.

    python -m bench.console --database-url postgresql+asyncpg://postgres@127.0.0.1/bench
    python -m bench.console --tips 20000                  # a temporary SQLite file

Loads `--tips` tips spread over every commune of Phú Thọ (a supervisor sees all of them, a
commune officer those of one commune), statuses and categories mixed, a tenth with the words
searched for, then asks the console app in-process (httpx's ASGI transport: no sockets, so the
figure is the server's work: guard, session row, query, template) for each page `--rounds`
times and prints the median and p95 per page. On PostgreSQL the schema `public` of the
database is DROPPED and recreated.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import re
import statistics
import tempfile
import time
from datetime import timedelta
from pathlib import Path

import httpx
import pyotp
from pydantic import SecretStr
from rich.console import Console
from rich.table import Table
from sqlalchemy import insert, text
from sqlmodel import col, select

from bench.broadcast import reset_database
from bot.app import build_services
from bot.services.anonymity import new_short_id
from bot.services.enrollment import create_invite
from storage.db import is_sqlite
from storage.models import Commune, Tip, TipStatus
from storage.text import fold
from storage.types import utcnow
from tinbao.runtime import prepare_database
from tinbao.settings import Settings
from web.accounts import open_account
from web.component import console_app, policy_from

PHU_THO = 25
KHA_CUU = 8635
CATEGORIES = ("drugs", "theft", "fraud", "gambling", "traffic", "public_order", "other")
STATUSES = (TipStatus.NEW, TipStatus.ACKNOWLEDGED, TipStatus.VERIFYING, TipStatus.CLOSED)
TEXTS = (
    "Có người lạ thường xuyên tụ tập ở bãi đất trống cuối thôn vào ban đêm.",
    "Nghi có đường dây cho vay nặng lãi hoạt động gần chợ trung tâm xã.",
    "Xe máy không biển số chạy tốc độ cao trên đường liên xã mỗi tối.",
)
NEEDLE = "Phát hiện nhóm đối tượng buôn bán ma túy tổng hợp tại khu nhà trọ gần cầu."
PAGES = {
    "list, next deadline first": "/tips",
    "list, not closed, urgent": "/tips?status=open&urgent=1",
    "list, newest, page 20": "/tips?sort=newest&page=20",
    "search 'ma tuy tong hop'": "/tips?q=ma+tuy+tong+hop",
    "search, no hit": "/tips?q=khong+co+dau",
    "search, all statuses, newest": "/tips?status=all&sort=newest&q=ma+tuy+tong+hop",
    "all statuses, next deadline": "/tips?status=all",
}
BATCH = 5_000


async def load_tips(settings: Settings, count: int) -> None:
    """`count` tips over the province's communes, committed in batches."""
    services = build_services(settings)
    rng = random.Random(7)
    now = utcnow()
    async with services.db.session() as session:
        in_province = select(col(Commune.code)).where(Commune.province_code == PHU_THO)
        codes = [int(code) for code in (await session.exec(in_province)).all()]
    rows = []
    seen: set[str] = set()
    for number in range(count):
        created = now - timedelta(minutes=rng.randrange(0, 365 * 24 * 60))
        body = NEEDLE if number % 10 == 0 else rng.choice(TEXTS)
        status = rng.choice(STATUSES)
        short_id = new_short_id()
        while short_id in seen:
            short_id = new_short_id()
        seen.add(short_id)
        rows.append(
            {
                "short_id": short_id,
                "receipt_hash": f"{number:064x}",
                "channel": "zalo_oa",
                "category": rng.choice(CATEGORIES),
                "urgent": number % 17 == 0,
                "commune_code": rng.choice(codes),
                "text": body,
                "search_text": fold(body),
                "status": status,
                "created_at": created,
                "ack_due_at": created + timedelta(hours=4),
                "close_due_at": created + timedelta(days=7),
                "closed_at": created + timedelta(days=3) if status == TipStatus.CLOSED else None,
                "ack_escalated": True,
                "close_escalated": True,
            }
        )
    async with services.db.engine.begin() as connection:
        for start in range(0, len(rows), BATCH):
            await connection.execute(insert(Tip), rows[start : start + BATCH])
    # What autovacuum does within a minute of a bulk load; without it the planner guesses.
    async with services.db.engine.connect() as connection:
        await connection.execute(text("ANALYZE"))
        await connection.commit()
    await services.db.dispose()


async def logged_in(client: httpx.AsyncClient, settings: Settings, role: str) -> None:
    """Open an account of `role` and log the client in (cookies kept by the client)."""
    services = build_services(settings)
    scope = {"commune_code": KHA_CUU} if role == "officer" else {"province_code": PHU_THO}
    async with services.db.session() as session:
        new = await create_invite(
            session,
            role=role,
            commune_code=scope.get("commune_code"),
            province_code=scope.get("province_code"),
            now=utcnow(),
        )
        await open_account(
            session,
            code=new.code,
            display_name=f"bench {role}",
            username=f"bench.{role}",
            password="bench-password-123",
            now=utcnow(),
            policy=policy_from(services),
        )
    await services.db.dispose()
    # The account is at the enrolment stage: enrol through the pages, as a person would.
    client.cookies.clear()
    join_page = await client.get("/console/login")
    assert join_page.status_code == 200
    login = await client.post(
        "/console/login",
        data={
            "csrf": _csrf(join_page.text),
            "username": f"bench.{role}",
            "password": "bench-password-123",
            "code": "",
        },
    )
    assert login.headers.get("location", "").endswith("/enroll"), login.text[:300]
    enroll = await client.get("/console/enroll")
    secret = re.search(r'id="totp-secret">([A-Z2-7]+)<', enroll.text)
    assert secret
    done = await client.post(
        "/console/enroll",
        data={"csrf": _csrf(enroll.text), "code": pyotp.TOTP(secret.group(1)).now()},
    )
    assert done.headers.get("location", "").endswith("/tips"), done.text[:300]


def _csrf(page: str) -> str:
    found = re.search(r'name="csrf" value="([^"]+)"', page)
    assert found
    return found.group(1)


async def measure(settings: Settings, rounds: int) -> dict[tuple[str, str], list[float]]:
    """Each page, as each reader, `rounds` times; milliseconds per request."""
    services = build_services(settings)
    app = console_app(services)
    times: dict[tuple[str, str], list[float]] = {}
    from starlette.applications import Starlette
    from starlette.routing import Mount

    host = Starlette(routes=[Mount("/console", app=app)])
    transport = httpx.ASGITransport(app=host)
    async with httpx.AsyncClient(transport=transport, base_url="http://bench") as client:
        for role in ("supervisor", "officer"):
            await logged_in(client, settings, role)
            for name, path in PAGES.items():
                first = await client.get("/console" + path)  # warm: plans, templates
                assert first.status_code == 200, (path, first.status_code, first.text[:300])
                samples = []
                for _ in range(rounds):
                    started = time.perf_counter()
                    answer = await client.get("/console" + path)
                    samples.append((time.perf_counter() - started) * 1000)
                    assert answer.status_code == 200
                times[(role, name)] = samples
    await services.db.dispose()
    return times


async def main() -> None:
    """Load, measure, print."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--database-url", default="")
    parser.add_argument("--tips", type=int, default=100_000)
    parser.add_argument("--rounds", type=int, default=40)
    args = parser.parse_args()
    url = args.database_url
    if not url:
        url = f"sqlite+aiosqlite:///{Path(tempfile.mkdtemp()) / 'bench.db'}"
        await prepare_database(url)
    elif not is_sqlite(url):
        await reset_database(url)
    settings = Settings(
        database_url=url,
        secret_key=SecretStr("bench-console-secret-0123456789abcdefghijklmnop"),
        bot_token=SecretStr(""),
        mode="dev",
    )
    console = Console()
    started = time.perf_counter()
    await load_tips(settings, args.tips)
    console.print(
        f"loaded {args.tips:,} tips in {time.perf_counter() - started:.1f} s ({url.split(':')[0]})"
    )
    times = await measure(settings, args.rounds)
    table = Table(
        title=f"console pages, {args.tips:,} tips in one province, {args.rounds} requests each"
    )
    for column in ("reader", "page", "median ms", "p95 ms", "max ms"):
        table.add_column(column)
    for (role, name), samples in times.items():
        ordered = sorted(samples)
        p95 = ordered[max(0, int(len(ordered) * 0.95) - 1)]
        table.add_row(
            role, name, f"{statistics.median(ordered):.1f}", f"{p95:.1f}", f"{ordered[-1]:.1f}"
        )
    console.print(table)


if __name__ == "__main__":
    asyncio.run(main())
