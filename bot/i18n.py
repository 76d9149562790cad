"""Gettext translations, compiled in memory from the .po catalogs with Babel."""

from __future__ import annotations

import gettext
from dataclasses import dataclass
from datetime import datetime
from functools import cache
from io import BytesIO
from pathlib import Path
from zoneinfo import ZoneInfo

from babel.dates import format_datetime
from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po
from babel.numbers import format_decimal

LOCALE_DIR = Path(__file__).parent / "content" / "locale"
DOMAIN = "tinbao"
SUPPORTED_LOCALES = ("vi", "en")


def _(message: str) -> str:
    """Mark a string for extraction without translating it here (translated at render time)."""
    return message


@cache
def _translations(locale: str) -> gettext.NullTranslations:
    """Load one locale's catalog; .mo files are not committed, so compile the .po in memory."""
    po_path = LOCALE_DIR / locale / "LC_MESSAGES" / f"{DOMAIN}.po"
    if not po_path.exists():
        return gettext.NullTranslations()
    with po_path.open("rb") as handle:
        catalog = read_po(handle, locale=locale)
    buffer = BytesIO()
    write_mo(buffer, catalog)
    buffer.seek(0)
    return gettext.GNUTranslations(buffer)


@dataclass(frozen=True)
class Translator:
    """Translations and formatting for one locale; passed explicitly, never global."""

    locale: str
    timezone: str = "Asia/Ho_Chi_Minh"

    def gettext(self, message: str) -> str:
        """Translate a message id."""
        return _translations(self.locale).gettext(message)

    def ngettext(self, singular: str, plural: str, n: int) -> str:
        """Translate a message id with a plural form."""
        return _translations(self.locale).ngettext(singular, plural, n)

    def datetime(self, value: datetime) -> str:
        """Format an aware datetime in local time, e.g. 22/11/2026 14:05."""
        local = value.astimezone(ZoneInfo(self.timezone))
        return format_datetime(local, "dd/MM/yyyy HH:mm", locale=self.locale)

    def number(self, value: int | float) -> str:
        """Format a number the locale's way (vi: 1.234)."""
        return format_decimal(value, locale=self.locale)


def translator(locale: str, timezone: str = "Asia/Ho_Chi_Minh") -> Translator:
    """Return a translator, falling back to Vietnamese for unsupported locales."""
    return Translator(locale if locale in SUPPORTED_LOCALES else "vi", timezone)
