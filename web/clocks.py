"""The deadline clocks a tip page shows: the category's, and the legal ones (CPC art. 147)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from bot.i18n import Translator, _
from storage.models import Tip, TipStatus

LEGAL_DAYS = 20  # art. 147(1): a tip is settled within 20 days of its receipt
LEGAL_COMPLEX_MONTHS = 2  # art. 147(1): or 2 months when complex (extendable once by 2 months)


@dataclass(frozen=True)
class Clock:
    """One deadline: its label, when, and whether it has passed."""

    label: str
    due: datetime
    overdue: bool
    left: str  # "3 days left" / "2 hours late"


def add_months(moment: datetime, months: int) -> datetime:
    """The same day `months` later (the month's last day when it has fewer days)."""
    month = moment.month - 1 + months
    year, month = moment.year + month // 12, month % 12 + 1
    for day in (moment.day, 30, 29, 28):
        try:
            return moment.replace(year=year, month=month, day=day)
        except ValueError:
            continue
    raise AssertionError("every month has 28 days")


def _left(t: Translator, delta: timedelta) -> str:
    """A short human duration, signed by wording."""
    seconds = abs(delta.total_seconds())
    late = delta.total_seconds() < 0
    if seconds >= 86_400:
        n = int(seconds // 86_400)
        text = t.ngettext("%(n)d day", "%(n)d days", n) % {"n": n}
    elif seconds >= 3_600:
        n = int(seconds // 3_600)
        text = t.ngettext("%(n)d hour", "%(n)d hours", n) % {"n": n}
    else:
        n = max(1, int(seconds // 60))
        text = t.ngettext("%(n)d minute", "%(n)d minutes", n) % {"n": n}
    return (t.gettext(_("{time} late")) if late else t.gettext(_("{time} left"))).format(time=text)


def clocks(t: Translator, tip: Tip, now: datetime) -> list[Clock]:
    """The clocks of a tip still open (a closed tip has none running)."""
    if tip.status == TipStatus.CLOSED:
        return []
    found: list[tuple[str, datetime | None]] = []
    if tip.status == TipStatus.NEW:
        found.append((t.gettext(_("Acknowledge by (category deadline)")), tip.ack_due_at))
    found.append((t.gettext(_("Close by (category deadline)")), tip.close_due_at))
    found.append(
        (
            t.gettext(_("Legal time limit: 20 days (CPC art. 147)")),
            tip.created_at + timedelta(days=LEGAL_DAYS),
        )
    )
    found.append(
        (
            t.gettext(_("Legal time limit if complex: 2 months (CPC art. 147)")),
            add_months(tip.created_at, LEGAL_COMPLEX_MONTHS),
        )
    )
    return [
        Clock(label, due, due <= now, _left(t, due - now))
        for label, due in found
        if due is not None
    ]
