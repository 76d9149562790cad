"""Fault injection: Bot API calls that fail or hang on purpose, to test a bot's recovery.

A rule matches calls by method (or "*") and optionally by chat id, and does one of:

- ``error``: answer with an HTTP error in Telegram's JSON shape (429 carries
  ``parameters.retry_after``), for the next ``count`` calls and/or for ``seconds``;
- ``hold_before``: keep the call waiting ``seconds`` before it takes effect, so nothing is
  recorded yet; a caller that hangs up meanwhile (killed, timed out) drops the call for good;
- ``hold_after``: let the call take effect (the message is in the transcript at once), then
  keep the HTTP answer back ``seconds``, which is what a crash "after send, before mark" needs.

Clearing the rules releases every held call at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import time
import weakref
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import Any

from sandbox.errors import ApiError, too_many_requests
from sandbox.params import Params
from sandbox.state import BotState

MODES = ("error", "hold_before", "hold_after")
Receive = Callable[[], Awaitable[Mapping[str, Any]]]


class CallerGoneError(Exception):
    """The caller hung up while its call was held before taking effect: the call is dropped."""


@dataclass(slots=True)
class FaultRule:
    """One rule: which calls it matches, what it does to them, and how long it lasts."""

    id: int
    method: str  # a Bot API method name, compared case-insensitively, or "*"
    mode: str
    status: int = 500
    retry_after: int = 1
    description: str | None = None
    count: int | None = None  # calls still to affect; None: no limit
    seconds: float | None = None  # error: how long the rule lasts; holds: how long a call waits
    chat_id: int | None = None
    expires_at: float | None = None  # error windows, on the fault set's clock
    matched: int = 0
    release: asyncio.Event | None = field(default=None, repr=False)

    def matches(self, method: str, chat_id: int | None, now: float) -> bool:
        """Tell whether a call is affected by this rule now."""
        if self.expires_at is not None and now >= self.expires_at:
            return False
        if self.method != "*" and self.method.lower() != method.lower():
            return False
        return self.chat_id is None or self.chat_id == chat_id

    def error(self) -> ApiError:
        """The Telegram-shaped error this rule answers with."""
        if self.status == 429:
            error = too_many_requests(self.retry_after)
            if self.description:
                error.description = self.description
            return error
        if self.description:
            return ApiError(self.status, self.description)
        prefix = {400: "Bad Request: ", 403: "Forbidden: "}.get(self.status)
        if prefix is not None:
            return ApiError(self.status, f"{prefix}injected fault")
        try:
            return ApiError(self.status, HTTPStatus(self.status).phrase)
        except ValueError:
            return ApiError(self.status, f"Error {self.status}")

    def view(self) -> dict[str, Any]:
        """The rule as JSON."""
        return {
            "id": self.id,
            "method": self.method,
            "mode": self.mode,
            "status": self.status,
            "retry_after": self.retry_after,
            "description": self.description,
            "count": self.count,
            "seconds": self.seconds,
            "chat_id": self.chat_id,
            "matched": self.matched,
        }


@dataclass(slots=True)
class FaultCounters:
    """What the fault rules did, for `/control/counters`."""

    injected_total: int = 0
    injected_by_mode: dict[str, int] = field(default_factory=dict)
    injected_by_method: dict[str, int] = field(default_factory=dict)
    held_now: int = 0  # calls waiting in a hold at this moment
    dropped_total: int = 0  # held-before calls whose caller hung up: they never took effect

    def as_dict(self, active_rules: int) -> dict[str, Any]:
        """JSON-ready counters."""
        return {
            "injected_total": self.injected_total,
            "injected_by_mode": dict(self.injected_by_mode),
            "injected_by_method": dict(self.injected_by_method),
            "held_now": self.held_now,
            "dropped_total": self.dropped_total,
            "active_rules": active_rules,
        }


class FaultSet:
    """The fault rules of one bot; lives in the serving event loop like the rest of its state."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        self.rules: list[FaultRule] = []
        self.counters = FaultCounters()
        self._ids = itertools.count(1)
        # Rules holding a call right now: a rule whose count ran out may still hold one.
        self._holding: list[FaultRule] = []

    def add(self, spec: Mapping[str, Any]) -> FaultRule:
        """Add a rule from its JSON description; ValueError says what is wrong with it."""
        method = spec.get("method", "*")
        if not isinstance(method, str) or not method:
            raise ValueError("method must be a Bot API method name or '*'")
        mode = spec.get("mode", "error")
        if mode not in MODES:
            raise ValueError(f"mode must be one of {', '.join(MODES)}")
        status = _integer(spec, "status", 500)
        if status is None or not 400 <= status <= 599:
            raise ValueError("status must be an HTTP error status (400-599)")
        retry_after = _integer(spec, "retry_after", 1)
        if retry_after is None or retry_after < 1:
            raise ValueError("retry_after must be at least 1")
        count = _integer(spec, "count", None)
        if count is not None and count < 1:
            raise ValueError("count must be at least 1 (or null: no limit)")
        seconds = spec.get("seconds")
        if seconds is not None:
            if isinstance(seconds, bool) or not isinstance(seconds, int | float) or seconds <= 0:
                raise ValueError("seconds must be a positive number (or null)")
            seconds = float(seconds)
        if mode != "error" and seconds is None:
            raise ValueError("a hold needs seconds: how long each call is held")
        description = spec.get("description")
        if description is not None and not isinstance(description, str):
            raise ValueError("description must be a string")
        rule = FaultRule(
            id=next(self._ids),
            method=method,
            mode=mode,
            status=status,
            retry_after=retry_after,
            description=description,
            count=count,
            seconds=seconds,
            chat_id=_integer(spec, "chat_id", None),
            # Only an error rule lasts for `seconds`; a hold's seconds is per call.
            expires_at=self.clock() + seconds if mode == "error" and seconds else None,
            release=asyncio.Event() if mode != "error" else None,
        )
        self.rules.append(rule)
        return rule

    def clear(self) -> int:
        """Remove every rule and release the calls they hold; return how many were removed."""
        removed = len(self.rules)
        for rule in (*self.rules, *self._holding):
            if rule.release is not None:
                rule.release.set()
        self.rules.clear()
        return removed

    def reset(self) -> None:
        """Remove every rule and zero the counters (the emulator is being reset)."""
        self.clear()
        held = self.counters.held_now
        self.counters = FaultCounters(held_now=held)

    def active(self) -> list[FaultRule]:
        """The rules still in force, oldest first."""
        now = self.clock()
        self.rules = [r for r in self.rules if r.expires_at is None or now < r.expires_at]
        return list(self.rules)

    def match(self, method: str, chat_id: int | None) -> FaultRule | None:
        """Take the first rule that affects this call (using up one of its count), if any."""
        now = self.clock()
        for rule in self.active():
            if not rule.matches(method, chat_id, now):
                continue
            rule.matched += 1
            if rule.count is not None:
                rule.count -= 1
                if rule.count <= 0:
                    self.rules.remove(rule)
            counters = self.counters
            counters.injected_total += 1
            counters.injected_by_mode[rule.mode] = counters.injected_by_mode.get(rule.mode, 0) + 1
            counters.injected_by_method[method] = counters.injected_by_method.get(method, 0) + 1
            return rule
        return None

    async def run(
        self,
        method: str,
        params: Params,
        call: Callable[[], Awaitable[Any]],
        receive: Receive,
    ) -> Any:
        """Run one Bot API call under the rules; `receive` reports the caller hanging up.

        Raises ApiError for an injected error and CallerGoneError when a call held before
        taking effect lost its caller.
        """
        rule = self.match(method, chat_id_of(params)) if self.rules else None
        if rule is None:
            return await call()
        if rule.mode == "error":
            raise rule.error()
        if rule.mode == "hold_before":
            if not await self._hold(rule, receive):
                self.counters.dropped_total += 1
                raise CallerGoneError(method)
            return await call()
        result = await call()
        await self._hold(rule, receive)
        return result

    async def _hold(self, rule: FaultRule, receive: Receive) -> bool:
        """Wait the rule's seconds, or until it is cleared; False if the caller hung up."""
        assert rule.release is not None and rule.seconds is not None
        self.counters.held_now += 1
        self._holding.append(rule)
        released = asyncio.ensure_future(rule.release.wait())
        hung_up = asyncio.ensure_future(_wait_disconnect(receive))
        try:
            done, _pending = await asyncio.wait(
                {released, hung_up}, timeout=rule.seconds, return_when=asyncio.FIRST_COMPLETED
            )
        finally:
            self.counters.held_now -= 1
            self._holding.remove(rule)
            for task in (released, hung_up):
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        return hung_up not in done


async def _wait_disconnect(receive: Receive) -> None:
    """Return once the server reports that the caller closed the connection."""
    # The body was read already, so the next ASGI message can only be http.disconnect.
    while (await receive()).get("type") != "http.disconnect":
        pass


def chat_id_of(params: Params) -> int | None:
    """The call's integer chat_id, if it has one (rules match on it)."""
    value = params.values.get("chat_id")
    if isinstance(value, bool):
        return None
    try:
        return int(value) if value is not None else None
    except (TypeError, ValueError):
        return None


def _integer(spec: Mapping[str, Any], key: str, default: int | None) -> int | None:
    value = spec.get(key, default)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise ValueError(f"{key} must be an integer")
    try:
        return int(value)
    except ValueError:
        raise ValueError(f"{key} must be an integer") from None


# The Bot API and the control API are wired separately and share only the bot states, so the
# rules hang off each BotState; weak keys let a discarded emulator take its rules with it.
_FAULTS: weakref.WeakKeyDictionary[BotState, FaultSet] = weakref.WeakKeyDictionary()


def faults_of(bot: BotState) -> FaultSet:
    """The fault rules of a bot (created empty on first use)."""
    found = _FAULTS.get(bot)
    if found is None:
        found = _FAULTS[bot] = FaultSet()
    return found
