"""Demo data for `tinbao demo`, made the way people make it: through the real bot.

The operator's part (invites) goes through the enrollment service, as `tinbao invite` does;
everything else is done by emulated Telegram users talking to the running bot: staff redeem
their invites and link their inbox groups, a few citizens send tips, an officer acknowledges
one and closes another. So every chat the demo page shows exists in the emulator, and the
database holds exactly what the real flows write.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from sqlmodel import col, func, select

from bot.services.enrollment import create_invite
from sandbox.client import EmulatorClient, User
from storage.db import Database
from storage.models import InboxPost, OutboxMessage, Tip
from storage.types import utcnow

log = logging.getLogger(__name__)

PHU_THO = 25
KHA_CUU = 8635
XUAN_LUNG = 8497
SHORT_ID = re.compile(r"\bT-[0-9A-Z]{6}\b")
LINKED = re.compile("hộp thư", re.IGNORECASE)  # in the bot's answer to a successful /link
SEED_PLEDGE = "khong_ma_tuy"  # a pledge in bot/content: the campaign staff open
SEED_TOPIC = "lừa đảo qua mạng"  # (part of) a library topic's title, on the first page
SEED_BROADCAST_TIME = "08:00"  # the seeded broadcast goes out daily at this local time
STEP_TIMEOUT = 15.0  # for the bot to answer one action (it takes ~0.05 s on an idle machine)
SETTLE_TIMEOUT = 15.0  # for every update and outbox row to be done
QUIET_CHECKS = 3
CHECK_INTERVAL = 0.01  # between the checks of `settle`
POLL_INTERVAL = 0.02  # between looks for a posted card


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
    officer=User(70_000_001, "Hoàng Minh Khôi", username="khoi_ca_khacuu", language_code="vi"),
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
    subscribes: bool = False  # the citizen then subscribes to Khả Cửu's outreach news


SEED_TIPS = (
    SeedTip(
        User(91_000_001, "Phạm Văn Hùng"),
        KHA_CUU,
        "Trộm cắp",
        "Mấy đêm nay có hai người lạ đi xe máy không biển số lảng vảng quanh xóm Đồng. "
        "Đêm qua nhà tôi bị mất một chiếc xe đạp điện để ngoài sân.",
        "acknowledged",
        question="Bạn có nhớ hai người đó mặc áo màu gì, đi xe gì không?",
        subscribes=True,
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
        subscribes=True,
    ),
    SeedTip(
        User(91_000_004, "Đỗ Minh Tuấn"),
        XUAN_LUNG,
        "Môi trường",
        "Xưởng gỗ ở khu 5 đốt rác thải nhựa vào ban đêm, khói đen bay vào khu dân cư.",
        "new",
    ),
)


class SeedError(RuntimeError):
    """The bot did not answer a seeding step as expected."""


@dataclass
class SeedReport:
    """What the seed made: short ids by outcome, and the features seeded."""

    tips: dict[str, list[str]] = field(default_factory=dict)
    outreach: bool = False
    subscribers: int = 0
    problems: list[str] = field(default_factory=list)


Predicate = Callable[[dict[str, Any]], bool]


def has_button(label: str) -> Predicate:
    """A bot message showing an inline button whose label contains `label`."""
    return lambda message: _button_data(message, label) is not None


def has_text(pattern: re.Pattern[str]) -> Predicate:
    """A bot message whose text matches `pattern`."""
    return lambda message: bool(pattern.search(message.get("text") or ""))


def _shown(message: dict[str, Any]) -> str:
    """What a message shows, in one line."""
    return str(message.get("text") or message.get("caption") or message.get("media") or "")


def is_message(message_id: int) -> Predicate:
    """The bot message with this id (as when it is edited)."""
    return lambda message: int(message["message_id"]) == message_id


def replies_to(message_id: int) -> Predicate:
    """A bot message replying to (quoting) the message with this id."""
    return lambda message: message.get("reply_to") == message_id


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

    def __init__(self, client: EmulatorClient, db: Database, bot_idle: Callable[[], bool]) -> None:
        self.client = client
        self.db = db
        self.bot_idle = bot_idle

    async def until(self, chat_id: int, expect: Predicate) -> dict[str, Any]:
        """The first bot message, new or edited after this chat's cursor, that `expect` accepts."""
        try:
            async with asyncio.timeout(STEP_TIMEOUT):
                while True:
                    for message in await self.client.wait_bot_messages(
                        chat_id, timeout=STEP_TIMEOUT
                    ):
                        if expect(message):
                            return message
        except TimeoutError:
            tail = [
                f"  {'bot' if m['from_bot'] else 'user'}: {_shown(m):.120}"
                for m in (await self.client.transcript(chat_id))[-4:]
            ]
            problem = f"the bot did not answer as expected in chat {chat_id}; it shows:"
            raise SeedError("\n".join([problem, *tail])) from None

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
        """Press a button of `message` by (part of) its label; return the accepted answer."""
        data = _button_data(message, label)
        if data is None:
            raise LookupError(f"no button {label!r} on message {message.get('message_id')}")
        await self.client.press(user, chat_id, int(message["message_id"]), data)
        return await self.until(chat_id, expect)

    async def card(self, chat_id: int, short_id: str) -> dict[str, Any]:
        """The tip card of `short_id` in an inbox group, once the outbox sender has posted it.

        The sender records each card it posts; a button pressed before that finds no card to
        edit (the tip changes, the card does not), so the record is what is waited for.
        """
        statement = (
            select(InboxPost.message_id)
            .join(Tip, col(Tip.id) == col(InboxPost.tip_id))
            .where(Tip.short_id == short_id, InboxPost.chat_id == chat_id, InboxPost.kind == "card")
        )
        try:
            async with asyncio.timeout(STEP_TIMEOUT):
                while True:
                    async with self.db.session() as session:
                        message_id = (await session.exec(statement)).first()
                    if message_id is not None:
                        break
                    await asyncio.sleep(POLL_INTERVAL)
        except TimeoutError:
            raise SeedError(f"the card of {short_id} did not reach chat {chat_id}") from None
        for message in await self.client.transcript(chat_id):
            if message["message_id"] == message_id:
                return message
        raise SeedError(f"the card of {short_id} is not in chat {chat_id}")

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
    """Seed staff, inbox groups, tips in every status and (when the bot has it) outreach.

    After the staff are in place, every citizen's story (a tip, what the police do with it,
    then a subscription) runs concurrently with the others and with the outreach staff's.
    """
    seeder = Seeder(client, db, bot_idle)
    report = SeedReport()
    await seed_staff(seeder, cast)
    outreach = await outreach_available(client)
    officer_turn = asyncio.Lock()  # one officer, one group: their actions take turns
    try:
        async with asyncio.TaskGroup() as group:
            stories = [
                group.create_task(_citizen_story(seeder, cast, tip, officer_turn, report, outreach))
                for tip in SEED_TIPS
            ]
            if outreach:
                group.create_task(_optional(report, seed_outreach_staff(seeder, cast)))
    except* SeedError as failed:
        raise failed.exceptions[0] from None
    for tip, story in zip(SEED_TIPS, stories, strict=True):
        report.tips.setdefault(tip.outcome, []).append(story.result())
    report.outreach = outreach and not report.problems
    await seeder.settle()
    return report


async def _optional(report: SeedReport, step: Awaitable[None]) -> bool:
    """Run an outreach step; a failure is reported (tips and inboxes still make a demo)."""
    try:
        await step
    except SeedError as error:
        report.problems.append(f"outreach data not seeded: {error}")
        return False
    return True


async def _citizen_story(
    seeder: Seeder,
    cast: DemoCast,
    tip: SeedTip,
    officer_turn: asyncio.Lock,
    report: SeedReport,
    outreach: bool,
) -> str:
    """A citizen sends a tip, the police act on it, the citizen subscribes; the short id."""
    short_id = await _send_tip(seeder, tip)
    group = cast.inbox if tip.commune_code == KHA_CUU else cast.second_inbox
    card = await seeder.card(group.chat_id, short_id)
    if tip.outcome != "new":
        async with officer_turn:
            await _police_act(seeder, cast.officer, group.chat_id, card, tip)
    if outreach and tip.subscribes and await _optional(report, _subscribe(seeder, tip.citizen)):
        report.subscribers += 1
    return short_id


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
        # Not the bot's greeting on being added: the answer that the group is now an inbox.
        await seeder.say(user, "/link", has_text(LINKED), chat_id=group.chat_id)

    # The answer to /link comes after the link is committed: both inboxes exist before any tip.
    await asyncio.gather(
        link(cast.officer, cast.inbox), link(cast.second_officer, cast.second_inbox)
    )


def _new_message(message: dict[str, Any]) -> bool:
    """A message the bot has just sent (not an edit)."""
    return not message.get("edited")


async def _police_act(
    seeder: Seeder, officer: User, group_id: int, card: dict[str, Any], tip: SeedTip
) -> None:
    """The officer acknowledges the tip's card, may ask a question, and may close it."""
    same_card = is_message(int(card["message_id"]))
    card = await seeder.press(officer, group_id, card, "Nhận xử lý", same_card)
    if tip.question:  # a reply to the card goes to the tipster; the bot confirms in a reply
        asked = await seeder.client.send_text(
            officer, tip.question, chat_id=group_id, reply_to=int(card["message_id"])
        )
        await seeder.until(group_id, replies_to(int(asked["message_id"])))
    if tip.outcome == "closed":
        card = await seeder.press(officer, group_id, card, "Đóng", has_button("Đã xử lý"))
        await seeder.press(officer, group_id, card, "Đã xử lý", same_card)


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


async def outreach_available(client: EmulatorClient) -> bool:
    """Tell whether the running bot has outreach (it registered the /subscribe command)."""
    available = any(command.get("command") == "subscribe" for command in await client.commands())
    if not available:
        log.info("outreach features not present: no pledges, subscriptions or broadcasts seeded")
    return available


async def seed_outreach_staff(seeder: Seeder, cast: DemoCast) -> None:
    """The outreach staff opens a pledge campaign and schedules a daily broadcast.

    Topics are content files (`bot/content/`), so they need no seeding; citizens subscribe in
    their own stories.
    """
    staff = cast.outreach
    await seeder.say(staff, f"/campaign open {SEED_PLEDGE} {KHA_CUU}", _new_message)
    await _schedule_broadcast(seeder, staff)


async def _schedule_broadcast(seeder: Seeder, staff: User) -> None:
    """Staff compose a daily broadcast of a library topic to every subscriber."""
    chat = staff.id
    step = await seeder.say(staff, "/broadcast", has_button("Chủ đề có sẵn"))
    step = await seeder.press(staff, chat, step, "Chủ đề có sẵn", has_button(SEED_TOPIC))
    # The demo's outreach staff work in Phú Thọ: the seeded broadcast is for Khả Cửu.
    step = await seeder.press(staff, chat, step, SEED_TOPIC, has_button("Theo xã, phường"))
    await seeder.press(staff, chat, step, "Theo xã, phường", _new_message)
    step = await seeder.say(staff, "kha cuu", has_button("Xã Khả Cửu"))
    step = await seeder.press(staff, chat, step, "Xã Khả Cửu", has_button("Hằng ngày"))
    await seeder.press(staff, chat, step, "Hằng ngày", _new_message)
    step = await seeder.say(staff, SEED_BROADCAST_TIME, has_button("Xác nhận"))
    await seeder.press(staff, chat, step, "Xác nhận", has_text(re.compile(r"#\d+")))


async def _subscribe(seeder: Seeder, user: User) -> None:
    """A citizen subscribes to their commune's outreach news, for one topic."""
    chat = user.id
    await seeder.say(user, "/subscribe", _new_message)
    step = await seeder.say(user, "kha cuu", has_button("Xã Khả Cửu"))
    step = await seeder.press(user, chat, step, "Xã Khả Cửu", has_button("Xong"))
    step = await seeder.press(user, chat, step, SEED_TOPIC, has_button("Xong"))
    await seeder.press(user, chat, step, "Xong", has_text(re.compile("Khả Cửu")))
