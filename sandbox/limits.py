"""Flood limits: token buckets per bot and per chat, like Telegram's."""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

_K = TypeVar("_K")


@dataclass(frozen=True, slots=True)
class EmulatorLimits:
    """How fast a bot may send; the defaults follow Telegram's published limits."""

    enabled: bool = True
    # ~30 messages per second across all chats of one bot.
    bot_per_second: float = 30.0
    bot_burst: int = 30
    # ~1 message per second in one private chat, tolerating short bursts.
    private_per_second: float = 1.0
    private_burst: int = 3
    # 20 messages per minute in one group.
    group_per_minute: float = 20.0
    group_burst: int = 20

    @classmethod
    def off(cls) -> EmulatorLimits:
        """Return limits that never refuse (for unit tests)."""
        return cls(enabled=False)

    @classmethod
    def telegram(cls) -> EmulatorLimits:
        """Return Telegram-like limits (the defaults)."""
        return cls()


@dataclass(frozen=True, slots=True)
class Refusal:
    """Why a send was refused and how long the bot must wait."""

    retry_after: int
    scope: str  # "bot", "chat" or "group": the bucket that ran dry


class _Bucket:
    __slots__ = ("tokens", "updated")

    def __init__(self, tokens: float, now: float) -> None:
        self.tokens = tokens
        self.updated = now


class RateLimiter:
    """Token buckets keyed by bot and by (bot, chat); O(1) per send."""

    def __init__(self, limits: EmulatorLimits, clock: Callable[[], float] = time.monotonic) -> None:
        self.limits = limits
        self._clock = clock
        self._bots: dict[int, _Bucket] = {}
        self._chats: dict[tuple[int, int], _Bucket] = {}

    def reset(self) -> None:
        """Forget all buckets (every bot and chat starts full again)."""
        self._bots.clear()
        self._chats.clear()

    def acquire(self, bot_id: int, chat_id: int, *, is_group: bool) -> Refusal | None:
        """Take one send from the bot's and the chat's buckets, or say how long to wait."""
        limits = self.limits
        if not limits.enabled:
            return None
        now = self._clock()
        if is_group:
            chat_rate, chat_burst, chat_scope = (
                limits.group_per_minute / 60.0,
                limits.group_burst,
                "group",
            )
        else:
            chat_rate, chat_burst, chat_scope = (
                limits.private_per_second,
                limits.private_burst,
                "chat",
            )
        bot_bucket = self._refill(self._bots, bot_id, limits.bot_per_second, limits.bot_burst, now)
        chat_bucket = self._refill(self._chats, (bot_id, chat_id), chat_rate, chat_burst, now)
        # Both buckets must have a token before either is charged, so a refusal costs nothing.
        waits: list[tuple[float, str]] = []
        if bot_bucket.tokens < 1.0:
            waits.append(((1.0 - bot_bucket.tokens) / limits.bot_per_second, "bot"))
        if chat_bucket.tokens < 1.0:
            waits.append(((1.0 - chat_bucket.tokens) / chat_rate, chat_scope))
        if waits:
            wait, scope = max(waits)
            return Refusal(retry_after=max(1, math.ceil(wait)), scope=scope)
        bot_bucket.tokens -= 1.0
        chat_bucket.tokens -= 1.0
        return None

    @staticmethod
    def _refill(
        buckets: dict[_K, _Bucket], key: _K, rate: float, burst: int, now: float
    ) -> _Bucket:
        bucket = buckets.get(key)
        if bucket is None:
            bucket = buckets[key] = _Bucket(float(burst), now)
            return bucket
        elapsed = now - bucket.updated
        if elapsed > 0:
            bucket.tokens = min(float(burst), bucket.tokens + elapsed * rate)
            bucket.updated = now
        return bucket
