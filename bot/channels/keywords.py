"""Typed words for channels without slash commands or buttons (Zalo users don't type "/").

A Zalo citizen writes "tra cứu 7K3Q-XW2M-9TDA" or "menu"; the slash forms work as well. Only a
whole message that is a keyword counts, so a tip's text that merely contains one is left alone.
Police messages carry an "Answer" button on Telegram; here it is the words "trả lời <number>".
Posters print "báo tin <commune code>" and "tham dự <session id>" for Zalo, which has no deep links.
"""

from __future__ import annotations

from dataclasses import dataclass

from bot.services.anonymity import normalize_receipt_code
from bot.services.events import Command, Event, Start, Text
from bot.services.inbox import REPLY_PREFIX
from storage.text import fold

# Folded (no diacritics, lower case) words -> the command they stand for.
_BARE = {
    "menu": "start",
    "bat dau": "start",
    "start": "start",
    "huy": "cancel",
    "dung": "cancel",
    "tro giup": "help",
    "huong dan": "help",
    "help": "help",
    "tim hieu phap luat": "topics",
    "phap luat": "topics",
    "chu de": "topics",
    "dang ky": "subscribe",
    "dang ky nhan tin": "subscribe",
    "huy dang ky": "unsubscribe",
    "cam ket": "pledge",
    "ky cam ket": "pledge",
}
# Words followed by a receipt code.
_WITH_CODE = {
    "tra cuu": "status",
    "trang thai": "status",
    "kiem tra": "status",
    "status": "status",
    "bo sung": "add",
    "them": "add",
    "add": "add",
}
_ANSWER = ("tra loi", "tl")
# Words followed by a number, standing for a poster's deep link: a commune's tip line
# ("báo tin 8635" = /start c8635) and an outreach session's check-in ("tham dự 12" = /start s12).
_WITH_NUMBER = {"bao tin": "c", "tham du": "s", "diem danh": "s"}


@dataclass(frozen=True)
class AnswerRequest:
    """The citizen asked to answer a police message about a tip (the route is checked later)."""

    tip_id: int


def parse_text(text: str) -> Event | AnswerRequest:
    """The event a typed text stands for: a command, a keyword, or plain text."""
    stripped = text.strip()
    if stripped.startswith("/") and len(stripped) > 1:
        head, _, argument = stripped[1:].partition(" ")
        name = head.split("@", 1)[0].lower()
        if name == "start":
            return Start(payload=argument.strip() or None)
        return Command(name=name, argument=argument.strip())
    if len(stripped) > 60:
        return Text(text=text)
    words = " ".join(fold(stripped).replace(":", " ").split())
    bare = _BARE.get(words)
    if bare == "start":
        return Start()
    if bare is not None:
        return Command(name=bare)
    for prefix, name in _WITH_CODE.items():
        if words.startswith(prefix + " "):
            argument = stripped.split(None, len(prefix.split()))[-1]
            if normalize_receipt_code(argument) is not None:
                return Command(name=name, argument=argument)
    for prefix, payload in _WITH_NUMBER.items():
        number = words.removeprefix(prefix + " ")
        if number != words and number.isdigit():
            return Start(payload=payload + number)
    for prefix in _ANSWER:
        if words.startswith(prefix + " ") and words[len(prefix) + 1 :].isdigit():
            return AnswerRequest(int(words[len(prefix) + 1 :]))
    return Text(text=text)


def button_hint(data: str) -> str | None:
    """The words that do what an outbox button does, for a channel that has no buttons."""
    if data.startswith(REPLY_PREFIX) and data[len(REPLY_PREFIX) :].isdigit():
        return f"TL {data[len(REPLY_PREFIX) :]}"
    return None
