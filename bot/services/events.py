"""What a citizen can do, as messenger-agnostic events the intake service understands."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Start:
    """/start, with the deep-link payload if any."""

    payload: str | None = None


@dataclass(frozen=True)
class Pick:
    """A button press (or a typed-back choice): the step token it was shown with and its value."""

    token: int
    value: str


@dataclass(frozen=True)
class Text:
    """A text message."""

    text: str
    message_id: int | None = None


@dataclass(frozen=True)
class EditedText:
    """A text message the citizen edited after sending."""

    text: str
    message_id: int


@dataclass(frozen=True)
class Media:
    """A file, already downloaded and stripped of metadata by the channel layer."""

    kind: str
    data: bytes
    mime_type: str
    filename: str | None
    caption: str | None = None
    media_group_id: str | None = None
    message_id: int | None = None
    note: str | None = None


@dataclass(frozen=True)
class Location:
    """A location pin."""

    latitude: float
    longitude: float


@dataclass(frozen=True)
class Command:
    """A slash command other than /start; `name` without the slash, `argument` the rest."""

    name: str
    argument: str = ""


@dataclass(frozen=True)
class Unsupported:
    """Something the flow cannot use here: a sticker, poll, contact, dice, too-large file..."""

    kind: str


@dataclass(frozen=True)
class AnswerPolice:
    """The tipster chose to answer a police message about their tip (route already checked)."""

    tip_id: int


Event = AnswerPolice | Start | Pick | Text | EditedText | Media | Location | Command | Unsupported
