"""What a generated person does, as data, and the hypothesis strategies that generate it.

Every kind of update a messenger can send reaches the bot: texts of any characters and length,
commands known and unknown with any arguments, the keywords Zalo users type, deep links,
presses of real and stale buttons and of callback data no button carries, edits, photos and
files (valid, broken, too big), albums, locations, stickers, polls, contacts, dice, forwarded
messages. Officers press card buttons with any data and type commands in their inbox group.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from typing import Any

from hypothesis import strategies as st

from tests.factories_media import gradient_image

COMMANDS = (
    "start",
    "help",
    "cancel",
    "status",
    "add",
    "topics",
    "subscribe",
    "unsubscribe",
    "pledge",
    "broadcast",
    "broadcasts",
    "session",
    "sessions",
    "thongke",
    "audit",
    "staff",
    "revoke",
    "console",
    "campaign",
    "pledges",
    "join",
    "link",
    "unlink",
    "nosuchcommand",
)
KEYWORDS = (
    "menu",
    "bắt đầu",
    "hủy",
    "trợ giúp",
    "pháp luật",
    "đăng ký",
    "hủy đăng ký",
    "ký cam kết",
    "tra cứu 7K3Q-XW2M-9TDA",
    "bổ sung 7K3Q-XW2M-9TDA",
    "tham dự 1",
    "báo tin 8635",
    "TL 1",
    "1",
    "2",
    "Xong",
    "kha cuu",
)
START_PAYLOADS = ("c8635", "c1", "c99999999", "s1", "s999", "t_ma_tuy", "t_none", "jNOPE", "x")
ODD_FIELDS: tuple[dict[str, Any], ...] = (
    {
        "sticker": {
            "file_id": "CAACAgIAAxkBAAE",
            "file_unique_id": "AgAD",
            "type": "regular",
            "width": 512,
            "height": 512,
            "is_animated": False,
            "is_video": False,
        }
    },
    {"contact": {"phone_number": "+84901234567", "first_name": "A"}},
    {"dice": {"emoji": "🎲", "value": 3}},
    {
        "poll": {
            "id": "1",
            "question": "?",
            "options": [{"text": "a", "voter_count": 0, "persistent_id": "o1"}],
            "total_voter_count": 0,
            "is_closed": False,
            "is_anonymous": True,
            "type": "regular",
            "allows_multiple_answers": False,
            "allows_revoting": False,
            "members_only": False,
        }
    },
)
FORWARD = {"type": "hidden_user", "sender_user_name": "Ai đó", "date": 1700000000}


def jpeg(width: int = 64, height: int = 48) -> bytes:
    """A small valid JPEG."""
    buffer = io.BytesIO()
    gradient_image(width, height).save(buffer, "JPEG")
    return buffer.getvalue()


@dataclass(frozen=True)
class Action:
    """One thing a person does: a kind and its arguments."""

    kind: str
    text: str = ""
    data: bytes = b""
    number: int = 0
    extra: tuple[tuple[str, Any], ...] = ()


_texts = st.text(
    alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"),
    min_size=1,
    max_size=300,
).filter(lambda text: text.strip() != "")
_long_texts = st.integers(300, 4096).map(lambda n: ("Tin báo rất dài. " * 300)[:n])
_callback_data = st.text(min_size=1, max_size=64).filter(lambda d: 1 <= len(d.encode()) <= 64)

citizen_actions = st.one_of(
    st.builds(Action, kind=st.just("text"), text=st.one_of(_texts, _long_texts)),
    st.builds(Action, kind=st.just("text"), text=st.sampled_from(KEYWORDS)),
    st.builds(
        Action,
        kind=st.just("text"),
        text=st.tuples(st.sampled_from(COMMANDS), _texts | st.just("")).map(
            lambda pair: f"/{pair[0]} {pair[1]}".strip()
        ),
    ),
    st.builds(
        Action,
        kind=st.just("text"),
        text=st.sampled_from(START_PAYLOADS).map(lambda payload: f"/start {payload}"),
    ),
    st.builds(Action, kind=st.just("press"), number=st.integers(0, 12)),
    st.builds(Action, kind=st.just("press_stale"), number=st.integers(0, 50)),
    st.builds(Action, kind=st.just("forged_press"), text=_callback_data),
    st.builds(Action, kind=st.just("edit"), number=st.integers(0, 20), text=_texts),
    st.builds(Action, kind=st.just("photo")),
    st.builds(Action, kind=st.just("broken_photo"), data=st.binary(min_size=1, max_size=300)),
    st.builds(
        Action,
        kind=st.just("document"),
        data=st.binary(min_size=1, max_size=2000),
        text=st.sampled_from(("so-do.pdf", "ảnh.heic", "x", "../../etc/passwd", "a" * 200)),
    ),
    st.builds(Action, kind=st.just("big_file"), number=st.integers(20_000_001, 2_000_000_000)),
    st.builds(Action, kind=st.just("album"), number=st.integers(2, 4)),
    st.builds(
        Action,
        kind=st.just("location"),
        extra=st.tuples(
            st.tuples(st.just("latitude"), st.floats(-90, 90)),
            st.tuples(st.just("longitude"), st.floats(-180, 180)),
        ),
    ),
    st.builds(Action, kind=st.just("odd"), number=st.integers(0, len(ODD_FIELDS) - 1)),
    st.builds(Action, kind=st.just("forwarded"), text=_texts),
)

officer_actions = st.one_of(
    st.builds(Action, kind=st.just("group_press"), text=_callback_data),
    st.builds(Action, kind=st.just("group_card_press"), number=st.integers(0, 12)),
    st.builds(
        Action,
        kind=st.just("group_text"),
        text=st.tuples(st.sampled_from(COMMANDS), _texts | st.just("")).map(
            lambda pair: f"/{pair[0]} {pair[1]}".strip()
        )
        | _texts,
    ),
    st.builds(Action, kind=st.just("private_text"), text=_texts),
)
