"""A cosmetic start-up call that fails must not stop the bot (review: setMyCommands killed
`tinbao run`)."""

from __future__ import annotations

import pytest

from sandbox.client import EmulatorClient
from tests.faults.tipline import Processes, TipLine, eventually

pytestmark = pytest.mark.faults


async def test_the_bot_serves_while_set_my_commands_fails(
    processes: Processes, tipline: TipLine, client: EmulatorClient
) -> None:
    # Telegram refuses the command menu for the whole test.
    await client.add_fault("setMyCommands", status=502, seconds=600)
    bot = processes.start("bot", "run")

    async def polling() -> bool:
        counters = await client.counters()
        return bool(counters["calls_by_method"].get("getUpdates"))

    await eventually("the bot polls", polling, alive=processes.require_alive(bot))
    assert await client.commands() == [], "the menu was not set"
    short_id = await tipline.send_tip(1)  # citizens are served all the same
    assert short_id.startswith("T-")
    assert processes.alive(bot)
    assert "setMyCommands failed" in processes.log(bot)
