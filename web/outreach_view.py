"""What the console's outreach pages compute: a broadcast from a form, previews, the calendar.

Nothing here touches the database except through the services: the rules (content, quiet
hours, audiences, scope) stay in bot/services/broadcasts.py and outreach_control.py, so a
broadcast composed in the browser is refused or accepted exactly as one composed in the bot.
"""

from __future__ import annotations

import calendar
import html
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from html.parser import HTMLParser
from typing import Any
from zoneinfo import ZoneInfo

from markupsafe import Markup

from bot.channels.markup import split_text, to_plain
from bot.content.library import ALLOWED_TAGS
from bot.services import broadcasts
from bot.services.broadcasts import BroadcastError, BroadcastSpec
from storage.models import Broadcast

ZALO_MESSAGE_LIMIT = 2000  # both Zalo APIs cut a text message there
ZALO_HEADER_LIMIT = 100  # the OA promotion template's header
MAX_EVENTS_PER_BROADCAST = 62  # a daily broadcast fills a month view, no more


# -- the compose form ------------------------------------------------------------------------


def _int(form: Mapping[str, Any], name: str) -> int | None:
    """A whole number field, or None when empty or not a number."""
    value = str(form.get(name, "")).strip()
    return int(value) if value.isdigit() and len(value) < 10 else None


def _hour_minute(value: str) -> tuple[int, int]:
    """An `<input type="time">` value (HH:MM)."""
    hour, _, minute = value.partition(":")
    if not (hour.isdigit() and minute[:2].isdigit()):
        raise BroadcastError("bad_time", value)
    return int(hour), int(minute[:2])


def spec_from_form(form: Mapping[str, Any], *, tz: str) -> BroadcastSpec:
    """The broadcast a compose form describes (BroadcastError for times that do not parse)."""
    content = str(form.get("content", "text"))
    text = str(form.get("text", ""))[: broadcasts.TEXT_LIMIT * 2] if content == "text" else ""
    topic = str(form.get("topic", ""))[:64] if content == "topic" else ""
    audience = str(form.get("audience", ""))[:16]
    code = _int(form, "province") if audience == "province" else _int(form, "commune")
    when = str(form.get("when", "now"))
    trigger, run_at, cron = "now", None, None
    if when == "once":
        try:
            local = datetime.fromisoformat(str(form.get("at", "")))
        except ValueError as error:
            raise BroadcastError("bad_time", "expected a date and time") from error
        run_at = local.replace(tzinfo=ZoneInfo(tz)).astimezone(UTC)
        trigger = "once"
    elif when in ("daily", "weekly", "monthly"):
        hour, minute = _hour_minute(str(form.get("time", "")))
        if when == "daily":
            cron = broadcasts.cron_daily(hour, minute)
        elif when == "weekly":
            cron = broadcasts.cron_weekly(_int(form, "weekday") or 0, hour, minute)
        else:
            cron = broadcasts.cron_monthly(_int(form, "day") or 1, hour, minute)
        trigger = "cron"
    return BroadcastSpec(
        topic_id=topic or None,
        text=text or None,
        photo=None,
        audience=audience,
        audience_code=code if audience in ("province", "commune") else None,
        audience_topic=str(form.get("audience_topic", ""))[:64] or None
        if audience == "topic"
        else None,
        trigger=trigger,
        run_at=run_at,
        cron=cron,
        urgent=form.get("urgent") == "1",
    )


# -- previews --------------------------------------------------------------------------------


class _SafeTelegramHtml(HTMLParser):
    """Re-writes Telegram's HTML subset for a page: known tags only, every value escaped."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.out: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag not in ALLOWED_TAGS:
            return
        if tag == "a":
            href = dict(attrs).get("href") or ""
            if href.startswith("https://"):
                self.out.append(f'<a href="{html.escape(href)}" rel="noreferrer noopener">')
            else:
                self.out.append("<a>")  # tg:// links mean nothing in a browser
        elif tag == "span":
            self.out.append('<span class="spoiler">')
        else:
            self.out.append(f"<{tag}>")

    def handle_endtag(self, tag: str) -> None:
        if tag in ALLOWED_TAGS:
            self.out.append(f"</{tag}>")

    def handle_data(self, data: str) -> None:
        self.out.append(html.escape(data, quote=False))


def telegram_preview(markup: str) -> Markup:
    """Telegram HTML as a page may show it: re-written tag by tag, so safe to embed."""
    parser = _SafeTelegramHtml()
    parser.feed(markup)
    parser.close()
    return Markup("".join(parser.out))  # every piece above was escaped or is a fixed tag


@dataclass(frozen=True)
class ZaloPreview:
    """What a Zalo user sees: the OA's promotion card (header, body), or the bot's messages."""

    header: str
    body: str
    messages: list[str]


def zalo_preview(markup: str) -> ZaloPreview:
    """The plain text both Zalo channels send, as they cut it."""
    plain = to_plain(markup).strip()
    header, _, body = plain.partition("\n")
    return ZaloPreview(
        header=header[:ZALO_HEADER_LIMIT],
        body=body.strip(),
        messages=split_text(plain, ZALO_MESSAGE_LIMIT),
    )


# -- the calendar ------------------------------------------------------------------------------


@dataclass(frozen=True)
class CalendarEvent:
    """One broadcast going out (or gone out) at a time."""

    broadcast: Broadcast
    at: datetime  # UTC
    past: bool


@dataclass(frozen=True)
class Period:
    """The days a calendar view shows, in local time."""

    view: str  # "month" | "week"
    anchor: date
    weeks: list[list[date]]

    @property
    def first(self) -> date:
        """The first day shown."""
        return self.weeks[0][0]

    @property
    def last(self) -> date:
        """The last day shown."""
        return self.weeks[-1][-1]

    def bounds(self, tz: str) -> tuple[datetime, datetime]:
        """The period as [start, end) in UTC."""
        zone = ZoneInfo(tz)
        start = datetime.combine(self.first, time(), zone)
        end = datetime.combine(self.last + timedelta(days=1), time(), zone)
        return start.astimezone(UTC), end.astimezone(UTC)

    def step(self, direction: int) -> date:
        """The anchor of the previous (-1) or next (+1) period."""
        if self.view == "week":
            return self.anchor + timedelta(weeks=direction)
        month = self.anchor.month - 1 + direction
        return date(self.anchor.year + month // 12, month % 12 + 1, 1)


def period(view: str, anchor: date) -> Period:
    """A month (Monday-first weeks covering it) or the Monday-to-Sunday week of `anchor`."""
    if view == "week":
        monday = anchor - timedelta(days=anchor.weekday())
        return Period("week", anchor, [[monday + timedelta(days=n) for n in range(7)]])
    weeks = calendar.Calendar(firstweekday=0).monthdatescalendar(anchor.year, anchor.month)
    return Period("month", anchor.replace(day=1), weeks)


def future_times(
    broadcast: Broadcast,
    *,
    start: datetime,
    end: datetime,
    tz: str,
    quiet: tuple[int, int],
) -> list[datetime]:
    """When a scheduled broadcast will go out within [start, end), as the leader will send it."""
    if broadcast.status != broadcasts.BroadcastStatus.SCHEDULED or broadcast.next_run_at is None:
        return []
    found: list[datetime] = []
    moment: datetime | None = broadcast.next_run_at
    while moment is not None and moment < end and len(found) < MAX_EVENTS_PER_BROADCAST:
        if moment >= start:
            found.append(moment)
        moment = broadcasts.planned_time(broadcast, after=moment, tz=tz, quiet=quiet)
    return found


def by_day(events: Iterable[CalendarEvent], tz: str) -> dict[date, list[CalendarEvent]]:
    """Events grouped by their local day, each day in time order."""
    days: dict[date, list[CalendarEvent]] = {}
    zone = ZoneInfo(tz)
    for event in sorted(events, key=lambda item: item.at):
        days.setdefault(event.at.astimezone(zone).date(), []).append(event)
    return days
