"""The outbox sender: claims due rows, sends them, marks them; retries, re-routes, alerts.

Delivery is at-least-once by construction: a row is claimed (status "sending") and committed
before the send, and marked "sent" after it. A crash between the two leaves the row "sending";
once its lease runs out it is sent again, so at most the message in flight repeats; none is lost.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import defaultdict
from collections.abc import Callable, Mapping
from dataclasses import replace
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import update
from sqlmodel import col, select

from bot.channels.outbound import (
    Broken,
    Outbound,
    OutboundFile,
    OutboundMessage,
    Quota,
    RetryAfter,
    SendOutcome,
    Sent,
    Transient,
    Unreachable,
    WindowClosed,
)
from bot.i18n import Translator
from bot.services import routing
from bot.services.anonymity import Keyring, RouteError
from bot.services.inbox import InboxService
from bot.services.outbox import HELD
from bot.services.outbox import buttons_payload as outbox_buttons
from storage.db import Database
from storage.models import Commune, Inbox, InboxPost, OutboxMessage, Tip, TipAttachment, TipStatus
from storage.types import utcnow
from tinbao.metrics import count_send

log = logging.getLogger(__name__)

MAX_BACKOFF = timedelta(minutes=10)
SENDER = "outbox"
# Rows with a plain chat id go to staff and inbox groups, which are on Telegram.
STAFF_CHANNEL = "telegram"
MAX_ATTEMPTS = 20


class OutboxSender:
    """Sends outbox rows, each through its channel (paced by that channel's own limits)."""

    def __init__(
        self,
        *,
        db: Database,
        channels: Mapping[str, Outbound],
        keyring: Keyring,
        t: Translator,
        clock: Callable[[], datetime] = utcnow,
        lease: timedelta = timedelta(seconds=60),
        batch_size: int = 50,
        concurrency: int = 16,
        poll_interval: float = 0.5,
    ) -> None:
        self.db = db
        self.channels = dict(channels)
        self.keyring = keyring
        self.t = t
        self.clock = clock
        self.lease = lease
        self.batch_size = batch_size
        self.poll_interval = poll_interval
        self._slots = asyncio.Semaphore(concurrency)
        self._wake = asyncio.Event()

    def wake(self) -> None:
        """Ask the loop to look for work now (called after a commit that queued rows)."""
        self._wake.set()

    async def run(self, stop: asyncio.Event) -> None:
        """Send until `stop` is set; database or network trouble is waited out, never fatal."""
        while not stop.is_set():
            # Cleared before looking for work, so a wake-up arriving during the claim is kept.
            self._wake.clear()
            try:
                handled = await self.run_once()
            except Exception:  # the database may be away for a while: wait and try again
                log.exception("outbox sender cycle failed; retrying")
                handled = 0
                await asyncio.sleep(self.poll_interval)
            if handled:
                continue
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout=self.poll_interval)

    async def run_once(self) -> int:
        """Claim one batch of due rows and send them; return how many were handled."""
        rows = await self._claim()
        if not rows:
            return 0
        by_chat: dict[Any, list[OutboxMessage]] = defaultdict(list)
        for row in rows:
            by_chat[row.chat_id if row.chat_id is not None else row.route].append(row)
        await asyncio.gather(*(self._send_chat(chat_rows) for chat_rows in by_chat.values()))
        return len(rows)

    async def drain(self, *, max_cycles: int = 1000) -> int:
        """Send everything due now (tests and CLI); return how many rows were handled."""
        total = 0
        for _ in range(max_cycles):
            handled = await self.run_once()
            if not handled:
                return total
            total += handled
        return total

    async def _claim(self) -> list[OutboxMessage]:
        """Take due rows (and rows whose lease expired after a crash) for this process."""
        now = self.clock()
        async with self.db.session() as session:
            await session.exec(
                update(OutboxMessage)
                .where(
                    col(OutboxMessage.status) == "sending",
                    col(OutboxMessage.claimed_at) < now - self.lease,
                )
                .values(status="pending")
            )
            statement = (
                select(OutboxMessage)
                .where(OutboxMessage.status == "pending", col(OutboxMessage.next_attempt_at) <= now)
                .order_by(col(OutboxMessage.id))
                .limit(self.batch_size)
            )
            if session.bind is not None and session.bind.dialect.name == "postgresql":
                # Several senders may run: each row goes to exactly one of them.
                statement = statement.with_for_update(skip_locked=True)
            rows = list((await session.exec(statement)).all())
            for row in rows:
                row.status = "sending"
                row.claimed_at = now
                row.attempts += 1
                session.add(row)
            await session.commit()
            return rows

    async def _send_chat(self, rows: list[OutboxMessage]) -> None:
        """Send one chat's rows in order (a card before its files)."""
        async with self._slots:
            for index, row in enumerate(rows):
                outcome = await self._send_row(row)
                if outcome is _GONE_CHAT:
                    return  # the chat is gone; its other rows were re-routed with it
                if isinstance(outcome, timedelta):
                    # Telegram asked this chat to wait: hitting it again now would only lengthen
                    # the wait, so its other rows wait the same time.
                    for later in rows[index + 1 :]:
                        await self._retry(later, outcome, "the chat's 429", attempt=False)
                    return

    async def _renew_claim(self, row: OutboxMessage) -> bool:
        """Renew this row's lease right before sending it; False when another sender took it.

        The lease is counted from the claim of a whole batch, and a chat's rows go one after
        another: a row waiting behind slow sends may be reclaimed elsewhere meanwhile. Its
        claim time is the token: if it changed, the row is not ours any more.
        """
        now = self.clock()
        async with self.db.session() as session:
            result = await session.exec(
                update(OutboxMessage)
                .where(
                    col(OutboxMessage.id) == row.id,
                    col(OutboxMessage.status) == "sending",
                    col(OutboxMessage.claimed_at) == row.claimed_at,
                )
                .values(claimed_at=now)
            )
            await session.commit()
        if result.rowcount != 1:
            return False
        row.claimed_at = now
        return True

    async def _send_row(self, row: OutboxMessage) -> object:
        """Send one row; returns _GONE_CHAT, a 429 wait (timedelta), or None when done."""
        if not await self._renew_claim(row):
            return None  # reclaimed by another sender, which sends it instead
        try:
            channel_name, message = await self._resolve(row)
        except _UndeliverableError as error:
            await self._finish(row, "dead", str(error))
            count_send(self._label(row), SENDER, "dead")
            return None
        channel = self.channels.get(channel_name)
        if channel is None:
            # Every instance has the same settings, so a channel missing here is missing
            # everywhere: retried with backoff in case it is being configured, then dead.
            outcome: SendOutcome = Transient(f"channel {channel_name} is not configured")
        else:
            try:
                outcome = await channel.send(message)
            except OSError as error:  # a channel lets a bare network error through
                outcome = Transient(str(error) or type(error).__name__)
        return await self._settle(row, channel_name, outcome)

    async def _settle(self, row: OutboxMessage, channel: str, outcome: SendOutcome) -> object:
        """Record what the channel answered: sent, wait, retry, or give up."""
        match outcome:
            case Sent(message_id):
                await self._mark_sent(row, message_id)
                count_send(channel, SENDER, "sent")
            case RetryAfter(seconds, reason) | Quota(seconds, reason):
                # The platform asking us to wait is not a failed attempt: it must never use up
                # the attempts and kill a message during a long flood wait.
                wait_for = timedelta(seconds=seconds)
                await self._retry(row, wait_for, reason, attempt=False)
                count_send(channel, SENDER, "rate_limited")
                return wait_for
            case Unreachable(reason):
                await self._unreachable(row, reason)
                count_send(channel, SENDER, "unreachable")
                return _GONE_CHAT
            case WindowClosed(reason):
                # Retrying cannot open the window: the row waits for the citizen to write again.
                await self._hold(row, reason)
                count_send(channel, SENDER, "held")
            case Broken(reason):
                log.error("outbox row %s refused by %s: %s", row.id, channel, reason)
                await self._finish(row, "dead", reason)
                count_send(channel, SENDER, "dead")
            case Transient(reason):
                backoff = min(MAX_BACKOFF, timedelta(seconds=2 ** min(row.attempts, 10)))
                await self._retry(row, backoff, reason)
                count_send(channel, SENDER, "retry")
        return None

    def _label(self, row: OutboxMessage) -> str:
        """The channel label of a row for metrics, without failing on a bad route."""
        if row.chat_id is not None:
            return STAFF_CHANNEL
        try:
            return self.keyring.decrypt_route(row.route or b"")[0]
        except RouteError:
            return "unknown"

    async def _resolve(self, row: OutboxMessage) -> tuple[str, OutboundMessage]:
        """The row's channel and the message it asks for, with what it refers to looked up."""
        channel, chat_id = self._chat_of(row)
        payload = row.payload
        if row.kind == "card" and row.tip_id is not None:
            # Render the card as the tip stands now: an action taken while the card waited in
            # the outbox (before any edit could find it) must not be lost.
            payload = {**payload, **await self._fresh_card(row.tip_id)}
        buttons = tuple(
            tuple((b["label"], b["data"]) for b in button_row)
            for button_row in payload.get("buttons") or ()
        )
        reply_to = await self._reply_to(row) if payload.get("reply_to_card") else None
        base = OutboundMessage(chat_id=chat_id, buttons=buttons, reply_to=reply_to)
        if row.kind == "edit":
            return channel, replace(
                base,
                kind="edit",
                text=payload["text"],
                edit_message_id=str(payload["message_id"]),
            )
        if row.kind == "location":
            return channel, replace(
                base,
                kind="location",
                latitude=float(payload["latitude"]),
                longitude=float(payload["longitude"]),
            )
        if row.kind == "file":
            return channel, replace(
                base,
                kind="file",
                text=str(payload.get("caption") or ""),
                file=await self._kept_file(int(payload["attachment_id"])),
            )
        return channel, replace(base, text=payload["text"])

    async def _fresh_card(self, tip_id: int) -> dict[str, Any]:
        """The current text and buttons of a tip's card."""
        async with self.db.session() as session:
            tip = await session.get(Tip, tip_id)
            if tip is None:
                return {}
            reply = await routing.render_card(session, self.t, tip)
        return {
            "text": reply.text,
            "buttons": outbox_buttons(reply, f"{routing.CARD_PREFIX}{tip_id}:"),
        }

    async def _kept_file(self, attachment_id: int) -> OutboundFile:
        """A kept (sanitized) file, to be re-sent as a new upload."""
        async with self.db.session() as session:
            attachment = await session.get(TipAttachment, attachment_id)
        if attachment is None or attachment.content is None:
            raise _UndeliverableError("attachment gone (purged)")
        return OutboundFile(
            content=attachment.content,
            filename=attachment.filename or f"file-{attachment.id}",
            kind=attachment.kind,
            mime_type=attachment.mime_type or "application/octet-stream",
        )

    def _chat_of(self, row: OutboxMessage) -> tuple[str, str]:
        """The channel and chat a row goes to; a tipster's route is decrypted only here."""
        if row.chat_id is not None:
            return STAFF_CHANNEL, str(row.chat_id)
        assert row.route is not None
        try:
            channel, chat_id = self.keyring.decrypt_route(row.route)
        except RouteError as error:
            raise _UndeliverableError("route cannot be decrypted") from error
        return channel, chat_id

    async def _reply_to(self, row: OutboxMessage) -> str | None:
        """Thread a message under its tip's card in that chat, when the card is there."""
        if row.tip_id is None or row.chat_id is None:
            return None
        async with self.db.session() as session:
            post = (
                await session.exec(
                    select(InboxPost)
                    .where(
                        InboxPost.tip_id == row.tip_id,
                        InboxPost.chat_id == row.chat_id,
                        InboxPost.kind == "card",
                    )
                    .order_by(col(InboxPost.id).desc())
                )
            ).first()
        return None if post is None else str(post.message_id)

    async def _mark_sent(self, row: OutboxMessage, sent_id: str | None) -> None:
        """Record a successful send (and the post, so replies to it find the tip)."""
        now = self.clock()
        # Telegram's message ids are numbers (kept to find the tip from a reply); other
        # platforms' ids are not needed later.
        message_id = int(sent_id) if sent_id is not None and sent_id.isdigit() else None
        async with self.db.session() as session:
            await session.exec(
                update(OutboxMessage)
                .where(col(OutboxMessage.id) == row.id)
                .values(status="sent", sent_at=now, sent_message_id=message_id, last_error=None)
            )
            post_kind = row.payload.get("post_kind")
            if post_kind and message_id is not None and row.tip_id and row.inbox_id and row.chat_id:
                session.add(
                    InboxPost(
                        inbox_id=row.inbox_id,
                        chat_id=row.chat_id,
                        message_id=message_id,
                        tip_id=row.tip_id,
                        kind=str(post_kind),
                        created_at=now,
                    )
                )
            await session.commit()

    async def _retry(
        self, row: OutboxMessage, wait: timedelta, error: str, *, attempt: bool = True
    ) -> None:
        """Put a row back for a later attempt (or give up after too many real attempts)."""
        if attempt and row.attempts >= MAX_ATTEMPTS:
            if row.inbox_id is not None:
                # An inbox that failed for hours is treated as gone: its tips go to the next
                # level and supervisors are alerted, rather than the card dying silently.
                log.error("inbox row %s failed %d times; re-routing", row.id, row.attempts)
                await self._unreachable(row, f"failing for {row.attempts} attempts: {error}")
                return
            log.error("outbox row %s gave up after %d attempts: %s", row.id, row.attempts, error)
            await self._finish(row, "dead", error)
            return
        attempts = row.attempts if attempt else max(0, row.attempts - 1)
        async with self.db.session() as session:
            await session.exec(
                update(OutboxMessage)
                .where(col(OutboxMessage.id) == row.id)
                .values(
                    status="pending",
                    attempts=attempts,
                    next_attempt_at=self.clock() + wait,
                    last_error=error[:255],
                )
            )
            await session.commit()

    async def _finish(self, row: OutboxMessage, status: str, error: str) -> None:
        """Close a row for good."""
        async with self.db.session() as session:
            await session.exec(
                update(OutboxMessage)
                .where(col(OutboxMessage.id) == row.id)
                .values(status=status, last_error=error[:255])
            )
            await session.commit()

    async def _hold(self, row: OutboxMessage, reason: str) -> None:
        """Keep a row until its citizen writes again; tell the officer whose reply it is."""
        async with self.db.session() as session:
            await session.exec(
                update(OutboxMessage)
                .where(col(OutboxMessage.id) == row.id)
                .values(status=HELD, last_error=reason[:255])
            )
            tip = await session.get(Tip, row.tip_id) if row.tip_id is not None else None
            if tip is not None and row.kind == "tipster":
                await InboxService.queue_reply_held(session, t=self.t, tip=tip, now=self.clock())
            await session.commit()
        self.wake()

    async def _unreachable(self, row: OutboxMessage, error: str) -> None:
        """A chat is gone: for an inbox, mark it broken, re-route its tips and alert."""
        if row.inbox_id is None:
            # A tipster or staff member blocked the bot: nothing to re-route.
            await self._finish(row, "dead", error)
            return
        now = self.clock()
        async with self.db.session() as session:
            inbox = await session.get(Inbox, row.inbox_id)
            assert inbox is not None and inbox.id is not None
            await session.exec(
                update(OutboxMessage)
                .where(
                    col(OutboxMessage.inbox_id) == inbox.id,
                    col(OutboxMessage.status).in_(("pending", "sending")),
                )
                .values(status="dead", last_error=f"inbox broken: {error}"[:255])
            )
            if inbox.status == "active":
                inbox.status = "broken"
                inbox.updated_at = now
                session.add(inbox)
                log.warning("inbox %s is broken (%s); re-routing its tips", inbox.id, error)
            stranded = (
                await session.exec(
                    select(Tip).where(Tip.inbox_id == inbox.id, Tip.status != TipStatus.CLOSED)
                )
            ).all()
            for tip in stranded:
                new_inbox = await routing.deliver(
                    session, tip=tip, t=self.t, now=now, reason="inbox_broken", exclude={inbox.id}
                )
                commune = await session.get(Commune, tip.commune_code)
                await routing.alert_supervisors(
                    session,
                    province_code=commune.province_code if commune else inbox.province_code,
                    text=routing.broken_inbox_alert(self.t, inbox, tip, new_inbox),
                    now=now,
                )
            await session.commit()
        self.wake()


_GONE_CHAT = object()  # _send_row's answer when the chat can no longer be reached


class _UndeliverableError(Exception):
    """A row that can never be sent (purged file, undecryptable route)."""
