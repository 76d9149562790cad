"""Retention on a real database: what a purge removes, what it keeps, batches, the CLI."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, Coroutine
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlmodel import SQLModel, select
from sqlmodel.ext.asyncio.session import AsyncSession
from typer.testing import CliRunner

from bot.services import retention
from bot.services.reports import Period, Scope, build_report
from bot.services.retention import DueTip, PurgeReport
from storage.db import Database
from storage.models import (
    AuditEvent,
    Broadcast,
    BroadcastRun,
    Delivery,
    Inbox,
    InboxPost,
    OutboxMessage,
    Staff,
    Subscriber,
    Tip,
    TipAttachment,
    TipMessage,
    TipNote,
)
from storage.text import fold
from tests.conftest import FakeClock
from tests.services.test_reports import NOW, PERIOD, make_world, write_world
from tinbao.cli import app

KHA_CUU = 8635
DAYS = 90
SECRET = "SECRET Nguyễn Văn A bán hàng ở số 12 ngõ 3"
CHAT = -1001234
TABLES: tuple[type[SQLModel], ...] = (
    Tip,
    TipMessage,
    TipNote,
    TipAttachment,
    OutboxMessage,
    InboxPost,
    AuditEvent,
)
# The columns a report reads: a purge must leave every one of them as it was.
STATISTICS = (
    "short_id",
    "receipt_hash",
    "channel",
    "category",
    "urgent",
    "commune_code",
    "status",
    "created_at",
    "inbox_id",
    "route_level",
    "valuable",
    "acknowledged_at",
    "closed_at",
    "close_reason",
    "ack_due_at",
    "close_due_at",
    "ack_escalated",
    "close_escalated",
    "escalated_at",
)


async def _people(session: AsyncSession) -> tuple[int, int]:
    """An officer and the commune inbox (notes and posts point at them)."""
    staff = Staff(
        platform_user_id="7001", display_name="Hoàng Minh Khôi", role="officer", commune_code=8635
    )
    inbox = Inbox(chat_id=CHAT, scope="commune", commune_code=KHA_CUU, title="CA xã Khả Cửu")
    session.add(staff)
    session.add(inbox)
    await session.flush()
    assert staff.id is not None and inbox.id is not None
    return staff.id, inbox.id


async def add_tip(
    session: AsyncSession,
    number: int,
    *,
    created: datetime,
    closed: datetime | None,
    staff_id: int,
    inbox_id: int,
) -> int:
    """A tip with everything a tip can carry: thread, note, file, outbox rows, inbox posts."""
    tip = Tip(
        short_id=f"T-R{number:04d}",
        receipt_hash=f"receipt-{number}",
        channel="telegram",
        category="drugs",
        urgent=number % 2 == 0,
        commune_code=KHA_CUU,
        text=SECRET,
        search_text=fold(SECRET),
        location_lat=21.03,
        location_lon=105.85,
        status="closed" if closed else "acknowledged",
        created_at=created,
        reply_route=b"sealed-route",
        inbox_id=inbox_id,
        route_level="commune",
        valuable=True,
        acknowledged_at=created + timedelta(hours=1),
        closed_at=closed,
        close_reason="done" if closed else None,
        ack_due_at=created + timedelta(hours=2),
        close_due_at=created + timedelta(days=20),
    )
    session.add(tip)
    await session.flush()
    assert tip.id is not None
    later = created + timedelta(hours=3)
    session.add_all(
        [
            TipMessage(tip_id=tip.id, author="police", text=f"police: {SECRET}", created_at=later),
            TipMessage(
                tip_id=tip.id,
                author="citizen",
                text=f"citizen: {SECRET}",
                attachment_count=1,
                created_at=later + timedelta(minutes=5),
            ),
            TipNote(tip_id=tip.id, staff_id=staff_id, text=f"note: {SECRET}", created_at=later),
            TipAttachment(
                tip_id=tip.id,
                kind="photo",
                mime_type="image/jpeg",
                filename="nha-so-12.jpg",
                size=1234,
                content=b"\xff\xd8" + b"x" * 1232,
                note="not re-encoded",
                created_at=created,
            ),
            AuditEvent(
                tip_id=tip.id,
                actor="Hoàng Minh Khôi (#1)",
                action="reply",
                after={"chars": 40},
                created_at=later,
            ),
        ]
    )
    card = {"text": f"card: {SECRET}"}
    for status, route in (
        ("sent", None),  # the card
        ("dead", None),  # a card edit to a broken inbox
        ("pending", b"sealed-route"),  # a reply still queued to the tipster
        ("held", b"sealed-route"),  # waiting for Zalo's window
        ("sending", None),  # claimed by the sender right now: left for the next run
    ):
        session.add(
            OutboxMessage(
                kind="tipster" if route else "text",
                tip_id=tip.id,
                inbox_id=None if route else inbox_id,
                chat_id=None if route else CHAT,
                route=route,
                payload=card,
                status=status,
                sent_at=later if status == "sent" else None,
                created_at=later,
            )
        )
    for offset, kind in enumerate(("card", "citizen", "file", "prompt")):
        session.add(
            InboxPost(
                inbox_id=inbox_id,
                chat_id=CHAT,
                message_id=number * 10 + offset,
                tip_id=tip.id,
                kind=kind,
                created_at=later,
            )
        )
    return tip.id


def _alert(sent: datetime | None, created: datetime, status: str) -> OutboxMessage:
    """An outbox row with no tip (an alert to a supervisor)."""
    return OutboxMessage(
        kind="alert",
        chat_id=555,
        payload={"text": "inbox broken"},
        status=status,
        sent_at=sent,
        created_at=created,
    )


async def snapshot(db: Database) -> dict[str, list[dict[str, Any]]]:
    """Every row of the tables a purge touches, as plain dicts."""
    found: dict[str, list[dict[str, Any]]] = {}
    async with db.session() as session:
        for table in TABLES:
            rows = (await session.exec(select(table))).all()
            found[table.__name__] = sorted(
                (row.model_dump() for row in rows), key=lambda row: int(row.get("id") or 0)
            )
    return found


async def _tip(db: Database, tip_id: int) -> dict[str, list[dict[str, Any]]]:
    """One tip's rows in every table, from a snapshot."""
    return {
        name: [
            row for row in rows if (row.get("tip_id") if name != "Tip" else row.get("id")) == tip_id
        ]
        for name, rows in (await snapshot(db)).items()
    }


@pytest.fixture
async def three(db: Database, clock: FakeClock) -> dict[str, int]:
    """A tip closed DAYS+1 days ago, one closed DAYS-1 days ago, an open one, and alerts."""
    now = clock.now
    async with db.session() as session:
        staff_id, inbox_id = await _people(session)
        ids = {
            "old": await add_tip(
                session,
                1,
                created=now - timedelta(days=DAYS + 20),
                closed=now - timedelta(days=DAYS + 1),
                staff_id=staff_id,
                inbox_id=inbox_id,
            ),
            "recent": await add_tip(
                session,
                2,
                created=now - timedelta(days=DAYS + 20),
                closed=now - timedelta(days=DAYS - 1),
                staff_id=staff_id,
                inbox_id=inbox_id,
            ),
            "open": await add_tip(
                session,
                3,
                created=now - timedelta(days=DAYS + 30),
                closed=None,
                staff_id=staff_id,
                inbox_id=inbox_id,
            ),
        }
        old = now - timedelta(days=DAYS + 1)
        session.add_all(
            [
                _alert(old, old - timedelta(minutes=1), "sent"),  # goes
                _alert(None, old, "dead"),  # goes
                _alert(now - timedelta(days=1), old, "sent"),  # sent recently: stays
                _alert(None, old, "pending"),  # not finished: stays
            ]
        )
        await session.commit()
    return ids


async def _purge(db: Database, clock: FakeClock, **options: Any) -> PurgeReport:
    """One purge at the fake clock's time."""
    async with db.session() as session:
        return await retention.purge(session, now=clock.now, days=DAYS, **options)


EXPECTED = PurgeReport(
    tips=1,
    routes=1,
    attachments=1,
    attachment_bytes=1234,
    texts=1,
    locations=1,
    messages=2,
    notes=1,
    outbox=4 + 2,  # the tip's rows but the one in flight, and two finished alerts
    inbox_posts=3,  # all but the card's
    listed=(DueTip("T-R0001", KHA_CUU, FakeClock().now - timedelta(days=DAYS + 1)),),
)


async def test_a_tip_closed_past_retention_loses_its_content_and_keeps_its_figures(
    db: Database, clock: FakeClock, three: dict[str, int]
) -> None:
    before = {name: await _tip(db, tip_id) for name, tip_id in three.items()}
    report = await _purge(db, clock, dry_run=False)
    assert report == EXPECTED
    after = {name: await _tip(db, tip_id) for name, tip_id in three.items()}
    for name in ("recent", "open"):
        assert after[name] == before[name], f"the {name} tip keeps everything"

    old, was = after["old"], before["old"]
    (tip,) = old["Tip"]
    assert {key: tip[key] for key in STATISTICS} == {key: was["Tip"][0][key] for key in STATISTICS}
    assert (tip["text"], tip["search_text"]) == ("", "")
    assert (tip["location_lat"], tip["location_lon"], tip["reply_route"]) == (None, None, None)
    assert tip["purged_at"] == clock.now
    # The thread's rows stay for the reports (who wrote, when, how many files), without text.
    assert [
        (m["author"], m["created_at"], m["attachment_count"], m["text"]) for m in old["TipMessage"]
    ] == [(m["author"], m["created_at"], m["attachment_count"], "") for m in was["TipMessage"]]
    assert old["TipNote"] == []
    (file,) = old["TipAttachment"]
    assert (file["content"], file["filename"], file["note"]) == (None, None, None)
    assert (file["kind"], file["size"], file["mime_type"]) == ("photo", 1234, "image/jpeg")
    assert [row["status"] for row in old["OutboxMessage"]] == ["sending"]
    assert [post["kind"] for post in old["InboxPost"]] == ["card"]
    assert [event["action"] for event in old["AuditEvent"]] == ["reply", "purge"]

    everything = await snapshot(db)
    alerts = [row for row in everything["OutboxMessage"] if row["tip_id"] is None]
    assert sorted(row["status"] for row in alerts) == ["pending", "sent"]
    assert all(
        row["sent_at"] is None or row["sent_at"] > clock.now - timedelta(days=DAYS)
        for row in alerts
    )
    # Nothing the citizen typed is left on the old tip, the audit trail included (but the row
    # in flight, which the sender still owns; the next run takes it).
    old["OutboxMessage"] = []
    dumped = json.dumps(old, default=str, ensure_ascii=False)
    assert SECRET not in dumped and fold(SECRET) not in dumped
    audit_text = json.dumps(everything["AuditEvent"], default=str, ensure_ascii=False)
    assert SECRET not in audit_text


async def test_a_dry_run_changes_nothing_and_counts_what_the_run_removes(
    db: Database, clock: FakeClock, three: dict[str, int]
) -> None:
    before = await snapshot(db)
    dry = await _purge(db, clock, dry_run=True)
    assert await snapshot(db) == before
    assert dry == EXPECTED
    assert await _purge(db, clock, dry_run=False) == dry
    assert await _purge(db, clock, dry_run=True) == PurgeReport()
    assert await _purge(db, clock, dry_run=False) == PurgeReport(), "a second run removes nothing"


async def test_content_added_after_a_purge_is_purged_by_the_next_run(
    db: Database, clock: FakeClock, three: dict[str, int]
) -> None:
    await _purge(db, clock, dry_run=False)
    async with db.session() as session:
        # A receipt holder's /add on the closed tip, threaded under the card by the sender.
        session.add(TipMessage(tip_id=three["old"], author="citizen", text=SECRET))
        old_tip = await session.get(Tip, three["old"])
        assert old_tip is not None and old_tip.inbox_id is not None
        session.add(
            InboxPost(
                inbox_id=old_tip.inbox_id,
                chat_id=CHAT,
                message_id=999,
                tip_id=three["old"],
                kind="citizen",
            )
        )
        # A tip purged by an older version: route and files gone, its text kept.
        tip = await session.get(Tip, three["recent"])
        assert tip is not None
        tip.closed_at = clock.now - timedelta(days=DAYS + 2)
        tip.purged_at = clock.now - timedelta(days=1)
        session.add(tip)
        await session.commit()
    clock.advance(days=1)
    report = await _purge(db, clock, dry_run=False)
    assert (report.tips, report.messages, report.inbox_posts, report.texts) == (2, 3, 4, 1)
    old = await _tip(db, three["old"])
    assert old["Tip"][0]["purged_at"] == clock.now - timedelta(days=1), "the first purge's date"
    assert all(message["text"] == "" for message in old["TipMessage"])
    assert await _purge(db, clock, dry_run=False) == PurgeReport()


async def test_reports_are_the_same_before_and_after_the_purge(db: Database) -> None:
    await write_world(db, make_world())
    scopes = (Scope.everywhere(), Scope.commune(KHA_CUU), Scope.province(25))

    async def reports() -> list[Any]:
        async with db.session() as session:
            return [
                await build_report(session, scope=scope, period=PERIOD, now=NOW) for scope in scopes
            ]

    before = await reports()
    async with db.session() as session:
        # Ten days: most of the world's closed tips are due, their threads included.
        done = await retention.purge(session, now=NOW, days=10, dry_run=False, batch_size=7)
    assert done.tips > 20 and done.messages > 10 and done.texts == done.tips
    assert before[0].police_replies and before[0].citizen_answers
    assert await reports() == before


async def test_batches_purge_every_due_tip_one_transaction_each(
    db: Database, clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(retention, "LISTED", 4)
    async with db.session() as session:
        staff_id, inbox_id = await _people(session)
        for number in range(1, 10):
            await add_tip(
                session,
                number,
                created=clock.now - timedelta(days=200),
                closed=clock.now - timedelta(days=DAYS + number),
                staff_id=staff_id,
                inbox_id=inbox_id,
            )
        await session.commit()
    async with db.session() as session:
        commits = 0
        real_commit = session.commit

        async def counted() -> None:
            nonlocal commits
            commits += 1
            await real_commit()

        monkeypatch.setattr(session, "commit", counted)
        report = await retention.purge(
            session, now=clock.now, days=DAYS, dry_run=False, batch_size=3
        )
    assert (report.tips, report.texts, report.notes, report.messages) == (9, 9, 9, 18)
    assert commits == 3, "three batches of three, one transaction each"
    assert [tip.short_id for tip in report.listed] == ["T-R0001", "T-R0002", "T-R0003", "T-R0004"]
    rows = await snapshot(db)
    assert all(tip["text"] == "" and tip["purged_at"] for tip in rows["Tip"])
    assert rows["TipNote"] == []
    with pytest.raises(ValueError):
        await _purge(db, clock, dry_run=False, batch_size=0)


def _cli(database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> CliRunner:
    """A CLI runner whose settings point at the test database."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("TINBAO_DATABASE_URL", database_url)
    monkeypatch.setenv("TINBAO_SECRET_KEY", "secret-r-long-enough-for-tests-0123456789-abcdefghij")
    monkeypatch.setenv("TINBAO_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("TINBAO_RETENTION_DAYS", str(DAYS))
    monkeypatch.setenv("COLUMNS", "200")  # rich tables on one line each
    return CliRunner()


def _run(work: Callable[[], Coroutine[Any, Any, Any]]) -> Any:
    """Run a coroutine from a synchronous test (the CLI runs its own event loop)."""
    return asyncio.run(work())


def test_the_cli_dry_run_lists_due_tips_and_counts_without_content(
    database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    runner = _cli(database_url, tmp_path, monkeypatch)
    real_now = datetime.now(UTC)

    async def seed() -> None:
        db = Database(database_url)
        try:
            async with db.session() as session:
                staff_id, inbox_id = await _people(session)
                for number, days_closed in ((1, DAYS + 5), (2, DAYS + 1), (3, DAYS - 5)):
                    await add_tip(
                        session,
                        number,
                        created=real_now - timedelta(days=200),
                        closed=real_now - timedelta(days=days_closed),
                        staff_id=staff_id,
                        inbox_id=inbox_id,
                    )
                await session.commit()
        finally:
            await db.dispose()

    async def rows() -> dict[str, list[dict[str, Any]]]:
        db = Database(database_url)
        try:
            return await snapshot(db)
        finally:
            await db.dispose()

    _run(seed)
    before = _run(rows)
    dry = runner.invoke(app, ["purge", "--dry-run"])
    assert dry.exit_code == 0, dry.output
    assert _run(rows) == before, "a dry run changes nothing"
    assert "would remove" in dry.output and "T-R0001" in dry.output and "T-R0002" in dry.output
    assert "T-R0003" not in dry.output, "closed within the retention period"
    assert str(KHA_CUU) in dry.output
    lines = {
        line.split("│")[1].strip(): line.split("│")[2].strip()
        for line in dry.output.splitlines()
        if line.count("│") == 3
    }
    assert lines["tips"] == "2" and lines["thread message texts"] == "4"
    assert lines["file bytes"] == "2,468" and lines["inbox posts"] == "6"
    assert SECRET not in dry.output and "SECRET" not in dry.output
    done = runner.invoke(app, ["purge"])
    assert done.exit_code == 0, done.output
    assert "removed" in done.output and "T-R0001" not in done.output
    assert "2,468" in done.output
    tips = {tip["short_id"]: tip for tip in _run(rows)["Tip"]}
    assert tips["T-R0001"]["text"] == "" and tips["T-R0003"]["text"] == SECRET
    again = runner.invoke(app, ["purge", "--dry-run"])
    assert "T-R000" not in again.output


def test_the_tables_a_purge_touches_are_all_listed() -> None:
    # A new table with a tip_id must be looked at here (content? figures?) before it ships.
    with_tip = {
        table.name for table in SQLModel.metadata.tables.values() if "tip_id" in table.columns
    }
    assert with_tip == {str(t.__tablename__) for t in TABLES if t is not Tip}, with_tip


async def test_finished_broadcast_runs_lose_their_delivery_rows_and_keep_their_counts(
    db: Database,
) -> None:
    finished = NOW - timedelta(days=11)
    async with db.session() as session:
        subscribers = [
            Subscriber(
                key=f"retention-sub-{n}",
                channel="telegram",
                route=b"x",
                commune_code=KHA_CUU,
                province_code=25,
                created_at=NOW - timedelta(days=60),
            )
            for n in range(6)
        ]
        session.add_all(subscribers)
        runs = []
        for number, (when, done_at) in enumerate(((finished, finished), (NOW, None))):
            broadcast = Broadcast(audience="all", trigger="once", text="x", status="done")
            session.add(broadcast)
            await session.flush()
            run = BroadcastRun(
                broadcast_id=broadcast.id or 0,
                scheduled_for=when,
                status="done" if done_at else "sending",
                planned=3,
                finished_at=done_at,
            )
            session.add(run)
            await session.flush()
            runs.append(run)
            for index, status in ((0, "sent"), (1, "sent"), (2, "failed")):
                subscriber = subscribers[number * 3 + index]
                await session.flush()
                session.add(
                    Delivery(run_id=run.id or 0, subscriber_id=subscriber.id or 0, status=status)
                )
        await session.commit()
    period = Period((NOW - timedelta(days=30)).date(), NOW.date())

    async def figures() -> tuple[int, int, int]:
        async with db.session() as session:
            report = await build_report(session, scope=Scope.everywhere(), period=period, now=NOW)
        return report.broadcast_runs, report.deliveries_sent, report.people_reached

    before = await figures()
    async with db.session() as session:
        planned = await retention.purge(session, now=NOW, days=10, dry_run=True)
        done = await retention.purge(session, now=NOW, days=10, dry_run=False)
        again = await retention.purge(session, now=NOW, days=10, dry_run=False)
    assert planned.deliveries == done.deliveries == 3 and again.deliveries == 0
    async with db.session() as session:
        left = (await session.exec(select(Delivery.run_id))).all()
        counts = {
            run.id: run.sent_count for run in (await session.exec(select(BroadcastRun))).all()
        }
    assert set(left) == {runs[1].id}, "the run still sending keeps its rows"
    assert counts == {runs[0].id: 2, runs[1].id: None}
    assert await figures() == before == (2, 4, 4)
