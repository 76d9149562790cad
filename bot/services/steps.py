"""A step of a flow is data: a text plus its choices (DESIGN principle 3).

Telegram renders choices as inline buttons; a channel without buttons renders them as numbered
lines and accepts the number or the label typed back. Both drive the same service.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from storage.text import fold


@dataclass(frozen=True)
class Choice:
    """One option of a step: a compact value the service understands, and its label."""

    value: str
    label: str


@dataclass(frozen=True)
class Reply:
    """One message to the citizen: HTML text, optional choice rows, and the step token."""

    text: str
    choices: tuple[tuple[Choice, ...], ...] = ()
    token: int = 0
    share: str | None = None  # a deep-link payload the channel may offer to share
    photo: bytes | None = None  # sent as a photo with the text as its caption

    def flat_choices(self) -> list[Choice]:
        """All choices in reading order."""
        return [choice for row in self.choices for choice in row]


@dataclass
class Outcome:
    """What the service answers to one event: messages to send and an optional short notice."""

    replies: list[Reply] = field(default_factory=list)
    notice: str | None = None  # a toast for a button press; sent as a message where none exist


def rows(choices: list[Choice], per_row: int) -> tuple[tuple[Choice, ...], ...]:
    """Lay choices out in rows of `per_row`."""
    return tuple(tuple(choices[i : i + per_row]) for i in range(0, len(choices), per_row))


def as_numbered_text(reply: Reply) -> str:
    """Render a reply for a channel without buttons: the text, then "1. label" lines."""
    lines = [reply.text]
    for number, choice in enumerate(reply.flat_choices(), start=1):
        lines.append(f"{number}. {choice.label}")
    return "\n".join(lines)


def match_typed_choice(reply: Reply, typed: str) -> Choice | None:
    """Find the choice a citizen typed back, by its number or its label (any case/diacritics)."""
    choices = reply.flat_choices()
    cleaned = typed.strip().rstrip(".")
    if cleaned.isdigit():
        index = int(cleaned) - 1
        return choices[index] if 0 <= index < len(choices) else None
    wanted = _letters(cleaned)
    if not wanted:
        return None
    for choice in choices:
        if _letters(choice.label) == wanted:
            return choice
    return None


def _letters(text: str) -> str:
    """Fold a label to its letters and digits, so "✅ Xong" matches a typed "xong"."""
    return " ".join("".join(ch if ch.isalnum() else " " for ch in fold(text)).split())
