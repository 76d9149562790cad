"""The broadcast service: parsing, cron, quiet hours, creation rules, state changes, reach."""

from __future__ import annotations

import io
from datetime import UTC, datetime, timedelta

import pytest
from PIL import Image
from sqlmodel import select

from bot.services import broadcasts as svc
from bot.services.anonymity import Keyring
from bot.services.broadcasts import BroadcastError
from storage.db import Database
from storage.models import Broadcast
from tests.conftest import FakeClock
from tests.scheduler.conftest import (
    BA_DINH,
    KHA_CUU,
    TZ,
    NewSubscriber,
    add_subscribers,
    local,
    spec,
)


def jpeg() -> bytes:
    """A small real JPEG."""
    buffer = io.BytesIO()
    Image.new("RGB", (8, 8), "red").save(buffer, "JPEG")
    return buffer.getvalue()


# -- parsing and cron -------------------------------------------------------------------------


def test_local_time_is_read_in_vietnam_and_returned_in_utc() -> None:
    assert svc.parse_local_time("22/11/2026 08:30", TZ) == datetime(2026, 11, 22, 1, 30, tzinfo=UTC)
    assert svc.parse_local_time(" 1/2/2027 7h05 ", TZ) == datetime(2027, 2, 1, 0, 5, tzinfo=UTC)


@pytest.mark.parametrize("text", ["", "22/11/2026", "31/02/2026 08:00", "22/11/2026 25:00", "x"])
def test_bad_local_times_are_refused(text: str) -> None:
    with pytest.raises(BroadcastError) as caught:
        svc.parse_local_time(text, TZ)
    assert caught.value.reason == "bad_time"


def test_cron_helpers() -> None:
    assert svc.cron_daily(8, 0) == "0 8 * * *"
    assert svc.cron_weekly(0, 19, 30) == "30 19 * * mon"
    assert svc.cron_weekly(6, 9, 0) == "0 9 * * sun"
    assert svc.cron_monthly(1, 8, 15) == "15 8 1 * *"
    for make in (lambda: svc.cron_daily(24, 0), lambda: svc.cron_weekly(7, 8, 0)):
        with pytest.raises(BroadcastError) as caught:
            make()
        assert caught.value.reason == "bad_cron"


def test_numeric_weekdays_follow_standard_cron() -> None:
    # Standard cron: 0 and 7 are Sunday, 1 is Monday; APScheduler 3 alone would read 0 as Monday.
    assert svc.validate_cron("0 8 * * 0") == "0 8 * * sun"
    assert svc.validate_cron("0 8 * * 7") == "0 8 * * sun"
    assert svc.validate_cron("0 8 * * 1-5") == "0 8 * * mon,tue,wed,thu,fri"
    assert svc.validate_cron("0 8 * * */2") == "0 8 * * sun,tue,thu,sat"
    assert svc.validate_cron("0 8 * * mon-fri") == "0 8 * * mon-fri"
    assert svc.validate_cron("0  8 * *  *") == "0 8 * * *"


@pytest.mark.parametrize(
    "expr",
    [
        "0 8 * *",  # four fields
        "* 8 * * *",  # every minute
        "*/5 8 * * *",  # every five minutes
        "0 8 30 2 *",  # never
        "0 8 1 * mon",  # day and weekday together
        "0 25 * * *",
        "0 8 * * fri-mon",
        "0 8 * * 1x",
    ],
)
def test_bad_cron_is_refused(expr: str) -> None:
    with pytest.raises(BroadcastError) as caught:
        svc.validate_cron(expr)
    assert caught.value.reason == "bad_cron"


def test_next_fire_reads_cron_in_local_time() -> None:
    daily = spec(trigger="cron", cron="0 8 * * *")
    assert svc.next_fire(daily, after=local(2026, 11, 22, 7, 0), tz=TZ) == local(2026, 11, 22, 8)
    # Strictly after: at 08:00 the next one is tomorrow's.
    assert svc.next_fire(daily, after=local(2026, 11, 22, 8), tz=TZ) == local(2026, 11, 23, 8)
    sunday = spec(trigger="cron", cron="0 8 * * 0")  # 22/11/2026 is a Sunday
    assert svc.next_fire(sunday, after=local(2026, 11, 22, 7), tz=TZ) == local(2026, 11, 22, 8)
    once = spec(trigger="once", run_at=local(2026, 11, 22, 9))
    assert svc.next_fire(once, after=local(2026, 11, 22, 8), tz=TZ) == local(2026, 11, 22, 9)
    assert svc.next_fire(once, after=local(2026, 11, 22, 9), tz=TZ) is None


def test_quiet_hours() -> None:
    assert svc.in_quiet_hours(local(2026, 11, 22, 21, 0), TZ)
    assert svc.in_quiet_hours(local(2026, 11, 22, 6, 59), TZ)
    assert not svc.in_quiet_hours(local(2026, 11, 22, 7, 0), TZ)
    assert not svc.in_quiet_hours(local(2026, 11, 22, 20, 59), TZ)
    assert svc.after_quiet_hours(local(2026, 11, 22, 23, 10), TZ) == local(2026, 11, 23, 7)
    assert svc.after_quiet_hours(local(2026, 11, 23, 2, 0), TZ) == local(2026, 11, 23, 7)
    assert svc.after_quiet_hours(local(2026, 11, 23, 9, 0), TZ) == local(2026, 11, 23, 9)
    assert not svc.in_quiet_hours(local(2026, 11, 22, 23), TZ, quiet=(0, 0))  # no quiet hours


# -- creation ----------------------------------------------------------------------------------


async def create(db: Database, now: datetime, **changes: object) -> Broadcast:
    """Create a broadcast from `spec(**changes)`."""
    async with db.session() as session:
        return await svc.create_broadcast(
            session, spec=spec(**changes), staff_id=None, now=now, tz=TZ
        )


async def refused(db: Database, now: datetime, **changes: object) -> str:
    """The reason a creation is refused."""
    with pytest.raises(BroadcastError) as caught:
        await create(db, now, **changes)
    return caught.value.reason


async def test_now_is_a_one_off_due_at_once(db: Database) -> None:
    now = local(2026, 11, 22, 10)
    broadcast = await create(db, now)
    assert (broadcast.trigger, broadcast.run_at, broadcast.next_run_at) == ("once", now, now)
    assert broadcast.status == "scheduled"


async def test_quiet_hours_refuse_non_urgent_one_offs(db: Database) -> None:
    night = local(2026, 11, 22, 22)
    assert await refused(db, night) == "quiet_hours"
    later = local(2026, 11, 22, 23, 30)
    assert await refused(db, local(2026, 11, 22, 10), trigger="once", run_at=later) == "quiet_hours"
    urgent = await create(db, night, urgent=True)
    assert urgent.next_run_at == night


async def test_a_repeating_broadcast_due_at_night_waits_for_morning(db: Database) -> None:
    broadcast = await create(db, local(2026, 11, 22, 10), trigger="cron", cron="30 22 * * *")
    assert broadcast.next_run_at == local(2026, 11, 23, 7)
    urgent = await create(
        db, local(2026, 11, 22, 10), trigger="cron", cron="30 22 * * *", urgent=True
    )
    assert urgent.next_run_at == local(2026, 11, 22, 22, 30)


async def test_creation_refusals(db: Database, topic_ids: tuple[str, str]) -> None:
    now = local(2026, 11, 22, 10)
    assert await refused(db, now, trigger="once", run_at=now - timedelta(minutes=5)) == "in_past"
    assert await refused(db, now, trigger="once", run_at=None) == "bad_time"
    assert await refused(db, now, trigger="cron", cron="* * * * *") == "bad_cron"
    assert await refused(db, now, text="  ") == "empty"
    assert await refused(db, now, text="x" * 4097) == "too_long"
    assert await refused(db, now, text="x" * 1025, photo=jpeg()) == "too_long"
    assert await refused(db, now, text="<b>unclosed") == "bad_html"
    assert await refused(db, now, photo=b"not an image") == "bad_photo"
    assert await refused(db, now, topic_id="no_such_topic") == "unknown_topic"
    assert await refused(db, now, audience="topic", audience_topic="nope") == "unknown_topic"
    assert await refused(db, now, audience="province", audience_code=99) == "bad_audience"
    assert await refused(db, now, audience="commune", audience_code=None) == "bad_audience"
    assert await refused(db, now, audience="everyone") == "bad_audience"
    # A minute-old "now" typed by hand is still accepted.
    late = await create(db, now, trigger="once", run_at=now - timedelta(seconds=50))
    assert late.next_run_at == now - timedelta(seconds=50)
    async with db.session() as session:
        assert len((await session.exec(select(Broadcast))).all()) == 1


async def test_topic_broadcast_renders_the_library_topic(
    db: Database, topic_ids: tuple[str, str]
) -> None:
    from bot.content.library import render_topic, topics

    broadcast = await create(db, local(2026, 11, 22, 10), text=None, topic_id=topic_ids[0])
    text, photo = svc.render(broadcast, "en")
    assert text == render_topic(topics()[topic_ids[0]], "en")
    assert photo is None
    own = await create(db, local(2026, 11, 22, 10), text="<i>Mời bà con đọc</i>", photo=jpeg())
    assert svc.render(own, "vi") == ("<i>Mời bà con đọc</i>", own.photo)


# -- state ----------------------------------------------------------------------------------------


async def test_pause_resume_cancel(db: Database) -> None:
    now = local(2026, 11, 22, 10)
    broadcast = await create(db, now, trigger="cron", cron="0 8 * * *")
    assert broadcast.id is not None
    assert broadcast.next_run_at == local(2026, 11, 23, 8)

    async def act(action: str, at: datetime) -> Broadcast:
        async with db.session() as session:
            assert broadcast.id is not None
            return await svc.set_state(session, broadcast_id=broadcast.id, action=action, now=at)

    assert (await act("pause", now)).status == "paused"
    with pytest.raises(BroadcastError) as caught:
        await act("pause", now)
    assert caught.value.reason == "bad_state"
    # Resumed three days later: the repeats missed while paused are skipped.
    resumed = await act("resume", local(2026, 11, 25, 9))
    assert (resumed.status, resumed.next_run_at) == ("scheduled", local(2026, 11, 26, 8))
    cancelled = await act("cancel", now)
    assert (cancelled.status, cancelled.next_run_at) == ("cancelled", None)
    for action in ("cancel", "resume", "pause"):
        with pytest.raises(BroadcastError) as caught:
            await act(action, now)
        assert caught.value.reason == "bad_state"
    async with db.session() as session:
        with pytest.raises(BroadcastError) as caught:
            await svc.set_state(session, broadcast_id=999, action="pause", now=now)
    assert caught.value.reason == "not_found"


async def test_a_one_off_paused_past_its_time_goes_out_on_resume(db: Database) -> None:
    broadcast = await create(
        db, local(2026, 11, 22, 10), trigger="once", run_at=local(2026, 11, 22, 12)
    )
    assert broadcast.id is not None
    async with db.session() as session:
        await svc.set_state(
            session, broadcast_id=broadcast.id, action="pause", now=local(2026, 11, 22, 11)
        )
    async with db.session() as session:
        resumed = await svc.set_state(
            session, broadcast_id=broadcast.id, action="resume", now=local(2026, 11, 22, 22)
        )
    # Resumed at night: it goes at 07:00, not now.
    assert (resumed.status, resumed.next_run_at) == ("scheduled", local(2026, 11, 23, 7))


# -- audience and reach -----------------------------------------------------------------------


async def test_audience_size(db: Database, keyring: Keyring, topic_ids: tuple[str, str]) -> None:
    drugs, traffic = topic_ids
    await add_subscribers(
        db,
        keyring,
        [
            NewSubscriber(KHA_CUU),
            NewSubscriber(KHA_CUU, topics=(drugs,)),
            NewSubscriber(KHA_CUU, topics=(traffic,)),
            NewSubscriber(BA_DINH, topics=(drugs, traffic)),
            NewSubscriber(BA_DINH, active=False),
        ],
    )

    async def size(**changes: object) -> int:
        async with db.session() as session:
            return await svc.audience_size(session, spec(**changes))

    assert await size() == 4
    assert await size(audience="province", audience_code=25) == 3
    assert await size(audience="commune", audience_code=BA_DINH) == 1
    assert await size(audience="topic", audience_topic=drugs) == 3  # chose it, or chose nothing
    assert await size(audience="commune", audience_code=KHA_CUU, topic_id=traffic) == 2
    assert await size(topic_id=drugs) == 3


async def test_list_and_reach_of_new_broadcasts(db: Database, clock: FakeClock) -> None:
    first = await create(db, local(2026, 11, 22, 10))
    second = await create(db, local(2026, 11, 22, 10), trigger="cron", cron="0 8 * * *")
    async with db.session() as session:
        listed = await svc.list_broadcasts(session)
        assert [r.broadcast.id for r in listed] == [second.id, first.id]
        assert (listed[0].runs, listed[0].planned, listed[0].sent) == (0, 0, 0)
        with pytest.raises(BroadcastError) as caught:
            await svc.reach(session, 12345)
        assert caught.value.reason == "not_found"


def test_a_preview_renders_like_the_broadcast(topic_ids: tuple[str, str]) -> None:
    preview = spec(text="<i>Mời bà con đọc</i>", topic_id=topic_ids[0])
    stored = Broadcast(text=preview.text, topic_id=preview.topic_id, audience="all", trigger="once")
    assert svc.render_spec(preview, "vi") == svc.render(stored, "vi")
    assert svc.render_spec(preview, "vi")[0].startswith("<i>Mời bà con đọc</i>\n\n<b>")
