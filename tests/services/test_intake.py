"""The intake service driven directly with events, as any channel would drive it."""

from __future__ import annotations

import re

from sqlmodel import select

from bot.services.anonymity import Keyring
from bot.services.events import Command, Location, Media, Pick, Start, Text
from bot.services.intake import IntakeLimits, IntakeService
from bot.services.steps import Outcome, as_numbered_text, match_typed_choice
from storage.db import Database
from storage.models import ConversationDraft, OutboxMessage, Tip, TipAttachment
from tests.conftest import FakeClock, queued_receipt

USER = 777001
RECEIPT = re.compile(r"\b[0-9A-Z]{4}-[0-9A-Z]{4}-[0-9A-Z]{4}\b")


def photo() -> Media:
    """A (sanitized) photo, as a channel hands it over."""
    return Media(
        kind="photo", data=b"\xff\xd8 not really a jpeg", mime_type="image/jpeg", filename=None
    )


def service(db: Database, clock: FakeClock, **limits: int) -> IntakeService:
    """An intake service on the test database."""
    return IntakeService(
        db=db, keyring=Keyring("x" * 48), limits=IntakeLimits(**limits), clock=clock
    )


async def send(svc: IntakeService, event: object, user: int = USER) -> Outcome:
    """One event from the test citizen."""
    return await svc.handle(
        channel="zalo",
        user_id=user,
        chat_id=user,
        event=event,
        locale="en",  # type: ignore[arg-type]
    )


async def type_back(svc: IntakeService, outcome: Outcome, typed: str) -> Outcome:
    """Answer the last step the way a button-less channel does: by typing a number or label."""
    step = outcome.replies[-1]
    choice = match_typed_choice(step, typed)
    assert choice is not None, as_numbered_text(step)
    return await send(svc, Text(typed))


async def test_numbered_rendering_drives_a_whole_tip(db: Database, clock: FakeClock) -> None:
    svc = service(db, clock)
    out = await send(svc, Start())
    assert "1. " in as_numbered_text(out.replies[-1])
    out = await type_back(svc, out, "1")  # Gửi tin báo
    out = await type_back(svc, out, "drugs")  # category by its label, any case
    out = await type_back(svc, out, "2")  # not happening now
    out = await send(svc, Text("kha cuu"))
    out = await type_back(svc, out, "1")
    out = await send(svc, Text("Có người bán ma túy ở đầu ngõ 5."))
    out = await send(svc, Location(21.1, 105.2))
    out = await type_back(svc, out, "Done")
    assert "Xã Khả Cửu" in out.replies[-1].text
    out = await type_back(svc, out, "1")  # send
    assert "received" in out.replies[-1].text
    assert "<code>" in await queued_receipt(db)
    async with db.session() as session:
        tip = (await session.exec(select(Tip))).one()
        assert tip.category == "drugs" and tip.text.startswith("Có người")
        assert (tip.location_lat, tip.location_lon) == (21.1, 105.2)
        draft = (await session.exec(select(ConversationDraft))).one()
        assert draft.state == "menu" and draft.data == {}


async def test_stale_and_forged_choices_are_refused(db: Database, clock: FakeClock) -> None:
    svc = service(db, clock)
    first = await send(svc, Start())
    old_token = first.replies[-1].token
    out = await send(svc, Pick(old_token, "report"))
    out = await send(svc, Pick(old_token, "report"))
    assert out.notice and out.replies  # stale: a notice plus the current step again
    token = out.replies[-1].token
    forged = await send(svc, Pick(token, "c:not-a-category"))
    assert forged.notice and forged.replies[-1].token == token


async def test_draft_expires_after_ttl_with_a_notice(db: Database, clock: FakeClock) -> None:
    svc = service(db, clock)
    out = await send(svc, Start())
    await send(svc, Pick(out.replies[-1].token, "report"))
    clock.advance(hours=23)
    assert await svc.expire_drafts() == 0
    clock.advance(hours=2)
    assert await svc.expire_drafts() == 1
    assert await svc.expire_drafts() == 0
    async with db.session() as session:
        (notice,) = (
            await session.exec(select(OutboxMessage).where(OutboxMessage.kind == "draft_expired"))
        ).all()
    assert notice.route is not None
    assert svc.keyring.decrypt_route(notice.route) == ("zalo", str(USER))


async def test_flood_limit_answers_once_per_window(db: Database, clock: FakeClock) -> None:
    svc = service(db, clock, messages_per_minute=3)
    answers = [await send(svc, Command("help")) for _ in range(6)]
    assert all(a.replies for a in answers[:3])
    assert "too fast" in answers[3].replies[0].text
    assert answers[4].replies == [] and answers[5].replies == []
    clock.advance(minutes=1)
    assert (await send(svc, Command("help"))).replies


async def test_additions_with_add_have_the_same_file_cap_as_the_details(
    db: Database, clock: FakeClock
) -> None:
    svc = service(db, clock, max_files=2)
    out = await send(svc, Start())
    for typed in ("1", "drugs", "2"):
        out = await type_back(svc, out, typed)
    out = await send(svc, Text("kha cuu"))
    out = await type_back(svc, out, "1")
    out = await send(svc, Text("Có người bán ma túy ở đầu ngõ 5."))
    out = await type_back(svc, out, "Done")
    out = await type_back(svc, out, "1")  # send
    code = RECEIPT.search(await queued_receipt(db))
    assert code
    await send(svc, Command("add", code.group(0)))
    answers = [await send(svc, photo()) for _ in range(3)]
    assert "at most 2 files" in answers[-1].replies[0].text
    async with db.session() as session:
        tip = (await session.exec(select(Tip))).one()
        kept = await session.exec(select(TipAttachment).where(TipAttachment.tip_id == tip.id))
        assert len(kept.all()) == 2
