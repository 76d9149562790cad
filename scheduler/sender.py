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
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import update
from sqlmodel import col, select
from telegram import Bot, InlineKeyboardButton, InlineKeyboardMarkup, InputFile, ReplyParameters
from telegram.constants import ParseMode
from telegram.error import BadRequest, Forbidden, RetryAfter, TelegramError

from bot.i18n import Translator
from bot.services import routing
from bot.services.anonymity import Keyring, RouteError
from bot.services.outbox import buttons_payload as outbox_buttons
from storage.db import Database
from storage.models import Commune, Inbox, InboxPost, OutboxMessage, Tip, TipAttachment, TipStatus
from storage.types import utcnow
from tinbao.metrics import count_send

log = logging.getLogger(__name__)

# Telegram answers these when a chat can no longer receive the bot's messages.
_GONE = (
    "chat not found",
    "bot was kicked",
    "not enough rights",
    "have no rights",
    "chat_write_forbidden",
)
MAX_BACKOFF = timedelta(minutes=10)
# Labels of this sender's send metrics (every outbox row is Telegram's for now).
CHANNEL = "telegram"
SENDER = "outbox"
MAX_ATTEMPTS = 20


class OutboxSender:
    """Sends outbox rows through the Bot API, paced by the bot's rate limiter."""

    def __init__(
        self,
        *,
        db: Database,
        bot: Bot,
        keyring: Keyring,
        t: Translator,
        clock: Callable[[], datetime] = utcnow,
        lease: timedelta = timedelta(seconds=60),
        batch_size: int = 50,
        concurrency: int = 16,
        poll_interval: float = 0.5,
    ) -> None:
        self.db = db
        self.bot = bot
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
            message_id = await self._deliver(row)
        except RetryAfter as error:
            wait = error.retry_after
            seconds = wait.total_seconds() if isinstance(wait, timedelta) else float(wait)
            # Flood control is Telegram asking us to wait, not a failed attempt: it must never
            # use up the attempts and kill a message during a long flood wait.
            wait_for = timedelta(seconds=seconds)
            await self._retry(row, wait_for, f"429 retry after {seconds:.0f}s", attempt=False)
            count_send(CHANNEL, SENDER, "rate_limited")
            return wait_for
        except Forbidden as error:
            await self._unreachable(row, str(error))
            count_send(CHANNEL, SENDER, "unreachable")
            return _GONE_CHAT
        except BadRequest as error:
            text = str(error).lower()
            if any(marker in text for marker in _GONE):
                await self._unreachable(row, str(error))
                count_send(CHANNEL, SENDER, "unreachable")
                return _GONE_CHAT
            if "message is not modified" in text:
                await self._mark_sent(row, None)
                count_send(CHANNEL, SENDER, "sent")
            else:
                log.error("outbox row %s refused by the Bot API: %s", row.id, error)
                await self._finish(row, "dead", str(error))
                count_send(CHANNEL, SENDER, "dead")
        except (TelegramError, OSError) as error:
            backoff = min(MAX_BACKOFF, timedelta(seconds=2 ** min(row.attempts, 10)))
            await self._retry(row, backoff, str(error))
            count_send(CHANNEL, SENDER, "retry")
        except _UndeliverableError as error:
            await self._finish(row, "dead", str(error))
            count_send(CHANNEL, SENDER, "dead")
        else:
            await self._mark_sent(row, message_id)
            count_send(CHANNEL, SENDER, "sent")
        return None

    async def _deliver(self, row: OutboxMessage) -> int | None:
        """Make the Bot API call a row asks for; return the sent message id."""
        chat_id = self._chat_of(row)
        payload = row.payload
        if row.kind == "card" and row.tip_id is not None:
            # Render the card as the tip stands now: an action taken while the card waited in
            # the outbox (before any edit could find it) must not be lost.
            payload = {**payload, **await self._fresh_card(row.tip_id)}
        markup = _markup(payload.get("buttons"))
        reply = await self._reply_parameters(row) if payload.get("reply_to_card") else None
        if row.kind == "edit":
            await self.bot.edit_message_text(
                chat_id=chat_id,
                message_id=int(payload["message_id"]),
                text=payload["text"],
                parse_mode=ParseMode.HTML,
                reply_markup=markup,
            )
            return None
        if row.kind == "location":
            sent = await self.bot.send_location(
                chat_id,
                latitude=payload["latitude"],
                longitude=payload["longitude"],
                reply_parameters=reply,
            )
            return sent.message_id
        if row.kind == "file":
            return await self._send_file(row, chat_id, reply)
        sent = await self.bot.send_message(
            chat_id,
            payload["text"],
            parse_mode=ParseMode.HTML,
            reply_markup=markup,
            reply_parameters=reply,
            disable_web_page_preview=True,
        )
        return sent.message_id

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

    async def _send_file(
        self, row: OutboxMessage, chat_id: int, reply: ReplyParameters | None
    ) -> int:
        """Re-send a kept (sanitized) file as a new upload: a copy, never a forward."""
        async with self.db.session() as session:
            attachment = await session.get(TipAttachment, int(row.payload["attachment_id"]))
        if attachment is None or attachment.content is None:
            raise _UndeliverableError("attachment gone (purged)")
        upload = InputFile(
            attachment.content, filename=attachment.filename or f"file-{attachment.id}"
        )
        caption = str(row.payload.get("caption") or "")[:1024]
        senders = {
            "photo": self.bot.send_photo,
            "video": self.bot.send_video,
            "voice": self.bot.send_voice,
            "audio": self.bot.send_audio,
            "animation": self.bot.send_animation,
        }
        send = senders.get(attachment.kind, self.bot.send_document)
        sent = await send(chat_id, upload, caption=caption, reply_parameters=reply)  # type: ignore[operator]
        return int(sent.message_id)

    def _chat_of(self, row: OutboxMessage) -> int:
        """The chat a row goes to; a tipster's route is decrypted only here, at send time."""
        if row.chat_id is not None:
            return row.chat_id
        assert row.route is not None
        try:
            channel, chat_id = self.keyring.decrypt_route(row.route)
        except RouteError as error:
            raise _UndeliverableError("route cannot be decrypted") from error
        if channel != "telegram":
            raise _UndeliverableError(f"channel {channel} has no sender here")
        return int(chat_id)

    async def _reply_parameters(self, row: OutboxMessage) -> ReplyParameters | None:
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
        if post is None:
            return None
        return ReplyParameters(message_id=post.message_id, allow_sending_without_reply=True)

    async def _mark_sent(self, row: OutboxMessage, message_id: int | None) -> None:
        """Record a successful send (and the post, so replies to it find the tip)."""
        now = self.clock()
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


def _markup(buttons: list[list[dict[str, str]]] | None) -> InlineKeyboardMarkup | None:
    """Inline keyboard from stored button rows."""
    if not buttons:
        return None
    return InlineKeyboardMarkup(
        [
            [InlineKeyboardButton(b["label"], callback_data=b["data"]) for b in row]
            for row in buttons
        ]
    )
