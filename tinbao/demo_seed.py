"""Demo data for `tinbao demo`, made the way people make it: through the real bot.

The operator's part (invites) goes through the enrollment service, as `tinbao invite` does;
everything else is done by emulated Telegram users talking to the running bot: staff redeem
their invites and link their inbox groups, a few citizens send tips, an officer acknowledges
one and closes another. So every chat the demo page shows exists in the emulator, and the
database holds exactly what the real flows write.
"""

from __future__ import annotations

import asyncio
import importlib.util
import logging
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from sqlmodel import col, func, select

from bot.services.enrollment import create_invite
from sandbox.client import EmulatorClient, User
from storage.db import Database
from storage.models import OutboxMessage
from storage.types import utcnow

log = logging.getLogger(__name__)

PHU_THO = 25
KHA_CUU = 8635
XUAN_LUNG = 8497
SHORT_ID = re.compile(r"\bT-[0-9A-Z]{6}\b")
SETTLE_TIMEOUT = 20.0
QUIET_CHECKS = 3
CHECK_INTERVAL = 0.01


@dataclass(frozen=True)
class Group:
    """A Telegram group chat used as an inbox."""

    chat_id: int
    title: str


@dataclass(frozen=True)
class DemoCast:
    """The people and chats of the demo."""

    citizen: User  # the visitor's citizen phone (left empty by the seed)
    officer: User  # officer of Xã Khả Cửu, whose inbox group the page shows
    second_officer: User  # officer of Xã Xuân Lũng
    outreach: User  # outreach staff, whose private chat the page shows
    inbox: Group
    second_inbox: Group
    extra_citizen_base: int  # the page numbers further citizen phones from here


CAST = DemoCast(
    citizen=User(90_000_001, "Nguyễn Thị Lan", username="lan_nguyen", language_code="vi"),
    officer=User(70_000_001, "Đinh Khánh Duy", username="duy_ca_khacuu", language_code="vi"),
    second_officer=User(70_000_002, "Lê Văn Nam", username="nam_ca_xuanlung", language_code="vi"),
    outreach=User(70_000_003, "Trần Thu Hà", username="ha_tuyentruyen", language_code="vi"),
    inbox=Group(-1_001_000_008_635, "Công an xã Khả Cửu"),
    second_inbox=Group(-1_001_000_008_497, "Công an xã Xuân Lũng"),
    extra_citizen_base=90_000_100,
)


@dataclass(frozen=True)
class SeedTip:
    """A tip a seeded citizen sends, and what the police do with it."""

    citizen: User
    commune_code: int
    category: str  # (part of) the category button's label
    details: str
    outcome: str  # "new", "acknowledged" or "closed"
    question: str = ""  # an anonymous question from the officer, if any


SEED_TIPS = (
    SeedTip(
        User(91_000_001, "Phạm Văn Hùng"),
        KHA_CUU,
        "Trộm cắp",
        "Mấy đêm nay có hai người lạ đi xe máy không biển số lảng vảng quanh xóm Đồng. "
        "Đêm qua nhà tôi bị mất một chiếc xe đạp điện để ngoài sân.",
        "acknowledged",
        question="Bạn có nhớ hai người đó mặc áo màu gì, đi xe gì không?",
    ),
    SeedTip(
        User(91_000_002, "Hoàng Thị Mai"),
        KHA_CUU,
        "Cờ bạc",
        "Có nhóm cho vay nặng lãi dán tờ rơi ở cột điện gần chợ Khả Cửu, "
        "lãi 5.000 đồng/triệu/ngày, ai chậm trả thì bị gọi điện đe dọa.",
        "closed",
    ),
    SeedTip(
        User(91_000_003, "Vũ Đức Thắng"),
        KHA_CUU,
        "giao thông",
        "Thanh niên tụ tập đua xe máy trên đường tỉnh 316 mỗi tối thứ bảy, "
        "khoảng 22 giờ, đoạn qua cầu Khả Cửu.",
        "new",
    ),
    SeedTip(
        User(91_000_004, "Đỗ Minh Tuấn"),
        XUAN_LUNG,
        "Môi trường",
        "Xưởng gỗ ở khu 5 đốt rác thải nhựa vào ban đêm, khói đen bay vào khu dân cư.",
        "new",
    ),
)


@dataclass
class SeedReport:
    """What the seed made: short ids by outcome, and the features seeded."""

    tips: dict[str, list[str]] = field(default_factory=dict)
    outreach: bool = False


Predicate = Callable[[dict[str, Any]], bool]


def has_button(label: str) -> Predicate:
    """A bot message showing an inline button whose label contains `label`."""
    return lambda message: _button_data(message, label) is not None


def has_text(pattern: re.Pattern[str]) -> Predicate:
    """A bot message whose text matches `pattern`."""
    return lambda message: bool(pattern.search(message.get("text") or ""))


def _button_data(message: dict[str, Any], label: str) -> str | None:
    """The callback data of the message's first button whose label contains `label`."""
    for row in (message.get("reply_markup") or {}).get("inline_keyboard", []):
        for button in row:
            if label in button.get("text", "") and "callback_data" in button:
                return str(button["callback_data"])
    return None


class Seeder:
    """Acts as emulated users against the running bot, each action waiting for its answer.

    Waiting is per chat (for the bot message an action leads to), so several citizens can send
    their tips at once; `settle` waits for everything, outbox included, once at the end.
    """

    def __init__(
        self, client: EmulatorClient, db: Database, bot_idle: Callable[[], bool]
    ) -> None:
        self.client = client
        self.db = db
        self.bot_idle = bot_idle

    async def until(self, chat_id: int, expect: Predicate) -> dict[str, Any]:
        """The first bot message, new or edited after this chat's cursor, that `expect` accepts."""
        async with asyncio.timeout(SETTLE_TIMEOUT):
            while True:
                for message in await self.client.wait_bot_messages(chat_id, timeout=SETTLE_TIMEOUT):
                    if expect(message):
                        return message

    async def say(
        self,
        user: User,
        text: str,
        expect: Predicate,
        *,
        chat_id: int | None = None,
        reply_to: int | None = None,
    ) -> dict[str, Any]:
        """Send a text (in a group when chat_id is given); return the answer `expect` accepts."""
        await self.client.send_text(user, text, chat_id=chat_id, reply_to=reply_to)
        return await self.until(chat_id if chat_id is not None else user.id, expect)

    async def press(
        self, user: User, chat_id: int, message: dict[str, Any], label: str, expect: Predicate
    ) -> dict[str, Any]:
        """Press a button of `message` by (part of) its label; return the answer `expect` accepts."""
        data = _button_data(message, label)
        if data is None:
            raise LookupError(f"no button {label!r} on message {message.get('message_id')}")
        await self.client.press(user, chat_id, int(message["message_id"]), data)
        return await self.until(chat_id, expect)

    async def card(self, chat_id: int, short_id: str) -> dict[str, Any]:
        """The tip card of `short_id` in an inbox group, once the outbox sender has posted it."""
        async with asyncio.timeout(SETTLE_TIMEOUT):
            while True:
                for message in await self.client.transcript(chat_id):
                    if short_id in (message.get("text") or "") and message.get("reply_markup"):
                        return message
                await asyncio.sleep(CHECK_INTERVAL)

    async def settle(self) -> None:
        """Wait until every update is handled and every due outbox row is sent."""
        quiet = 0
        async with asyncio.timeout(SETTLE_TIMEOUT):
            while quiet < QUIET_CHECKS:
                await asyncio.sleep(CHECK_INTERVAL)
                counters = await self.client.counters()
                if (
                    counters.get("updates_pending", 0) == 0
                    and self.bot_idle()
                    and await self._outbox_idle()
                ):
                    quiet += 1
                else:
                    quiet = 0

    async def _outbox_idle(self) -> bool:
        """No outbox row is due or in flight."""
        async with self.db.session() as session:
            statement = (
                select(func.count())
                .select_from(OutboxMessage)
                .where(
                    col(OutboxMessage.status).in_(("pending", "sending")),
                    col(OutboxMessage.next_attempt_at) <= utcnow(),
                )
            )
            return (await session.exec(statement)).one() == 0


async def seed_demo(
    client: EmulatorClient, db: Database, bot_idle: Callable[[], bool], cast: DemoCast = CAST
) -> SeedReport:
    """Seed staff, inbox groups, tips in every status and (once it exists) outreach."""
    seeder = Seeder(client, db, bot_idle)
    report = SeedReport()
    await seed_staff(seeder, cast)
    report.tips = await seed_tips(seeder, cast)
    report.outreach = await seed_outreach(seeder, cast)
    await seeder.settle()
    return report


def _any(message: dict[str, Any]) -> bool:
    """Any bot message."""
    return True


async def seed_staff(seeder: Seeder, cast: DemoCast) -> None:
    """Invite the officers and the outreach staff; they join and link their inbox groups."""
    invites = (
        (cast.officer, "officer", KHA_CUU, None),
        (cast.second_officer, "officer", XUAN_LUNG, None),
        (cast.outreach, "outreach", None, PHU_THO),
    )
    codes: list[str] = []
    async with seeder.db.session() as session:
        for _user, role, commune, province in invites:
            new = await create_invite(
                session, role=role, commune_code=commune, province_code=province, now=utcnow()
            )
            codes.append(new.code)
    await asyncio.gather(
        *(
            seeder.say(user, f"/join {code}", _any)
            for (user, *_scope), code in zip(invites, codes, strict=True)
        )
    )

    async def link(user: User, group: Group) -> None:
        await seeder.client.add_bot_to_group(user, group.chat_id, group.title)
        await seeder.say(user, "/link", _new_message, chat_id=group.chat_id)

    await asyncio.gather(
        link(cast.officer, cast.inbox), link(cast.second_officer, cast.second_inbox)
    )
    await seeder.settle()  # both inboxes linked before any tip is routed


def _new_message(message: dict[str, Any]) -> bool:
    """A message the bot has just sent (not an edit)."""
    return not message.get("edited")


async def seed_tips(seeder: Seeder, cast: DemoCast) -> dict[str, list[str]]:
    """Citizens send the seed tips (concurrently); the officer then acts on them."""
    short_ids = await asyncio.gather(*(_send_tip(seeder, tip) for tip in SEED_TIPS))
    by_outcome: dict[str, list[str]] = {}
    cards: dict[str, dict[str, Any]] = {}
    for tip, short_id in zip(SEED_TIPS, short_ids, strict=True):
        by_outcome.setdefault(tip.outcome, []).append(short_id)
        group = cast.inbox if tip.commune_code == KHA_CUU else cast.second_inbox
        cards[short_id] = await seeder.card(group.chat_id, short_id)
    officer, group_id = cast.officer, cast.inbox.chat_id
    for tip, short_id in zip(SEED_TIPS, short_ids, strict=True):
        if tip.commune_code != KHA_CUU or tip.outcome == "new":
            continue
        card = cards[short_id]
        same_card: Predicate = lambda m, card_id=card["message_id"]: m["message_id"] == card_id  # noqa: E731
        card = await seeder.press(officer, group_id, card, "Nhận xử lý", same_card)
        if tip.question:
            await seeder.say(
                officer, tip.question, _new_message, chat_id=group_id, reply_to=card["message_id"]
            )
        if tip.outcome == "closed":
            card = await seeder.press(officer, group_id, card, "Đóng", has_button("Đã xử lý"))
            await seeder.press(officer, group_id, card, "Đã xử lý", same_card)
    return by_outcome


async def _send_tip(seeder: Seeder, tip: SeedTip) -> str:
    """One citizen's whole tip, from a poster's deep link; returns the tip's short id."""
    user, chat = tip.citizen, tip.citizen.id
    step = await seeder.say(user, f"/start c{tip.commune_code}", has_button(tip.category))
    step = await seeder.press(user, chat, step, tip.category, has_button("Không"))
    step = await seeder.press(user, chat, step, "Không", has_button("Đúng"))
    # The commune the poster's link named is right; then the details.
    step = await seeder.press(user, chat, step, "Đúng", has_button("Xong"))
    step = await seeder.say(user, tip.details, has_button("Xong"))
    step = await seeder.press(user, chat, step, "Xong", has_button("📨"))
    receipt = await seeder.press(user, chat, step, "📨", has_text(SHORT_ID))
    match = SHORT_ID.search(receipt.get("text") or "")
    assert match is not None
    return match.group(0)


def outreach_available() -> bool:
    """Tell whether this build has the outreach features (topics, subscriptions, broadcasts)."""
    return importlib.util.find_spec("bot.content.library") is not None and any(
        importlib.util.find_spec(name) is not None
        for name in ("bot.services.outreach", "bot.services.broadcast")
    )


async def seed_outreach(seeder: Seeder, cast: DemoCast) -> bool:
    """Seed topics, a pledge campaign and a scheduled broadcast, when outreach exists.

    The outreach staff member is already enrolled by `seed_staff`; this is the one place to
    add the campaign and the scheduled broadcast once those features land.
    """
    if not outreach_available():
        log.info("outreach features not present: no topics, pledges or broadcasts seeded")
        return False
    return True
