"""Data files shipped with the bot: categories and hotlines."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from pathlib import Path

import yaml

CONTENT_DIR = Path(__file__).parent


@dataclass(frozen=True)
class Category:
    """A tip category."""

    id: str
    names: dict[str, str]
    hotlines: tuple[int, ...]

    def name(self, locale: str) -> str:
        """The category's name in a locale, Vietnamese when missing."""
        return self.names.get(locale) or self.names["vi"]


@dataclass(frozen=True)
class Hotline:
    """An emergency number."""

    number: int
    names: dict[str, str]

    def name(self, locale: str) -> str:
        """The service's name in a locale, Vietnamese when missing."""
        return self.names.get(locale) or self.names["vi"]


@cache
def categories() -> tuple[Category, ...]:
    """All categories in menu order."""
    raw = yaml.safe_load((CONTENT_DIR / "categories.yaml").read_text(encoding="utf-8"))
    return tuple(
        Category(id=item["id"], names=dict(item["name"]), hotlines=tuple(item["hotlines"]))
        for item in raw
    )


@cache
def category_by_id() -> dict[str, Category]:
    """Categories indexed by id."""
    return {category.id: category for category in categories()}


@cache
def hotlines() -> dict[int, Hotline]:
    """Emergency numbers indexed by number."""
    raw = yaml.safe_load((CONTENT_DIR / "hotlines.yaml").read_text(encoding="utf-8"))
    return {item["number"]: Hotline(item["number"], dict(item["name"])) for item in raw}


@dataclass(frozen=True)
class Deadline:
    """Minutes to acknowledge and to close a tip."""

    ack_minutes: int
    close_minutes: int


@cache
def _deadline_table() -> dict[str, Deadline]:
    """Deadlines from data: per category, plus "default" and "urgent"."""
    raw = yaml.safe_load((CONTENT_DIR / "deadlines.yaml").read_text(encoding="utf-8"))
    table = {
        key: Deadline(value["ack"], value["close"]) for key, value in raw["categories"].items()
    }
    table["default"] = Deadline(raw["default"]["ack"], raw["default"]["close"])
    table["urgent"] = Deadline(raw["urgent"]["ack"], raw["urgent"]["close"])
    return table


def deadline_for(category_id: str, *, urgent: bool) -> Deadline:
    """The deadlines that apply to a tip."""
    table = _deadline_table()
    return table["urgent"] if urgent else table.get(category_id, table["default"])
