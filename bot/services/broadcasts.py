"""Broadcasts: what outreach staff schedule, for whom and when; messenger-agnostic rules.

The broadcast row is the schedule (DESIGN principle 2): `next_run_at` is the next time it goes
out, already moved out of quiet hours. The leader (scheduler/broadcasts.py) fires due rows and
plans one delivery row per recipient; scheduler/delivery.py sends them.
"""

from __future__ import annotations

import dataclasses
import html
import importlib
import io
import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from types import ModuleType
from typing import Any, Protocol
from zoneinfo import ZoneInfo

from apscheduler.triggers.cron import CronTrigger
from sqlalchemy import ColumnElement, exists, func, or_, true, update
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from storage.models import (
    Broadcast,
    BroadcastRun,
    Commune,
    Delivery,
    Province,
    Subscriber,
    SubscriptionTopic,
)

REASONS = (
    "quiet_hours",  # a non-urgent one-off would go out between 21:00 and 07:00
    "in_past",  # a one-off time that has already passed
    "bad_cron",  # not a valid 5-field cron, never fires, or fires more than hourly
    "bad_time",  # not "dd/MM/yyyy HH:mm", or a one-off without a time
    "empty",  # no text, no topic and no photo
    "too_long",  # over Telegram's 4096 characters (1024 under a photo), or a photo over 10 MB
    "bad_html",  # text that Telegram's HTML parser would refuse
    "bad_photo",  # bytes that are not an image
    "bad_audience",  # unknown audience kind, or a province/commune code that does not exist
    "unknown_topic",  # a topic id that is not in the library
    "not_found",  # no broadcast with that id
    "bad_state",  # pause/resume/cancel that does not apply to the broadcast's state
    "not_allowed",  # outside the staff member's scope, or urgent without the right to it
)
TRIGGERS = ("now", "once", "cron")
AUDIENCES = ("all", "province", "commune", "topic")
ACTIONS = ("pause", "resume", "cancel")
DEFAULT_QUIET = (21, 7)
TEXT_LIMIT = 4096
CAPTION_LIMIT = 1024
PHOTO_LIMIT = 10 * 1024 * 1024  # Telegram's limit for a photo upload
# A one-off typed for "this minute" is already up to 59 s old when it arrives.
PAST_GRACE = timedelta(minutes=1)
LOCAL_TIME_FORMAT = "%d/%m/%Y %H:%M"
WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
# Standard cron counts weekdays from Sunday (0 and 7); APScheduler 3 counts from Monday (0).
# Stored expressions name the days, so both readings agree.
_CRON_DOW_NAMES = ("sun", "mon", "tue", "wed", "thu", "fri", "sat", "sun")
_LOCAL_TIME = re.compile(r"^\s*(\d{1,2})/(\d{1,2})/(\d{4})\s+(\d{1,2})[:hH](\d{2})\s*$")
_TAG = re.compile(r"<[^>]*>")


class BroadcastStatus:
    """Values of `Broadcast.status`."""

    SCHEDULED = "scheduled"  # has a next run (`next_run_at`)
    PAUSED = "paused"  # no new runs; its runs in progress stop sending
    CANCELLED = "cancelled"  # for good; unsent deliveries are cancelled
    FINISHED = "finished"  # a one-off that has fired (its run may still be sending)


class RunStatus:
    """Values of `BroadcastRun.status`."""

    PLANNING = "planning"
    SENDING = "sending"
    DONE = "done"


class DeliveryStatus:
    """Values of `Delivery.status`."""

    PENDING = "pending"
    SENDING = "sending"
    SENT = "sent"
    FAILED = "failed"
    BLOCKED = "blocked"
    CANCELLED = "cancelled"
    REFUSED = "refused"  # the platform's rule for this person (Zalo OA: one a day per user)


class BroadcastError(Exception):
    """A broadcast request the rules refuse; `reason` is one of REASONS."""

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason
        self.detail = detail


@dataclass(frozen=True)
class BroadcastSpec:
    """What staff asked for; `trigger` is "now", "once" (run_at, UTC) or "cron" (local)."""

    topic_id: str | None
    text: str | None
    photo: bytes | None
    audience: str
    audience_code: int | None
    audience_topic: str | None
    trigger: str
    run_at: datetime | None
    cron: str | None
    urgent: bool = False


@dataclass(frozen=True)
class BroadcastReach:
    """A broadcast with the fate of its deliveries over all its runs."""

    broadcast: Broadcast
    runs: int
    planned: int
    pending: int  # pending or being sent
    sent: int
    failed: int
    blocked: int
    cancelled: int = 0
    refused: int = 0


class _Scheduled(Protocol):
    """What next_fire needs: a Broadcast row or a BroadcastSpec."""

    @property
    def trigger(self) -> str:
        """The trigger: now, once or cron."""

    @property
    def run_at(self) -> datetime | None:
        """A one-off's time (UTC)."""

    @property
    def cron(self) -> str | None:
        """A repeating schedule, local time."""

    @property
    def urgent(self) -> bool:
        """Whether quiet hours are ignored."""


# -- times -------------------------------------------------------------------------------------


def parse_local_time(text: str, tz: str) -> datetime:
    """Read "dd/MM/yyyy HH:mm" in local time `tz`; return an aware UTC datetime."""
    match = _LOCAL_TIME.match(text)
    if match is None:
        raise BroadcastError("bad_time", "expected dd/MM/yyyy HH:mm")
    day, month, year, hour, minute = (int(part) for part in match.groups())
    try:
        local = datetime(year, month, day, hour, minute, tzinfo=ZoneInfo(tz))
    except ValueError as error:
        raise BroadcastError("bad_time", str(error)) from error
    return local.astimezone(UTC)


def in_quiet_hours(moment: datetime, tz: str, quiet: tuple[int, int] = DEFAULT_QUIET) -> bool:
    """Tell whether `moment` falls in quiet hours [start, end) local time."""
    start, end = quiet
    hour = moment.astimezone(ZoneInfo(tz)).hour
    if start == end:
        return False
    if start > end:  # the usual case: the quiet night wraps midnight
        return hour >= start or hour < end
    return start <= hour < end


def after_quiet_hours(
    moment: datetime, tz: str, quiet: tuple[int, int] = DEFAULT_QUIET
) -> datetime:
    """Return `moment`, or the end of the quiet hours it falls in (UTC)."""
    if not in_quiet_hours(moment, tz, quiet):
        return moment
    local = moment.astimezone(ZoneInfo(tz))
    end = local.replace(hour=quiet[1], minute=0, second=0, microsecond=0)
    if end <= local:
        end += timedelta(days=1)
    return end.astimezone(UTC)


# -- cron ---------------------------------------------------------------------------------------


def _check_time(hour: int, minute: int) -> None:
    """Refuse an impossible hour or minute."""
    if not (0 <= hour <= 23 and 0 <= minute <= 59):
        raise BroadcastError("bad_cron", f"no such time {hour}:{minute:02d}")


def cron_daily(hour: int, minute: int) -> str:
    """Every day at hour:minute local time."""
    _check_time(hour, minute)
    return f"{minute} {hour} * * *"


def cron_weekly(weekday: int, hour: int, minute: int) -> str:
    """Every week on `weekday` (0 = Monday) at hour:minute local time."""
    _check_time(hour, minute)
    if not 0 <= weekday <= 6:
        raise BroadcastError("bad_cron", f"no such weekday {weekday}")
    return f"{minute} {hour} * * {WEEKDAYS[weekday]}"


def cron_monthly(day: int, hour: int, minute: int) -> str:
    """Every month on `day` at hour:minute local time (months without that day are skipped)."""
    _check_time(hour, minute)
    if not 1 <= day <= 31:
        raise BroadcastError("bad_cron", f"no such day of the month {day}")
    return f"{minute} {hour} {day} * *"


def _weekday_names(field: str) -> str:
    """Rewrite numeric weekdays (standard cron: 0 and 7 = Sunday) as names."""
    names: list[str] = []
    for item in field.lower().split(","):
        base, slash, step_text = item.partition("/")
        if base == "*" and not slash:
            return "*"
        if base != "*" and not re.fullmatch(r"\d+(-\d+)?", base):
            if any(char.isdigit() for char in base):
                raise BroadcastError("bad_cron", f"mixed weekday {item!r}")
            names.append(item)  # names ("mon", "mon-fri") mean the same to both readings
            continue
        if slash and not step_text.isdigit():
            raise BroadcastError("bad_cron", f"bad step in {item!r}")
        if base == "*":
            first, last = 0, 6
        else:
            first_text, _, last_text = base.partition("-")
            first = int(first_text)
            last = int(last_text) if last_text else (6 if slash else first)
        step = int(step_text) if slash else 1
        if not 0 <= first <= last <= 7 or step < 1:
            raise BroadcastError("bad_cron", f"bad weekday {item!r}")
        for number in range(first, last + 1, step):
            if _CRON_DOW_NAMES[number] not in names:
                names.append(_CRON_DOW_NAMES[number])
    return ",".join(names)


def validate_cron(expr: str) -> str:
    """Check a 5-field cron expression (local time) and return it normalised.

    Numeric weekdays are rewritten as names (standard cron counts from Sunday, APScheduler 3 from
    Monday). Refused: day-of-month together with weekday (cron ORs them, APScheduler ANDs them),
    a minute that is not a single number (more than one broadcast an hour), and expressions that
    never fire.
    """
    fields = expr.split()
    if len(fields) != 5:
        raise BroadcastError("bad_cron", "a cron expression has 5 fields: min hour day month dow")
    minute, hour, day, month, weekday = fields
    if not minute.isdigit():
        raise BroadcastError("bad_cron", "the minute must be one number (at most hourly)")
    if day != "*" and weekday != "*":
        raise BroadcastError("bad_cron", "give a day of the month or a weekday, not both")
    normalized = " ".join((minute, hour, day, month, _weekday_names(weekday)))
    try:
        trigger = CronTrigger.from_crontab(normalized, timezone=UTC)
    except ValueError as error:
        raise BroadcastError("bad_cron", str(error)) from error
    # Some valid expressions never fire (31 February); 29 February does, every four years.
    if trigger.get_next_fire_time(None, datetime(2000, 1, 1, tzinfo=UTC)) is None:
        raise BroadcastError("bad_cron", "this expression never fires")
    return normalized


def next_fire(item: _Scheduled, *, after: datetime, tz: str) -> datetime | None:
    """The first time strictly after `after` the schedule names (UTC); quiet hours not applied."""
    if item.trigger == "cron":
        trigger = CronTrigger.from_crontab(validate_cron(item.cron or ""), timezone=ZoneInfo(tz))
        # APScheduler answers "at or after"; a microsecond later makes it "strictly after".
        found = trigger.get_next_fire_time(None, after + timedelta(microseconds=1))
        return found.astimezone(UTC) if found is not None else None
    if item.trigger == "once" and item.run_at is not None:
        return item.run_at if item.run_at > after else None
    return None


def planned_time(
    item: _Scheduled, *, after: datetime, tz: str, quiet: tuple[int, int] = DEFAULT_QUIET
) -> datetime | None:
    """The next run after `after`, moved out of quiet hours unless urgent (UTC)."""
    found = next_fire(item, after=after, tz=tz)
    if found is None or item.urgent:
        return found
    return after_quiet_hours(found, tz, quiet)


# -- audience -------------------------------------------------------------------------------------


def audience_filter(
    *, audience: str, audience_code: int | None, audience_topic: str | None, topic_id: str | None
) -> list[ColumnElement[bool]]:
    """Conditions on Subscriber selecting a broadcast's recipients (active ones only)."""
    conditions: list[ColumnElement[bool]] = [col(Subscriber.active) == true()]
    if audience == "province":
        conditions.append(col(Subscriber.province_code) == audience_code)
    elif audience == "commune":
        conditions.append(col(Subscriber.commune_code) == audience_code)
    elif audience != "all" and audience != "topic":
        raise BroadcastError("bad_audience", audience)
    # A subscriber who chose topics gets only those; one who chose none gets everything.
    topic = audience_topic if audience == "topic" else topic_id
    if topic:
        chosen = select(SubscriptionTopic.subscriber_id).where(
            col(SubscriptionTopic.subscriber_id) == col(Subscriber.id)
        )
        conditions.append(
            or_(~exists(chosen), exists(chosen.where(col(SubscriptionTopic.topic_id) == topic)))
        )
    return conditions


def broadcast_audience(broadcast: Broadcast) -> list[ColumnElement[bool]]:
    """The recipients of a stored broadcast."""
    return audience_filter(
        audience=broadcast.audience,
        audience_code=broadcast.audience_code,
        audience_topic=broadcast.audience_topic,
        topic_id=broadcast.topic_id,
    )


async def audience_size(session: AsyncSession, spec: BroadcastSpec) -> int:
    """How many active subscribers a broadcast would reach now."""
    conditions = audience_filter(
        audience=spec.audience,
        audience_code=spec.audience_code,
        audience_topic=spec.audience_topic,
        topic_id=spec.topic_id,
    )
    statement = select(func.count()).select_from(Subscriber).where(*conditions)
    return int((await session.exec(statement)).one())


# -- content --------------------------------------------------------------------------------------


def _library() -> ModuleType:
    """The topic library, imported when first needed; a clear error while it is missing."""
    try:
        return importlib.import_module("bot.content.library")
    except ModuleNotFoundError as error:
        if error.name not in ("bot.content.library", "bot.content"):
            raise
        raise RuntimeError(
            "topic broadcasts need bot.content.library (topics(), render_topic()); "
            "it is not installed in this build"
        ) from error


def _topic(topic_id: str) -> Any:
    """A library topic by id, or BroadcastError("unknown_topic")."""
    found = _library().topics().get(topic_id)
    if found is None:
        raise BroadcastError("unknown_topic", topic_id)
    return found


def _content_text(topic_id: str | None, text: str | None, locale: str) -> str:
    """The HTML a subscriber with `locale` gets: staff's own text, then the topic."""
    parts = [text.strip()] if text and text.strip() else []
    if topic_id:
        library = _library()
        parts.append(str(library.render_topic(_topic(topic_id), locale)))
    return "\n\n".join(parts)


def render(broadcast: Broadcast, locale: str) -> tuple[str, bytes | None]:
    """The text (Telegram HTML) and optional photo of a broadcast for one subscriber's locale."""
    return _content_text(broadcast.topic_id, broadcast.text, locale), broadcast.photo


def render_spec(spec: BroadcastSpec, locale: str) -> tuple[str, bytes | None]:
    """What `render` will give for a broadcast made from `spec` (a preview before creating)."""
    return _content_text(spec.topic_id, spec.text, locale), spec.photo


def _visible_length(text: str) -> int:
    """Length as Telegram counts it: UTF-16 units of the text without tags, entities decoded."""
    return len(html.unescape(_TAG.sub("", text)).encode("utf-16-le")) // 2


def check_content(spec: BroadcastSpec) -> None:
    """Refuse empty, unparseable or over-long content before anyone is scheduled to get it."""
    has_text = bool(spec.text and spec.text.strip())
    if not has_text and not spec.topic_id and not spec.photo:
        raise BroadcastError("empty")
    if spec.topic_id:
        _topic(spec.topic_id)
    if has_text:
        library = _library()
        try:
            library.validate_html(spec.text)
        except ValueError as error:  # library.HtmlError
            raise BroadcastError("bad_html", str(error)) from error
    if spec.photo is not None:
        _check_photo(spec.photo)
    limit = CAPTION_LIMIT if spec.photo is not None else TEXT_LIMIT
    for locale in ("vi", "en"):
        if _visible_length(_content_text(spec.topic_id, spec.text, locale)) > limit:
            raise BroadcastError("too_long", f"over {limit} characters ({locale})")


def _check_photo(photo: bytes) -> None:
    """Refuse a photo Telegram would refuse: too big, or not an image."""
    if len(photo) > PHOTO_LIMIT:
        raise BroadcastError("too_long", "photos are limited to 10 MB")
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(io.BytesIO(photo)) as image:
            image.verify()
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as error:
        raise BroadcastError("bad_photo", str(error)) from error


async def _check_audience(session: AsyncSession, spec: BroadcastSpec) -> None:
    """Refuse an audience that names nothing real."""
    if spec.audience not in AUDIENCES:
        raise BroadcastError("bad_audience", spec.audience)
    if spec.audience == "province":
        if spec.audience_code is None or await session.get(Province, spec.audience_code) is None:
            raise BroadcastError("bad_audience", f"no province {spec.audience_code}")
    elif spec.audience == "commune":
        if spec.audience_code is None or await session.get(Commune, spec.audience_code) is None:
            raise BroadcastError("bad_audience", f"no commune {spec.audience_code}")
    elif spec.audience == "topic":
        if not spec.audience_topic:
            raise BroadcastError("bad_audience", "a topic audience needs a topic")
        _topic(spec.audience_topic)


# -- commands --------------------------------------------------------------------------------------


async def create_broadcast(
    session: AsyncSession,
    *,
    spec: BroadcastSpec,
    staff_id: int | None,
    now: datetime,
    tz: str,
    quiet: tuple[int, int] = DEFAULT_QUIET,
    commit: bool = True,
) -> Broadcast:
    """Validate and store a broadcast (commits unless told not to); "now" is a one-off at `now`.

    The leader picks it up at its next sync; call the runtime's wake() to make that immediate.
    """
    check_content(spec)
    await _check_audience(session, spec)
    trigger, run_at, cron = "once", spec.run_at, None
    if spec.trigger == "now":
        run_at = now
    elif spec.trigger == "once":
        if run_at is None or run_at.tzinfo is None:
            raise BroadcastError("bad_time", "a one-off needs an aware time")
        if run_at < now - PAST_GRACE:
            raise BroadcastError("in_past")
    elif spec.trigger == "cron":
        trigger, run_at, cron = "cron", None, validate_cron(spec.cron or "")
    else:
        raise ValueError(f"unknown trigger {spec.trigger!r}")
    if trigger == "once":
        assert run_at is not None
        if not spec.urgent and in_quiet_hours(run_at, tz, quiet):
            raise BroadcastError("quiet_hours")
        next_run_at: datetime | None = run_at
    else:
        probe = dataclasses.replace(spec, trigger="cron", cron=cron)
        next_run_at = planned_time(probe, after=now, tz=tz, quiet=quiet)
        if next_run_at is None:
            raise BroadcastError("bad_cron", "this expression never fires")
    broadcast = Broadcast(
        created_by_staff_id=staff_id,
        topic_id=spec.topic_id or None,
        text=spec.text.strip() if spec.text and spec.text.strip() else None,
        photo=spec.photo,
        audience=spec.audience,
        audience_code=spec.audience_code if spec.audience in ("province", "commune") else None,
        audience_topic=spec.audience_topic if spec.audience == "topic" else None,
        trigger=trigger,
        run_at=run_at,
        cron=cron,
        urgent=spec.urgent,
        status=BroadcastStatus.SCHEDULED,
        next_run_at=next_run_at,
        created_at=now,
    )
    session.add(broadcast)
    if commit:
        await session.commit()
    else:
        await session.flush()  # the caller's audit row names its id
    return broadcast


async def _open_runs(session: AsyncSession, broadcast_id: int) -> list[int]:
    """Runs of a broadcast that are still planning or sending."""
    statement = select(BroadcastRun.id).where(
        BroadcastRun.broadcast_id == broadcast_id,
        col(BroadcastRun.status) != RunStatus.DONE,
    )
    return [run_id for run_id in (await session.exec(statement)).all() if run_id is not None]


async def set_state(
    session: AsyncSession,
    *,
    broadcast_id: int,
    action: str,
    now: datetime,
    tz: str = "Asia/Ho_Chi_Minh",
    quiet: tuple[int, int] = DEFAULT_QUIET,
    commit: bool = True,
) -> Broadcast:
    """Pause, resume or cancel a broadcast (commits unless told not to).

    Pausing also halts its run in progress; resuming continues that run and schedules the next
    future time (slots missed while paused are skipped; a one-off that never ran goes out now).
    Cancelling cancels every unsent delivery.
    """
    broadcast = await session.get(Broadcast, broadcast_id, with_for_update=True)
    if broadcast is None or broadcast.id is None:
        raise BroadcastError("not_found", str(broadcast_id))
    open_runs = await _open_runs(session, broadcast.id)
    status = broadcast.status
    if action == "pause":
        if not (
            status == BroadcastStatus.SCHEDULED
            or (status == BroadcastStatus.FINISHED and open_runs)
        ):
            raise BroadcastError("bad_state", status)
        broadcast.status = BroadcastStatus.PAUSED
    elif action == "resume":
        if status != BroadcastStatus.PAUSED:
            raise BroadcastError("bad_state", status)
        if broadcast.trigger == "cron":
            broadcast.next_run_at = planned_time(broadcast, after=now, tz=tz, quiet=quiet)
        elif broadcast.last_run_at is None and broadcast.run_at is not None:
            late = max(broadcast.run_at, now)
            broadcast.next_run_at = late if broadcast.urgent else after_quiet_hours(late, tz, quiet)
        else:
            broadcast.next_run_at = None
        broadcast.status = (
            BroadcastStatus.SCHEDULED if broadcast.next_run_at else BroadcastStatus.FINISHED
        )
    elif action == "cancel":
        if status == BroadcastStatus.CANCELLED or (
            status == BroadcastStatus.FINISHED and not open_runs
        ):
            raise BroadcastError("bad_state", status)
        broadcast.status = BroadcastStatus.CANCELLED
        broadcast.next_run_at = None
        if open_runs:
            # Rows being sent right now are left to the sender, which records their outcome.
            await session.exec(
                update(Delivery)
                .where(
                    col(Delivery.run_id).in_(open_runs),
                    col(Delivery.status) == DeliveryStatus.PENDING,
                )
                .values(status=DeliveryStatus.CANCELLED, error="broadcast cancelled")
            )
            await session.exec(
                update(BroadcastRun)
                .where(col(BroadcastRun.id).in_(open_runs))
                .values(status=RunStatus.DONE, finished_at=now)
            )
    else:
        raise BroadcastError("bad_state", f"unknown action {action!r}")
    session.add(broadcast)
    if commit:
        await session.commit()
    return broadcast


# -- reach ----------------------------------------------------------------------------------------


async def _reaches(session: AsyncSession, broadcasts: list[Broadcast]) -> list[BroadcastReach]:
    """Delivery counts for some broadcasts, in two grouped queries."""
    ids = [b.id for b in broadcasts if b.id is not None]
    runs: dict[int, tuple[int, int]] = {}
    counts: dict[tuple[int, str], int] = {}
    if ids:
        run_rows = await session.exec(
            select(
                BroadcastRun.broadcast_id,
                func.count(col(BroadcastRun.id)),
                func.coalesce(func.sum(BroadcastRun.planned), 0),
            )
            .where(col(BroadcastRun.broadcast_id).in_(ids))
            .group_by(col(BroadcastRun.broadcast_id))
        )
        runs = {int(b): (int(n), int(p)) for b, n, p in run_rows.all()}
        status_rows = await session.exec(
            select(BroadcastRun.broadcast_id, Delivery.status, func.count())
            .join(BroadcastRun, col(BroadcastRun.id) == col(Delivery.run_id))
            .where(col(BroadcastRun.broadcast_id).in_(ids))
            .group_by(col(BroadcastRun.broadcast_id), col(Delivery.status))
        )
        counts = {(int(b), str(s)): int(n) for b, s, n in status_rows.all()}
    reaches = []
    for broadcast in broadcasts:
        key = broadcast.id or 0
        n_runs, planned = runs.get(key, (0, 0))

        def count(status: str, key: int = key) -> int:
            return counts.get((key, status), 0)

        reaches.append(
            BroadcastReach(
                broadcast=broadcast,
                runs=n_runs,
                planned=planned,
                pending=count(DeliveryStatus.PENDING) + count(DeliveryStatus.SENDING),
                sent=count(DeliveryStatus.SENT),
                failed=count(DeliveryStatus.FAILED),
                blocked=count(DeliveryStatus.BLOCKED),
                cancelled=count(DeliveryStatus.CANCELLED),
                refused=count(DeliveryStatus.REFUSED),
            )
        )
    return reaches


async def list_broadcasts(
    session: AsyncSession, *, limit: int = 20, where: ColumnElement[bool] | None = None
) -> list[BroadcastReach]:
    """The newest broadcasts (those matching `where`) with their reach."""
    statement = select(Broadcast).order_by(col(Broadcast.id).desc()).limit(limit)
    if where is not None:
        statement = statement.where(where)
    return await _reaches(session, list((await session.exec(statement)).all()))


async def reach(session: AsyncSession, broadcast_id: int) -> BroadcastReach:
    """One broadcast with its reach, or BroadcastError("not_found")."""
    broadcast = await session.get(Broadcast, broadcast_id, populate_existing=True)
    if broadcast is None:
        raise BroadcastError("not_found", str(broadcast_id))
    (found,) = await _reaches(session, [broadcast])
    return found
