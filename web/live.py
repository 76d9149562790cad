"""Live updates (Server-Sent Events): new tips, thread messages and actions, from the database.

Nothing is pushed between instances: each stream polls a few indexed maxima for the reader's
scope every POLL_SECONDS, so a tip taken by any instance (or a Telegram button pressed
anywhere) reaches every open console. The stream re-checks the session each round, ends when
it is revoked or the instance drains, and the browser's EventSource reconnects (to any
instance) on its own.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator

from starlette.requests import Request
from starlette.responses import Response, StreamingResponse

from web import queries, sessions
from web.guard import SESSION_COOKIE, console_of, route

POLL_SECONDS = 1.0
KEEPALIVE_ROUNDS = 15  # a comment line now and then keeps proxies from closing an idle stream
RETRY_MS = 2000


@route(stream=True)
async def events(request: Request) -> Response:
    """The stream: `event: change` with the counters whenever one of them moved."""
    console = console_of(request)
    staff = request.state.current.staff
    token = request.cookies.get(SESSION_COOKIE, "")
    tip_param = request.query_params.get("tip", "")
    tip_id = int(tip_param) if tip_param.isdigit() and len(tip_param) < 10 else None
    if tip_id is not None:
        async with console.services.db.session() as session:
            if await queries.scoped_tip(session, staff=staff, tip_id=tip_id) is None:
                tip_id = None  # no stream of a tip the reader may not open

    async def stream() -> AsyncIterator[str]:
        yield f"retry: {RETRY_MS}\n\n"
        last: dict[str, int] | None = None
        rounds = 0
        while not console.draining() and not await request.is_disconnected():
            async with console.services.db.session() as session:
                live = await sessions.load(
                    session,
                    token=token,
                    now=console.clock(),
                    limits=console.policy.timeouts,
                    touch=False,
                )
                if live is None:
                    yield "event: ended\ndata: {}\n\n"
                    return
                now = await queries.versions(session, staff=live.staff, tip_id=tip_id)
            if now != last:
                if last is not None:
                    yield f"event: change\ndata: {json.dumps(now)}\n\n"
                else:
                    yield f"event: hello\ndata: {json.dumps(now)}\n\n"
                last = now
            rounds += 1
            if rounds % KEEPALIVE_ROUNDS == 0:
                yield ": keepalive\n\n"
            await asyncio.sleep(POLL_SECONDS)

    return StreamingResponse(
        stream(),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
    )
