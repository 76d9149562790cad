"""The vi catalog is complete: no untranslated or fuzzy entry, placeholders and tags intact."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from babel.messages.extract import extract_from_dir
from babel.messages.pofile import read_po

from bot.i18n import LOCALE_DIR

PLACEHOLDER = re.compile(r"\{[a-z_]+\}")
TAG = re.compile(r"</?[a-z]+")


def _entries(locale: str) -> list:
    with (LOCALE_DIR / locale / "LC_MESSAGES" / "tinbao.po").open("rb") as handle:
        return [message for message in read_po(handle, locale=locale) if message.id]


@pytest.mark.parametrize("locale", ["vi", "en"])
def test_catalog_is_complete(locale: str) -> None:
    problems = []
    for message in _entries(locale):
        strings = message.string if isinstance(message.string, tuple) else (message.string,)
        ids = message.id if isinstance(message.id, tuple) else (message.id,)
        if message.fuzzy or not all(strings):
            problems.append(f"untranslated or fuzzy: {ids[0]!r}")
            continue
        for translated in strings:
            if set(PLACEHOLDER.findall(translated)) != set(PLACEHOLDER.findall(ids[0])):
                problems.append(f"placeholders differ: {ids[0]!r}")
            if sorted(TAG.findall(translated)) != sorted(TAG.findall(ids[0])):
                problems.append(f"HTML tags differ: {ids[0]!r}")
    assert not problems, "\n".join(problems)


def test_catalog_covers_every_message_in_the_code() -> None:
    """Extract messages from the source now: every one must be in the vi catalog."""
    root = Path(__file__).resolve().parent.parent
    keywords = {"_": None, "gettext": None, "ngettext": (1, 2)}
    wanted: set[str] = set()
    for package in ("bot", "storage", "tinbao"):
        for _file, _line, message, _comments, _context in extract_from_dir(
            root / package, method_map=[("**.py", "python")], keywords=keywords
        ):
            wanted.add(message if isinstance(message, str) else message[0])
    have = {m.id if isinstance(m.id, str) else m.id[0] for m in _entries("vi")}
    assert not wanted - have, f"missing from vi catalog (run make i18n): {sorted(wanted - have)}"
