"""Serving: a background thread, the event stream and the CLI entry point."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import httpx

from sandbox.client import EmulatorClient
from sandbox.emulator import Emulator, EmulatorLimits
from tests.sandbox.support import ANN, TOKEN


async def test_start_in_thread_serves_and_stops() -> None:
    emu = Emulator(limits=EmulatorLimits.off())
    emu.add_bot(TOKEN, username="tinbao_bot")
    running = emu.start_in_thread()
    try:
        async with httpx.AsyncClient(base_url=running.url) as http:
            me = (await http.get(f"/bot{TOKEN}/getMe")).json()["result"]
            assert me["username"] == "tinbao_bot"
            # A long poll in flight must not hold up stopping.
            poll = asyncio.create_task(http.post(f"/bot{TOKEN}/getUpdates", json={"timeout": 50}))
            while not emu.bot().counters.calls_by_method.get("getUpdates"):
                await asyncio.sleep(0.001)  # until the poll reached the server
            await asyncio.to_thread(running.stop)
            assert (await asyncio.wait_for(poll, 5)).json() == {"ok": True, "result": []}
    finally:
        running.stop()


async def read_events(
    response: httpx.Response, count: int, connected: asyncio.Event
) -> list[dict[str, Any]]:
    """Read count data events from an SSE response; set connected once subscribed."""
    events: list[dict[str, Any]] = []
    async for line in response.aiter_lines():
        if line == ": connected":
            connected.set()
        elif line.startswith("data: "):
            events.append(json.loads(line.removeprefix("data: ")))
            if len(events) == count:
                break
    return events


async def test_event_stream(emulator: Emulator) -> None:
    async with (
        emulator.serving() as url,
        httpx.AsyncClient(base_url=url) as http,
        EmulatorClient(url) as users,
        http.stream("GET", "/control/events") as stream,
    ):
        assert stream.headers["content-type"].startswith("text/event-stream")
        connected = asyncio.Event()
        reader = asyncio.create_task(read_events(stream, 4, connected))
        await asyncio.wait_for(connected.wait(), 5)
        sent = await users.send_text(ANN, "hello")
        bot_message = (
            await http.post(f"/bot{TOKEN}/sendMessage", json={"chat_id": ANN.id, "text": "hi"})
        ).json()["result"]
        await http.post(
            f"/bot{TOKEN}/editMessageText",
            json={"chat_id": ANN.id, "message_id": bot_message["message_id"], "text": "hi!"},
        )
        await http.post(
            f"/bot{TOKEN}/deleteMessage",
            json={"chat_id": ANN.id, "message_id": sent["message_id"]},
        )
        events = await asyncio.wait_for(reader, 5)
    assert [e["type"] for e in events] == ["message", "message", "edit", "delete"]
    assert events[0]["message"]["text"] == "hello" and not events[0]["message"]["from_bot"]
    assert events[2]["message"]["text"] == "hi!" and events[2]["message"]["edited"]
    assert events[3] == {
        "type": "delete",
        "bot": "tinbao_bot",
        "chat_id": ANN.id,
        "message_id": sent["message_id"],
        "seq": events[3]["seq"],
    }
    seqs = [e["seq"] for e in events]
    assert seqs == sorted(seqs)
