"""Police-side journeys: enroll staff through the bot, link inbox groups, read cards."""

from __future__ import annotations

import itertools
import re
from dataclasses import dataclass
from typing import Any

from bot.services.enrollment import create_invite
from sandbox.client import EmulatorClient, User
from storage.db import Database
from storage.types import utcnow
from tests.e2e.harness import BotUnderTest, Citizen, text_of

SHORT_ID = re.compile(r"\bT-[0-9A-Z]{6}\b")
_staff_ids = itertools.count(7_000_001)
_group_ids = itertools.count(-1_000_000_001, -1)


@dataclass
class StaffMember:
    """An enrolled person: their private chat and the inbox group they linked (if any)."""

    private: Citizen
    group: Citizen | None = None

    @property
    def user(self) -> User:
        """Their Telegram account."""
        return self.private.user


async def enroll(
    client: EmulatorClient,
    bot: BotUnderTest,
    database_url: str,
    *,
    role: str,
    name: str,
    commune: int | None = None,
    province: int | None = None,
) -> StaffMember:
    """Invite (as the operator would, from the CLI's service) and /join through the bot."""
    db = Database(database_url)
    async with db.session() as session:
        new = await create_invite(
            session, role=role, commune_code=commune, province_code=province, now=utcnow()
        )
    await db.dispose()
    user = User(id=next(_staff_ids), first_name=name, username=None)
    private = Citizen(client, bot, user)
    joined = await private.say(f"/join {new.code}")
    assert "ghi danh" in text_of(joined).lower(), text_of(joined)
    return StaffMember(private)


async def link_group(member: StaffMember, title: str, target: str = "") -> Citizen:
    """Add the bot to a new group and /link it; return the member's view of the group."""
    group_id = next(_group_ids)
    await member.private.client.add_bot_to_group(member.user, group_id, title)
    group = member.private.in_chat(group_id)
    await group.settle()
    linked = await group.say(f"/link {target}".strip())
    assert "hộp thư" in text_of(linked).lower(), text_of(linked)
    member.group = group
    return group


def cards_in(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The tip cards among a chat's bot messages."""
    return [
        m
        for m in messages
        if m.get("text") and SHORT_ID.search(m["text"]) and m.get("reply_markup")
    ]


def card_for(messages: list[dict[str, Any]], short_id: str) -> dict[str, Any]:
    """The card (as edited now) of one tip."""
    for message in messages:
        if (message.get("text") or "").find(short_id) >= 0 and "Lĩnh vực" in (
            message.get("text") or ""
        ):
            return message
    raise AssertionError(f"no card for {short_id}")
