"""The services' small markup, rendered for channels that take plain text only (Zalo).

Services write a small HTML subset (<b>, <i>, <code>, <a href>, escaped user text), which
Telegram takes as it is. Zalo shows plain text: tags go, entities are unescaped, a link keeps its
address, and long texts are cut on word boundaries into the platform's message size.
"""

from __future__ import annotations

import html
from collections.abc import Sequence
from html.parser import HTMLParser

from bot.channels.keywords import button_hint
from bot.services.steps import Reply


class _PlainText(HTMLParser):
    """Collects text; a link whose label is not its address gets the address after it."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self._links: list[tuple[str, int]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "a":
            self._links.append((dict(attrs).get("href") or "", len(self.parts)))
        elif tag == "br":
            self.parts.append("\n")

    def handle_endtag(self, tag: str) -> None:
        if tag == "a" and self._links:
            href, start = self._links.pop()
            label = "".join(self.parts[start:])
            if href and href != label and not href.startswith("tg://"):
                self.parts.append(f" ({href})")

    def handle_data(self, data: str) -> None:
        self.parts.append(data)


def to_plain(markup: str) -> str:
    """The text of the services' markup, without tags."""
    parser = _PlainText()
    parser.feed(markup)
    parser.close()
    return "".join(parser.parts)


def escape(text: str) -> str:
    """Escape user text for the markup (the same rule as Telegram's HTML)."""
    return html.escape(text, quote=False)


def split_text(text: str, limit: int) -> list[str]:
    """Cut a text into pieces of at most `limit` characters, on line or word boundaries."""
    pieces: list[str] = []
    rest = text.strip()
    while len(rest) > limit:
        window = rest[: limit + 1]
        cut = window.rfind("\n")
        if cut < limit // 2:
            cut = window.rfind(" ")
        if cut < limit // 2:
            cut = limit  # one very long word: cut it where it must be cut
        pieces.append(rest[:cut].rstrip())
        rest = rest[cut:].lstrip()
    if rest:
        pieces.append(rest)
    return pieces


def numbered(reply: Reply, hint: str) -> str:
    """A reply as plain text with its choices as "1. label" lines (typed back as a number)."""
    text = to_plain(reply.text).strip()
    choices = reply.flat_choices()
    if not choices:
        return text
    lines = [text, ""] if text else []
    lines += [f"{number}. {to_plain(choice.label)}" for number, choice in enumerate(choices, 1)]
    lines.append(hint)
    return "\n".join(lines)


def plain_messages(
    text: str, buttons: Sequence[Sequence[tuple[str, str]]], *, limit: int, send_words: str
) -> list[str]:
    """An outbox message for a channel without buttons: text, then the words each button is.

    `send_words` is the translated "send “{words}”".
    """
    body = to_plain(text).strip()
    hints = [
        f"👉 {to_plain(label)}: {send_words.format(words=hint)}"
        for row in buttons
        for label, data in row
        if (hint := button_hint(data)) is not None
    ]
    if hints:
        body = "\n\n".join([body, "\n".join(hints)])
    return split_text(body, limit)
