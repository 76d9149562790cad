"""`tinbao demo`: the real bot against the offline emulator, with a scripted citizen.

Everything runs in one process on the embedded SQLite database: the Bot API emulator (with
Telegram's rate limits on), the bot polling it exactly as it would poll Telegram, and a citizen
who sends a tip with a photo and then follows it up with the receipt code.
"""

from __future__ import annotations

import asyncio
import html
import re
from pathlib import Path
from typing import Any

from pydantic import SecretStr
from rich.console import Console
from rich.panel import Panel

from bot.app import build_application, start_polling, stop_polling
from sandbox.client import EmulatorClient, User
from sandbox.emulator import Emulator, EmulatorLimits
from tinbao.runtime import prepare_database
from tinbao.settings import Settings

DEMO_TOKEN = "123456:DEMO-TOKEN"
DEMO_USER = User(id=90_000_001, first_name="Người dân", username="nguoidan_demo")
_TAG = re.compile(r"<[^>]+>")
_CODE = re.compile(r"\b[0-9A-Z]{4}-[0-9A-Z]{4}-[0-9A-Z]{4}\b")


async def run_demo(data_dir: Path, *, keep_running: bool, console: Console) -> None:
    """Start emulator and bot, play the scripted citizen, and optionally keep serving."""
    data_dir.mkdir(parents=True, exist_ok=True)
    emulator = Emulator(limits=EmulatorLimits())
    emulator.add_bot(token=DEMO_TOKEN, username="tinbao_demo_bot", first_name="Tin báo an ninh")
    running = emulator.start_in_thread(host="127.0.0.1", port=0)
    settings = Settings(
        mode="demo",
        bot_token=SecretStr(DEMO_TOKEN),
        database_url=f"sqlite+aiosqlite:///{(data_dir / 'tinbao.db').resolve()}",
        telegram_api_url=running.url,
        data_dir=data_dir,
        _env_file=None,  # type: ignore[call-arg]
    )
    console.print(f"[bold]Bot API emulator[/bold] at {running.url}  (control API: /control)")
    await prepare_database(settings.database_url)
    application = build_application(settings)
    await start_polling(application)
    try:
        async with EmulatorClient(running.url) as client:
            await _scripted_citizen(client, console)
            if keep_running:
                console.print(
                    f"Still running. Act as any user through {running.url}/control "
                    "(see docs/emulator.md); Ctrl+C to stop."
                )
                await asyncio.Event().wait()
    finally:
        await stop_polling(application)
        running.stop()


async def _scripted_citizen(client: EmulatorClient, console: Console) -> None:
    """Send a tip the way a person would, printing the conversation."""
    chat = DEMO_USER.id

    async def say(text: str) -> list[dict[str, Any]]:
        console.print(Panel(text, title="Người dân", title_align="right", style="cyan"))
        await client.send_text(DEMO_USER, text)
        return await _show(await client.wait_bot_messages(chat, timeout=15))

    async def press(label: str) -> list[dict[str, Any]]:
        message, data, shown = await _button(client, chat, label)
        console.print(Panel(f"[bấm] {shown}", title="Người dân", title_align="right", style="cyan"))
        await client.press(DEMO_USER, chat, message, data)
        return await _show(await client.wait_bot_messages(chat, timeout=15))

    async def _show(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
        for message in messages:
            console.print(
                Panel(_plain(message), title="Bot tin báo", title_align="left", style="green")
            )
        await asyncio.sleep(1.1)  # a person reads; also keeps within Telegram's 1 msg/s per chat
        return messages

    await say("/start")
    await press("Gửi tin báo")
    await press("Ma túy")
    await press("Không")
    await say("kha cuu")
    await press("Xã Khả Cửu")
    await say(
        "Tối nào cũng có nhóm thanh niên tụ tập mua bán ma túy "
        "ở bãi đất trống cạnh nhà văn hóa khu 3."
    )
    console.print(
        Panel("[ảnh] hien-truong.jpg", title="Người dân", title_align="right", style="cyan")
    )
    await client.send_photo(DEMO_USER, _demo_photo(), caption="Ảnh chụp tối qua")
    await _show(await client.wait_bot_messages(chat, timeout=15))
    await press("Xong")
    receipt = await press("📨")
    match = _CODE.search(" ".join(m.get("text") or "" for m in receipt))
    if match:
        await say(f"/status {match.group(0)}")
    console.print(
        "[bold green]Demo complete:[/bold green] the tip is in the database; "
        "the police never see who sent it."
    )


async def _button(client: EmulatorClient, chat: int, label: str) -> tuple[int, str, str]:
    """The newest message with a button containing `label`: its id, the data, the full label."""
    for message in reversed(await client.transcript(chat)):
        for row in (message.get("reply_markup") or {}).get("inline_keyboard", []):
            for button in row:
                if label in button.get("text", ""):
                    return int(message["message_id"]), str(button["callback_data"]), button["text"]
    raise LookupError(label)


def _plain(message: dict[str, Any]) -> str:
    """A bot message as console text: tags stripped, buttons listed under it."""
    text = html.unescape(_TAG.sub("", message.get("text") or message.get("caption") or ""))
    rows = (message.get("reply_markup") or {}).get("inline_keyboard", [])
    buttons = "\n".join("  ".join(f"[ {b['text']} ]" for b in row) for row in rows)
    return text + ("\n\n" + buttons if buttons else "")


def _demo_photo() -> bytes:
    """A small JPEG made on the spot (no files shipped)."""
    from io import BytesIO

    from PIL import Image

    buffer = BytesIO()
    Image.new("RGB", (320, 240), (90, 120, 160)).save(buffer, "JPEG")
    return buffer.getvalue()
