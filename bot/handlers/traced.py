"""Which handler took an update: named callbacks feed the per-update log line and metrics."""

from __future__ import annotations

import functools
from collections.abc import Callable, Coroutine
from contextvars import ContextVar
from typing import Any

from telegram.ext import Application

# A per-update record the update processor creates before handling and reads afterwards; the
# callback that runs writes its name into it. A holder (not a plain value) because PTB may run
# the callback in a child context, where a set() would not be seen by the processor.
CURRENT: ContextVar[dict[str, str] | None] = ContextVar("tinbao_update_trace", default=None)


def _named(
    callback: Callable[..., Coroutine[Any, Any, Any]],
) -> Callable[..., Coroutine[Any, Any, Any]]:
    """Wrap a handler callback so the update's trace records its name."""
    name = f"{callback.__module__.rsplit('.', 1)[-1]}.{callback.__name__}"

    @functools.wraps(callback)
    async def run(*args: Any, **kwargs: Any) -> Any:
        trace = CURRENT.get()
        if trace is not None:
            trace["handler"] = name
        return await callback(*args, **kwargs)

    return run


def name_callbacks(application: Application[Any, Any, Any, Any, Any, Any]) -> None:
    """Wrap every registered handler's callback (call once, after registering them)."""
    for handlers in application.handlers.values():
        for handler in handlers:
            handler.callback = _named(handler.callback)
