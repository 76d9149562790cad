"""The outbox sender: claims due rows, sends them, marks them; retries, re-routes, alerts.

Delivery is at-least-once by construction: a row is claimed (status "sending") and committed
before the send, and marked "sent" after it. A crash between the two leaves the row "sending";
once its lease runs out it is sent again, so at most the message in flight repeats; none is lost.

Each chat has its own worker task, which sends that chat's rows in id order, one at a time (a
card before its files). The loop that claims never waits for sends: a group paced at 20 messages
a minute by Telegram holds back only its own rows, never another chat's.
"""

from __future__ import annotations

import asyncio
import bisect
import logging
from collections import defaultdict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import or_, update
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

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
# A chat that fails while the platform answers is the chat's problem; when the platform does not
# answer (getMe fails), or every chat fails and none got through for this long, it is an outage:
# an inbox is not marked broken for it (its tips would all be moved and everyone alerted).
OUTAGE_WINDOW = timedelta(minutes=10)
# Marking a sent row keeps trying through a database outage this long (then the lease decides).
MARK_RETRY_FOR = timedelta(minutes=10)
MARK_RETRY_FIRST = 0.2
MARK_RETRY_LONGEST = 5.0
CYCLE_FAILED = "outbox sender cycle failed; retrying"

# Who a worker sends to: ("chat", chat id) for staff and inbox groups; ("route", ciphertext)
# for a tipster, whose rows carry no chat id (rows written from the same ciphertext, such as
# replies to one tip, stay in order; the chat behind it is known only after decryption).
ChatKey = tuple[str, int | bytes]


def chat_key(row: OutboxMessage) -> ChatKey:
    """The worker a row belongs to."""
    if row.chat_id is not None:
        return ("chat", row.chat_id)
    return ("route", row.route or b"")


class _Worker:
    """One chat's rows in id order, and the task sending them."""

    def __init__(self, rows: list[OutboxMessage]) -> None:
        self.rows = rows
        self.task: asyncio.Task[None] | None = None

    def add(self, row: OutboxMessage) -> None:
        """Queue a row in id order (a row reclaimed after its lease may be older)."""
        bisect.insort(self.rows, row, key=lambda r: r.id or 0)


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
        # Chats sent to at once, each one row at a time: at most this many sends in flight.
        self.concurrency = max(1, concurrency)
        self.poll_interval = poll_interval
        self._workers: dict[ChatKey, _Worker] = {}
        self._wake = asyncio.Event()  # set by wake() and by a worker that finished
        self._stopping = False
        self._errors: list[BaseException] = []
        # Per channel: when a send last got through, and which chats failed since (by when).
        self._last_sent: dict[str, datetime] = {}
        self._failing: dict[str, dict[Any, datetime]] = defaultdict(dict)
        self._outage_logged: set[str] = set()

    def wake(self) -> None:
        """Ask the loop to look for work now (called after a commit that queued rows)."""
        self._wake.set()

    async def run(self, stop: asyncio.Event) -> None:
        """Send until `stop` is set; database or network trouble is waited out, never fatal.

        On stop, each worker finishes the row in hand and puts its other claimed rows back.
        """
        self._stopping = False
        stopped = asyncio.ensure_future(stop.wait())
        clean = False
        try:
            while not stop.is_set():
                # Cleared before looking for work, so a wake-up arriving during the claim is kept.
                self._wake.clear()
                for error in self._take_errors():
                    log.error(CYCLE_FAILED, exc_info=error)
                try:
                    claimed = await self._dispatch()
                except Exception:  # the database may be away for a while: wait and try again
                    log.exception(CYCLE_FAILED)
                    claimed = 0
                    self._wake.clear()  # a worker ending on the same trouble must not spin
                if claimed and self._free() > 0:
                    continue  # more may be due: claim again before waiting
                woken = asyncio.ensure_future(self._wake.wait())
                try:
                    await asyncio.wait(
                        (woken, stopped),
                        timeout=self.poll_interval,
                        return_when=asyncio.FIRST_COMPLETED,
                    )
                finally:
                    woken.cancel()
            clean = True
        finally:
            stopped.cancel()
            await self._stop_workers(cancel=not clean)
            for error in self._take_errors():
                log.error(CYCLE_FAILED, exc_info=error)

    async def drain(self, *, max_cycles: int = 1000) -> int:
        """Send everything due now (tests and CLI); return how many rows were handled."""
        total = 0
        try:
            for _ in range(max_cycles):
                self._raise_errors()
                claimed = await self._dispatch()
                total += claimed
                if claimed and self._free() > 0:
                    continue
                tasks = [w.task for w in self._workers.values() if w.task is not None]
                if not tasks:
                    if claimed:
                        continue
                    return total
                # A finished worker may have queued rows (a re-route) or freed a chat.
                await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
            await self._stop_workers(cancel=False)
        except BaseException:
            await self._stop_workers(cancel=True)
            raise
        self._raise_errors()
        return total

    def _free(self) -> int:
        """How many more chats may get a worker now."""
        return self.concurrency - len(self._workers)

    def _take_errors(self) -> list[BaseException]:
        errors, self._errors = self._errors, []
        return errors

    def _raise_errors(self) -> None:
        errors = self._take_errors()
        if errors:
            raise errors[0]

    async def _dispatch(self) -> int:
        """Claim due rows of chats without a worker; hand each chat's rows to its worker."""
        free = self._free()
        if free <= 0:
            return 0
        busy = [chat for kind, chat in self._workers if kind == "chat" and isinstance(chat, int)]
        groups = await self._claim(busy=busy, new_chats=free)
        for key, rows in groups.items():
            worker = self._workers.get(key)
            if worker is not None:  # a tipster's route already being sent to
                for row in rows:
                    worker.add(row)
                continue
            worker = self._workers[key] = _Worker(rows)
            worker.task = asyncio.create_task(self._work(key, worker), name=f"outbox-{key[0]}")
            worker.task.add_done_callback(self._reap)
        return sum(len(rows) for rows in groups.values())

    def _reap(self, task: asyncio.Task[None]) -> None:
        """Keep a worker's failure for the loop to report (drain raises it)."""
        if not task.cancelled() and task.exception() is not None:
            self._errors.append(task.exception())  # type: ignore[arg-type]

    async def _stop_workers(self, *, cancel: bool) -> None:
        """Let every worker finish its row in hand and put the rest back (or cancel them)."""
        self._stopping = True
        tasks = [w.task for w in self._workers.values() if w.task is not None]
        if cancel:
            for task in tasks:
                task.cancel()
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)
        self._stopping = False

    async def _claim(
        self, *, busy: list[int], new_chats: int
    ) -> dict[ChatKey, list[OutboxMessage]]:
        """Take due rows (and rows whose lease expired after a crash) for this process.

        Rows of a chat with a worker here are skipped: they are claimed once it is done, so one
        chat's rows go in id order. Rows of chats beyond the first `new_chats` are left pending.
        """
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
            if busy:
                statement = statement.where(
                    or_(
                        col(OutboxMessage.chat_id).is_(None),
                        col(OutboxMessage.chat_id).not_in(busy),
                    )
                )
            if session.bind is not None and session.bind.dialect.name == "postgresql":
                # Several senders may run: each row goes to exactly one of them.
                statement = statement.with_for_update(skip_locked=True)
            groups: dict[ChatKey, list[OutboxMessage]] = {}
            for row in (await session.exec(statement)).all():
                key = chat_key(row)
                rows = groups.get(key)
                if rows is None:
                    if key not in self._workers:
                        if new_chats <= 0:
                            continue
                        new_chats -= 1
                    rows = groups[key] = []
                row.status = "sending"
                row.claimed_at = now
                row.attempts += 1
                session.add(row)
                rows.append(row)
            await session.commit()
            return groups

    async def _work(self, key: ChatKey, worker: _Worker) -> None:
        """Send one chat's rows in id order, one at a time, until none is left."""
        rows = worker.rows
        try:
            # No await between the last look at `rows` and leaving: a row the loop hands this
            # worker is either seen here or finds the worker gone and starts a new one.
            while rows:
                if self._stopping:
                    kept = rows[:]
                    rows.clear()
                    await self._release(kept)
                    continue
                row = rows.pop(0)
                outcome = await self._send_row(row, queued=rows)
                if isinstance(outcome, timedelta):
                    # Telegram asked this chat to wait: hitting it again now would only lengthen
                    # the wait, so its other rows wait the same time, claimed or not.
                    while rows:
                        await self._retry(rows.pop(0), outcome, "the chat's 429", attempt=False)
                    await self._postpone(key, outcome)
                # _GONE_CHAT: an inbox's other rows are dead now, so their claims fail to renew
                # and they are skipped; a blocked person's rows each get their own answer.
        finally:
            if self._workers.get(key) is worker:
                del self._workers[key]
            self._wake.set()

    async def _release(self, rows: list[OutboxMessage]) -> None:
        """Put claimed rows back as pending (a clean stop): the claim was not an attempt."""
        async with self.db.session() as session:
            for row in rows:
                # Only rows still ours: one whose lease ran out may be another sender's now.
                await session.exec(
                    update(OutboxMessage)
                    .where(
                        col(OutboxMessage.id) == row.id,
                        col(OutboxMessage.status) == "sending",
                        col(OutboxMessage.claimed_at) == row.claimed_at,
                    )
                    .values(status="pending", attempts=max(0, row.attempts - 1))
                )
            await session.commit()

    async def _renew_claim(
        self, session: AsyncSession, row: OutboxMessage, queued: Sequence[OutboxMessage] = ()
    ) -> bool:
        """Renew this row's lease right before sending it; False when another sender took it.

        The chat's rows still queued behind it are renewed too: they wait behind this chat's
        sends (a paced group takes 3 s a message), and a lease that ran out while a row waits
        would let another sender take it. Each row's claim time is its token: if it changed,
        the row is not ours any more. The caller commits (before the send).
        """
        now = self.clock()
        by_claim: dict[datetime | None, list[int]] = defaultdict(list)
        for mine in (row, *queued):
            if mine.id is not None:
                by_claim[mine.claimed_at].append(mine.id)
        renewed: set[int] = set()
        for claimed_at, ids in by_claim.items():
            result = await session.exec(
                update(OutboxMessage)
                .where(
                    col(OutboxMessage.id).in_(ids),
                    col(OutboxMessage.status) == "sending",
                    col(OutboxMessage.claimed_at) == claimed_at,
                )
                .values(claimed_at=now)
                .returning(col(OutboxMessage.id))
            )
            renewed.update(result.scalars().all())
        for mine in (row, *queued):
            if mine.id in renewed:
                mine.claimed_at = now
        return row.id in renewed

    async def _postpone(self, key: ChatKey, wait: timedelta) -> None:
        """Make the chat's rows not claimed yet wait out its 429 as well."""
        kind, chat = key
        until = self.clock() + wait
        async with self.db.session() as session:
            await session.exec(
                update(OutboxMessage)
                .where(
                    col(OutboxMessage.status) == "pending",
                    col(OutboxMessage.next_attempt_at) < until,
                    col(OutboxMessage.chat_id) == chat
                    if kind == "chat"
                    else col(OutboxMessage.route) == chat,
                )
                .values(next_attempt_at=until)
            )
            await session.commit()

    async def _send_row(self, row: OutboxMessage, queued: Sequence[OutboxMessage] = ()) -> object:
        """Send one row; returns _GONE_CHAT, a 429 wait (timedelta), or None when done."""
        # One transaction renews the lease and reads what the message needs: on PostgreSQL
        # each checkout from the pool the bot shares waits behind citizens' updates, and
        # separate ones for the renewal, the card and the thread multiplied that wait per row.
        undeliverable: _UndeliverableError | None = None
        async with self.db.session() as session:
            if not await self._renew_claim(session, row, queued):
                await session.commit()  # the other rows' renewals still count
                return None  # reclaimed by another sender, which sends it instead
            try:
                channel_name, message = await self._resolve(session, row)
            except _UndeliverableError as error:
                undeliverable = error
            # Committed before the send: the renewed lease is what keeps others off the row.
            await session.commit()
        if undeliverable is not None:
            await self._finish(row, "dead", str(undeliverable))
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
                self._last_sent[channel] = self.clock()
                self._failing[channel].clear()
                self._outage_logged.discard(channel)
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
                self._failing[channel][_chat_key(row)] = self.clock()
                backoff = min(MAX_BACKOFF, timedelta(seconds=2 ** min(row.attempts, 10)))
                if row.attempts >= MAX_ATTEMPTS and await self._platform_down(channel):
                    # Not this chat's fault: keep trying at the longest pause, uncounted.
                    self._log_outage(channel, reason)
                    await self._retry(row, MAX_BACKOFF, f"platform outage: {reason}", attempt=False)
                else:
                    await self._retry(row, backoff, reason)
                count_send(channel, SENDER, "retry")
        return None

    async def _platform_down(self, channel: str) -> bool:
        """Whether `channel`'s platform itself is failing, rather than one chat: its probe
        (Telegram's getMe) fails, or other chats fail too and nothing got through lately."""
        probe = getattr(self.channels.get(channel), "probe", None)
        if probe is not None:
            try:
                if not await probe():
                    return True
            except Exception:  # a probe that cannot run says the platform is not answering
                return True
        now = self.clock()
        recent = [at for at in self._failing[channel].values() if now - at <= OUTAGE_WINDOW]
        last = self._last_sent.get(channel)
        return len(recent) > 1 and (last is None or now - last > OUTAGE_WINDOW)

    def _log_outage(self, channel: str, reason: str) -> None:
        """Say once per outage that `channel` is down and inboxes are left alone."""
        if channel not in self._outage_logged:
            self._outage_logged.add(channel)
            log.warning(
                "%s is not answering (%s): an outage, not a broken inbox; retrying every %s",
                channel,
                reason,
                MAX_BACKOFF,
            )

    def _label(self, row: OutboxMessage) -> str:
        """The channel label of a row for metrics, without failing on a bad route."""
        if row.chat_id is not None:
            return STAFF_CHANNEL
        try:
            return self.keyring.decrypt_route(row.route or b"")[0]
        except RouteError:
            return "unknown"

    async def _resolve(
        self, session: AsyncSession, row: OutboxMessage
    ) -> tuple[str, OutboundMessage]:
        """The row's channel and the message it asks for, with what it refers to looked up."""
        channel, chat_id = self._chat_of(row)
        payload = row.payload
        if row.kind == "card" and row.tip_id is not None:
            # Render the card as the tip stands now: an action taken while the card waited in
            # the outbox (before any edit could find it) must not be lost.
            payload = {**payload, **await self._fresh_card(session, row.tip_id)}
        buttons = tuple(
            tuple((b["label"], b["data"]) for b in button_row)
            for button_row in payload.get("buttons") or ()
        )
        reply_to = await self._reply_to(session, row) if payload.get("reply_to_card") else None
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
                file=await self._kept_file(session, int(payload["attachment_id"])),
            )
        return channel, replace(base, text=payload["text"])

    async def _fresh_card(self, session: AsyncSession, tip_id: int) -> dict[str, Any]:
        """The current text and buttons of a tip's card."""
        tip = await session.get(Tip, tip_id)
        if tip is None:
            return {}
        reply = await routing.render_card(session, self.t, tip)
        return {
            "text": reply.text,
            "buttons": outbox_buttons(reply, f"{routing.CARD_PREFIX}{tip_id}:"),
        }

    async def _kept_file(self, session: AsyncSession, attachment_id: int) -> OutboundFile:
        """A kept (sanitized) file, to be re-sent as a new upload."""
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

    async def _reply_to(self, session: AsyncSession, row: OutboxMessage) -> str | None:
        """Thread a message under its tip's card in that chat, when the card is there."""
        if row.tip_id is None or row.chat_id is None:
            return None
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
        """Record a successful send, retrying while the database is away.

        The message has gone out: giving up here would let the lease run out and send it
        again. While this worker retries, its chat counts as busy, so this process claims none
        of the chat's rows; only a process dying now repeats the message.
        """
        pause = MARK_RETRY_FIRST
        deadline = asyncio.get_running_loop().time() + MARK_RETRY_FOR.total_seconds()
        while True:
            try:
                await self._record_sent(row, sent_id)
                return
            except Exception:
                if asyncio.get_running_loop().time() > deadline:
                    raise
                log.warning("could not mark outbox row %s sent; retrying", row.id, exc_info=True)
                await asyncio.sleep(pause)
                pause = min(pause * 2, MARK_RETRY_LONGEST)

    async def _record_sent(self, row: OutboxMessage, sent_id: str | None) -> None:
        """Mark the row sent and keep the post, so replies to it find the tip."""
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
            newly_broken = inbox.status == "active"
            if newly_broken:
                inbox.status = "broken"
                inbox.updated_at = now
                session.add(inbox)
                log.warning("inbox %s is broken (%s); re-routing its tips", inbox.id, error)
            stranded = (
                await session.exec(
                    select(Tip).where(Tip.inbox_id == inbox.id, Tip.status != TipStatus.CLOSED)
                )
            ).all()
            moved: list[tuple[Tip, Inbox | None]] = []
            for tip in stranded:
                new_inbox = await routing.deliver(
                    session, tip=tip, t=self.t, now=now, reason="inbox_broken", exclude={inbox.id}
                )
                moved.append((tip, new_inbox))
            if newly_broken or moved:
                # One alert per inbox, naming every tip it moved, not one per tip.
                commune = await session.get(Commune, moved[0][0].commune_code) if moved else None
                await routing.alert_supervisors(
                    session,
                    province_code=commune.province_code if commune else inbox.province_code,
                    text=routing.broken_inbox_summary(self.t, inbox, moved),
                    now=now,
                )
            await session.commit()
        self.wake()


_GONE_CHAT = object()  # _send_row's answer when the chat can no longer be reached


def _chat_key(row: OutboxMessage) -> Any:
    """What tells one chat from another among a channel's rows."""
    return row.chat_id if row.chat_id is not None else (row.tip_id, bytes(row.route or b""))


class _UndeliverableError(Exception):
    """A row that can never be sent (purged file, undecryptable route)."""
