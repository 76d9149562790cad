"""Rotating TINBAO_SECRET_KEY: routes re-encrypted, keys re-keyed, receipts still found."""

from __future__ import annotations

import asyncio
import os
import re
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from sqlalchemy import update
from sqlmodel import col, select
from typer.testing import CliRunner

from bot.services import anonymity, outbox, pledges, subscriptions
from bot.services.anonymity import Keyring, RoutePurpose
from bot.services.events import Command, Pick, Start, Text
from bot.services.intake import IntakeService
from bot.services.key_rotation import needs, rotate, usage
from bot.services.outreach_flow import OutreachFlow
from bot.services.steps import Outcome
from storage.db import Database
from storage.models import (
    ConversationDraft,
    OutboxMessage,
    Subscriber,
    Tip,
)
from tests.conftest import FakeClock, queued_receipt
from tinbao.cli_keys import keys_app

A = "secret-a-long-enough-for-tests-0123456789-abcdefghij"
B = "secret-b-long-enough-for-tests-9876543210-klmnopqrst"
TIPSTER, SUBSCRIBER, WRITER = 881001, 881002, 881003
RECEIPT = re.compile(r"<code>([0-9A-Z]{4}-[0-9A-Z]{4}-[0-9A-Z]{4})</code>")


def service(db: Database, clock: FakeClock, keyring: Keyring) -> IntakeService:
    """An intake service with the outreach flow, as the bot builds it."""
    svc = IntakeService(db=db, keyring=keyring, clock=clock)
    svc.add_flow(OutreachFlow(svc))
    return svc


async def send(svc: IntakeService, user: int, event: object) -> Outcome:
    """One event from a citizen in their private chat (chat id = user id)."""
    return await svc.handle(
        channel="zalo",
        user_id=user,
        chat_id=user,
        event=event,  # type: ignore[arg-type]
        locale="en",
    )


async def choose(svc: IntakeService, user: int, outcome: Outcome, label: str) -> Outcome:
    """Press the choice of the last step whose label contains `label`."""
    step = outcome.replies[-1]
    choice = next(c for row in step.choices for c in row if label in c.label)
    return await send(svc, user, Pick(step.token, choice.value))


async def send_tip(svc: IntakeService, user: int) -> str:
    """A whole tip; return its receipt code."""
    out = await choose(svc, user, await send(svc, user, Start()), "Send a tip")
    out = await choose(svc, user, out, "Drugs")
    out = await choose(svc, user, out, "No")
    out = await choose(svc, user, await send(svc, user, Text("kha cuu")), "Khả Cửu")
    await send(svc, user, Text("Có người bán ma túy ở đầu ngõ 5."))
    out = await choose(svc, user, out, "Done")
    await choose(svc, user, out, "Send")
    receipt = await queued_receipt(svc.db)
    match = RECEIPT.search(receipt)
    assert match, receipt
    return match.group(1)


async def subscribe(svc: IntakeService, user: int, *, again: bool = False) -> None:
    """Subscribe to Khả Cửu's outreach, every topic (`again`: change an existing subscription)."""
    out = await send(svc, user, Command("subscribe"))
    if again:
        await choose(svc, user, out, "Change commune")
    out = await choose(svc, user, await send(svc, user, Text("kha cuu")), "Khả Cửu")
    out = await choose(svc, user, out, "Done")
    assert "Subscribed" in out.replies[0].text, out.replies


def v1_token(secret: str, channel: str, chat_id: int) -> bytes:
    """A route token as the keyring wrote it before key ids (version 1)."""
    key = anonymity._derive(secret.encode(), anonymity._INFO_ROUTE)
    nonce = os.urandom(12)
    sealed = AESGCM(key).encrypt(nonce, f"{channel}\x1f{chat_id}".encode(), b"tinbao-route")
    return b"\x01" + nonce + sealed


async def populate_with_key_a(db: Database, clock: FakeClock) -> dict[str, object]:
    """Tips, an outbox row, a subscriber, a signature and an unfinished draft, all under key A."""
    svc = service(db, clock, Keyring(A))
    code = await send_tip(svc, TIPSTER)
    legacy_code = await send_tip(svc, TIPSTER)
    async with db.session() as session:
        campaign = await pledges.open_campaign(
            session,
            pledge_id="khong_ma_tuy",
            commune_code=None,
            province_code=None,
            staff_id=None,
            now=clock.now,
        )
    await subscribe(svc, SUBSCRIBER)
    listing = await send(svc, SUBSCRIBER, Command("pledge"))
    out = await send(svc, SUBSCRIBER, Pick(listing.replies[-1].token, f"pl:{campaign.id}"))
    out = await choose(svc, SUBSCRIBER, out, "I pledge")
    out = await choose(svc, SUBSCRIBER, await send(svc, SUBSCRIBER, Text("kha cuu")), "Khả Cửu")
    assert "Confirmation code" in (await send(svc, SUBSCRIBER, Text("Hộ bà Lan"))).replies[0].text
    out = await choose(svc, WRITER, await send(svc, WRITER, Start()), "Send a tip")
    async with db.session() as session:
        tips = list((await session.exec(select(Tip).order_by(col(Tip.id)))).all())
        assert all(tip.receipt_key_id == Keyring(A).key_id for tip in tips)
        # The second tip as a database from before key ids holds it: version-1 route, no key id.
        await session.exec(
            update(Tip)
            .where(col(Tip.id) == tips[1].id)
            .values(reply_route=v1_token(A, "zalo", TIPSTER), receipt_key_id=None)
        )
        # A police answer still queued for the first tipster carries the tip's own token.
        outbox.enqueue(
            session,
            kind="tipster",
            route=tips[0].reply_route,
            tip_id=tips[0].id,
            now=clock.now,
            payload={"text": "Cảm ơn"},
        )
        await session.commit()
    return {"code": code, "legacy_code": legacy_code, "campaign": campaign.id}


async def test_rotation_end_to_end(db: Database, clock: FakeClock) -> None:
    made = await populate_with_key_a(db, clock)
    rotated = Keyring(B, previous=[A])
    report = await rotate(db, rotated, batch_size=2)  # small batches: paging is exercised
    assert report.table("tip").reencrypted == 2
    # The police answer queued for the first tipster, and the two tips' queued receipts.
    assert report.table("outboxmessage").reencrypted == 3
    drafts = report.table("conversationdraft")
    assert (drafts.reencrypted, drafts.rekeyed, drafts.not_rekeyable) == (3, 3, 0)
    subs = report.table("subscriber")
    assert (subs.reencrypted, subs.rekeyed, subs.not_rekeyable) == (1, 1, 0)
    assert report.receipt_key_ids_filled == 1
    assert all(t.unreadable == 0 and t.changed == 0 for t in report.tables)

    b_alone = Keyring(B)
    async with db.session() as session:
        tips = list((await session.exec(select(Tip))).all())
        queued = (
            await session.exec(select(OutboxMessage).where(OutboxMessage.kind == "tipster"))
        ).one()
        receipts = list(
            (await session.exec(select(OutboxMessage).where(OutboxMessage.kind == "receipt"))).all()
        )
        drafts_rows = list((await session.exec(select(ConversationDraft))).all())
        subscriber = (await session.exec(select(Subscriber))).one()
    for tip in tips:  # every route opens with B alone
        assert tip.reply_route is not None
        assert b_alone.decrypt_route(tip.reply_route) == ("zalo", str(TIPSTER))
        assert tip.receipt_key_id == Keyring(A).key_id  # the legacy one was told from its route
    assert queued.route is not None and b_alone.decrypt_route(queued.route)[1] == str(TIPSTER)
    assert queued.route == next(t.reply_route for t in tips if t.id == queued.tip_id)
    # The queued receipts were re-encrypted too: they still reach the tipster under B alone.
    assert len(receipts) == 2
    assert all(r.route and b_alone.decrypt_route(r.route)[1] == str(TIPSTER) for r in receipts)
    assert {d.key for d in drafts_rows} == {
        b_alone.user_key("zalo", user) for user in (TIPSTER, SUBSCRIBER, WRITER)
    }
    for draft in drafts_rows:
        b_alone.decrypt_route(draft.route)
    assert subscriber.key == subscriptions.subscriber_key(b_alone, "zalo", SUBSCRIBER)
    assert b_alone.decrypt_route(subscriber.route) == ("zalo", str(SUBSCRIBER))

    # Receipts cannot be re-hashed: found with A among the previous keys, not with B alone.
    svc = service(db, clock, rotated)
    for code in (made["code"], made["legacy_code"]):
        status = await send(svc, TIPSTER, Command("status", str(code)))
        assert "No tip has this receipt code" not in status.replies[0].text
        assert "T-" in status.replies[0].text
    lost = await send(service(db, clock, b_alone), TIPSTER, Command("status", str(made["code"])))
    assert "No tip has this receipt code" in lost.replies[0].text

    # Signatures keep their old key: A still stops a second signature.
    async with db.session() as session:
        with pytest.raises(pledges.PledgeError, match="already_signed"):
            await pledges.sign(
                session,
                campaign_id=int(str(made["campaign"])),
                commune_code=8635,
                household=None,
                signer_key=rotated.user_key(pledges.KEY_PREFIX + "zalo", SUBSCRIBER),
                previous_keys=rotated.previous_user_keys(pledges.KEY_PREFIX + "zalo", SUBSCRIBER),
                now=clock.now,
            )

    # What still needs A: the two receipts, and no route.
    async with db.session() as session:
        found = await usage(session)
    assert found.routes_under(b_alone.key_id) == 2 + 3 + 3 + 1
    [need] = needs(rotated, found)
    assert (need.key_id, need.routes, need.receipts_unpurged, need.needed) == (
        Keyring(A).key_id,
        0,
        2,
        True,
    )

    # Re-running changes nothing.
    again = await rotate(db, rotated)
    assert not again.changed_anything
    # Per table: tips, outbox (answer and two receipts), drafts, subscribers, TOTP secrets.
    assert [t.current for t in again.tables] == [2, 3, 3, 1, 0]

    # The subscriber was re-keyed: B alone finds them, and they can unsubscribe.
    out = await send(service(db, clock, b_alone), SUBSCRIBER, Command("unsubscribe"))
    assert "no longer receive" in out.replies[0].text
    async with db.session() as session:
        subscriber = (await session.exec(select(Subscriber))).one()
    assert not subscriber.active and subscriber.route == b""


async def test_restart_with_a_new_key_keeps_the_conversation(
    db: Database, clock: FakeClock
) -> None:
    # Between the restart and `tinbao keys rotate`, a citizen's draft is under key A.
    before = service(db, clock, Keyring(A))
    out = await choose(before, WRITER, await send(before, WRITER, Start()), "Send a tip")
    after = service(db, clock, Keyring(B, previous=[A]))
    out = await choose(after, WRITER, out, "Drugs")  # the step token of the old draft holds
    assert "happening" in out.replies[-1].text.lower(), out.replies
    async with db.session() as session:
        draft = (await session.exec(select(ConversationDraft))).one()
    assert draft.key == Keyring(B).user_key("zalo", WRITER)
    assert draft.data["category"] == "drugs"


async def test_unsubscribe_before_rotate_holds(db: Database, clock: FakeClock) -> None:
    await subscribe(service(db, clock, Keyring(A)), SUBSCRIBER)
    after = service(db, clock, Keyring(B, previous=[A]))
    status = await send(after, SUBSCRIBER, Command("subscribe"))
    assert "Khả Cửu" in status.replies[-1].text  # found under the old key
    out = await send(after, SUBSCRIBER, Command("unsubscribe"))
    assert "no longer receive" in out.replies[0].text
    async with db.session() as session:
        subscriber = (await session.exec(select(Subscriber))).one()
    assert not subscriber.active


async def test_subscribing_again_re_keys_the_row(db: Database, clock: FakeClock) -> None:
    await subscribe(service(db, clock, Keyring(A)), SUBSCRIBER)
    await subscribe(service(db, clock, Keyring(B, previous=[A])), SUBSCRIBER, again=True)
    async with db.session() as session:
        rows = list((await session.exec(select(Subscriber))).all())
    assert [row.key for row in rows] == [
        subscriptions.subscriber_key(Keyring(B), "zalo", SUBSCRIBER)
    ]


async def test_unknown_and_group_routes_are_left_alone(db: Database, clock: FakeClock) -> None:
    await subscribe(service(db, clock, Keyring(A)), SUBSCRIBER)
    async with db.session() as session:
        # A draft whose chat is not the user's private chat cannot be re-keyed (its key is not
        # HMAC(channel:chat id)); a route under a key nobody configured cannot even be read.
        session.add(
            ConversationDraft(
                key=Keyring(A).user_key("zalo", 5),
                channel="zalo",
                route=Keyring(A).encrypt_route("zalo", 6, purpose=RoutePurpose.SUBSCRIBER),
                state="menu",
            )
        )
        await session.exec(
            update(Subscriber).values(
                route=Keyring("forgotten-secret-0123456789").encrypt_route(
                    "zalo", 1, purpose=RoutePurpose.SUBSCRIBER
                )
            )
        )
        await session.commit()
    report = await rotate(db, Keyring(B, previous=[A]))
    drafts = report.table("conversationdraft")
    assert (drafts.reencrypted, drafts.not_rekeyable) == (2, 1)  # the subscriber's own draft too
    assert report.table("subscriber").unreadable == 1
    assert report.unknown_key_ids == {Keyring("forgotten-secret-0123456789").key_id: 1}


async def test_a_dropped_key_loses_only_its_own_rows(db: Database, clock: FakeClock) -> None:
    # Dropped too early (no rotate): A's rows are unreadable, and nothing else breaks for it.
    code = await send_tip(service(db, clock, Keyring(A)), TIPSTER)
    before = service(db, clock, Keyring(A))
    await choose(before, WRITER, await send(before, WRITER, Start()), "Send a tip")
    b_alone = service(db, clock, Keyring(B))
    await choose(b_alone, SUBSCRIBER, await send(b_alone, SUBSCRIBER, Start()), "Send a tip")
    async with db.session() as session:
        tip = (await session.exec(select(Tip))).one()
    assert tip.id is not None
    answer = await b_alone.begin_reply(
        channel="zalo", user_id=TIPSTER, chat_id=TIPSTER, tip_id=tip.id, locale="en"
    )
    assert "no longer valid" in answer.replies[0].text
    lost = await send(b_alone, TIPSTER, Command("status", code))
    assert "No tip has this receipt code" in lost.replies[0].text
    clock.advance(hours=25)
    assert await b_alone.expire_drafts() == 1  # the writer's notice cannot go; the other's does
    async with db.session() as session:
        (notice,) = (
            await session.exec(select(OutboxMessage).where(OutboxMessage.kind == "draft_expired"))
        ).all()
    assert b_alone.keyring.decrypt_route(notice.route or b"") == ("zalo", str(SUBSCRIBER))


runner = CliRunner()


@pytest.fixture
def cli_env(database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """The CLI's settings point at the test database, rotated from A to B; no stray .env."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("TINBAO_DATABASE_URL", database_url)
    monkeypatch.setenv("TINBAO_SECRET_KEY", B)
    monkeypatch.setenv("TINBAO_PREVIOUS_SECRET_KEYS", A)
    monkeypatch.setenv("TINBAO_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("COLUMNS", "200")  # rich tables wide enough to read in assertions
    return database_url


def test_cli_rotate_then_status(cli_env: str) -> None:
    async def setup() -> None:
        db = Database(cli_env)
        try:
            await populate_with_key_a(db, FakeClock())
        finally:
            await db.dispose()

    asyncio.run(setup())
    a_id, b_id = Keyring(A).key_id, Keyring(B).key_id
    result = runner.invoke(keys_app, ["rotate", "--batch-size", "1"])
    assert result.exit_code == 0, result.output
    out = result.output
    assert f"current key id: {b_id}" in out and f"previous key ids: {a_id}" in out
    assert re.search(r"tip reply routes\s+│\s+2 │\s+0 │\s+0 │", out), out
    assert re.search(r"subscribers\s+│\s+1 │\s+0 │\s+0 │\s+0 │\s+1 │\s+0 │", out), out
    assert "receipt key ids recorded for 1 tips" in out
    assert f"keep key id {a_id}: 2 tips not yet purged" in out

    again = runner.invoke(keys_app, ["rotate"])
    assert again.exit_code == 0 and "nothing to do" in again.output, again.output

    status = runner.invoke(keys_app, ["status"])
    assert status.exit_code == 0, status.output
    assert re.search(rf"{b_id} \(current\)\s+│\s+2 │\s+3 │\s+3 │\s+1 │", status.output)
    assert re.search(rf"{a_id} \(previous\)\s+│\s+2 │\s+0 │", status.output), status.output

    async def purge_all() -> None:
        db = Database(cli_env)
        try:
            async with db.session() as session:
                await session.exec(update(Tip).values(reply_route=None, purged_at=FakeClock().now))
                await session.commit()
        finally:
            await db.dispose()

    asyncio.run(purge_all())
    status = runner.invoke(keys_app, ["status"])
    assert f"may be dropped: key id {a_id}; 2 purged tips" in status.output, status.output


def test_cli_refuses_a_missing_secret(cli_env: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TINBAO_SECRET_KEY", "")
    result = runner.invoke(keys_app, ["status"])
    assert result.exit_code == 2 and "TINBAO_SECRET_KEY" in result.output


def test_cli_help_on_every_command() -> None:
    for command in ([], ["rotate"], ["status"], ["generate"]):
        result = runner.invoke(keys_app, [*command, "--help"])
        assert result.exit_code == 0 and "Usage" in result.output


def test_cli_generate_prints_a_usable_secret() -> None:
    result = runner.invoke(keys_app, ["generate"])
    secret, key_id = result.output.split("\n")[:2]
    assert len(secret) >= 64 and "," not in secret
    assert key_id == f"key id: {Keyring(secret).key_id}"


async def test_rotation_re_seals_console_totp_secrets(db: Database, clock: FakeClock) -> None:
    # Review: `keys rotate` left TOTP secrets under the old key; dropping it locked officers out.
    from storage.models import ConsoleAccount, Staff
    from web.accounts import link_account

    secret = "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP"
    async with db.session() as session:
        staff = Staff(
            platform="telegram", platform_user_id="1", display_name="Cán bộ", role="officer"
        )
        session.add(staff)
        await session.commit()
        await link_account(
            session,
            keyring=Keyring(A),
            staff=staff,
            username="can.bo",
            password="mat-khau-rat-dai-2026",
            totp_secret=secret,
            now=clock.now,
        )
    rotating = Keyring(B, previous=[A])
    async with db.session() as session:
        before = needs(rotating, await usage(session))
    assert [need.credentials for need in before] == [1] and before[0].needed
    report = await rotate(db, rotating)
    assert report.table("consoleaccount").reencrypted == 1
    again = await rotate(db, rotating)
    assert again.table("consoleaccount").current == 1 and not again.changed_anything
    async with db.session() as session:
        after = needs(rotating, await usage(session))
        sealed = (await session.exec(select(ConsoleAccount.totp_secret))).one()
    assert after[0].credentials == 0
    assert sealed is not None and Keyring(B).open_credential(sealed) == secret
