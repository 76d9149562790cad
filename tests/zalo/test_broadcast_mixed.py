"""A broadcast to Telegram and Zalo OA subscribers at once, each through its own channel."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from sqlmodel import select

from sandbox.client import EmulatorClient, User
from sandbox.zalo_client import ZaloCitizen
from sandbox.zalo_oa import ZaloOaEmulator
from storage.models import Delivery, Subscriber
from tests.faults.tipline import KHA_CUU_LABEL, Processes, TipLine, eventually
from tests.serve.conftest import tinbao_cli
from tests.zalo.conftest import oa_settings
from tests.zalo.test_zalo_bot import KHA_CUU

pytestmark = pytest.mark.faults  # real processes


def hours_away(offset: int) -> tuple[int, int]:
    """A one-hour window starting `offset` hours from now, Vietnam time (never now)."""
    hour = datetime.now(ZoneInfo("Asia/Ho_Chi_Minh")).hour
    return (hour + offset) % 24, (hour + offset + 1) % 24


async def subscribe_on_zalo(citizen: ZaloCitizen) -> None:
    """đăng ký → the commune by name → every topic (Xong)."""
    await citizen.say("đăng ký", lambda text: "1." in text)
    await citizen.say("kha cuu", "Khả Cửu")
    await citizen.choose(KHA_CUU, "Xong")
    await citizen.choose("Xong", "Xã Khả Cửu")


async def subscribe_on_telegram(tipline: TipLine, client: EmulatorClient, user: User) -> None:
    """/subscribe → the commune by name → Xong, with the buttons."""

    def has(label: str) -> Callable[[dict[str, Any]], bool]:
        def check(message: dict[str, Any]) -> bool:
            rows = (message.get("reply_markup") or {}).get("inline_keyboard", [])
            return any(label in button.get("text", "") for row in rows for button in row)

        return check

    async def press(label: str) -> None:
        message = await tipline.reply(user.id, has(label))
        rows = message["reply_markup"]["inline_keyboard"]
        data = next(b["callback_data"] for row in rows for b in row if label in b["text"])
        await client.press(user, user.id, message["message_id"], data)

    await client.send_text(user, "/subscribe")
    await tipline.reply(user.id, lambda m: True)
    await client.send_text(user, "kha cuu")
    await press(KHA_CUU_LABEL)
    await press("Xong")
    await tipline.reply(user.id, lambda m: "Xã Khả Cửu" in str(m.get("text")))


async def test_one_broadcast_reaches_telegram_and_zalo_oa_and_oa_rules_are_kept(
    start_oa_serve: Callable[..., Any],
    oa_citizen: Callable[..., ZaloCitizen],
    zalo_oa: ZaloOaEmulator,
    tipline: TipLine,
    client: EmulatorClient,
    processes: Processes,
) -> None:
    quiet_start, quiet_end = hours_away(3)
    zalo_oa.night_hours = hours_away(5)  # Zalo's night, too, away from now
    quiet = {"TINBAO_QUIET_START": str(quiet_start), "TINBAO_QUIET_END": str(quiet_end)}
    await start_oa_serve(telegram=True, **quiet)
    telegram_user = User(6_900_001, "Người dân Telegram")
    await subscribe_on_telegram(tipline, client, telegram_user)
    zalo_user = oa_citizen("theo-doi", "Người dân Zalo")
    await zalo_user.follow()
    await zalo_user.wait_for("Gửi tin báo")
    await subscribe_on_zalo(zalo_user)
    async with tipline.db.session() as session:
        channels = sorted((await session.exec(select(Subscriber.channel))).all())
    assert channels == ["telegram", "zalo_oa"]

    env = {**oa_settings(zalo_oa), **quiet}
    text = "<b>Cảnh giác lừa đảo qua mạng</b>\nKhông chuyển tiền cho người lạ tự xưng công an."
    made = tinbao_cli(processes, "broadcast", "create", "--text", text, **env)
    assert made.returncode == 0, made.stdout + made.stderr

    await tipline.reply(telegram_user.id, lambda m: "lừa đảo qua mạng" in str(m.get("text")))
    promotion = await zalo_user.wait_for("Cảnh giác lừa đảo", timeout=45)
    assert promotion[-1]["type"] == "promotion"  # a "tin truyền thông", not a consultation
    assert "<b>" not in promotion[-1]["text"]  # plain text on Zalo

    # A second broadcast the same day: Zalo refuses the OA's second one to that person, and
    # the refusal is counted apart from failures; Telegram's subscriber gets it.
    again = tinbao_cli(processes, "broadcast", "create", "--text", "Lần hai: " + text, **env)
    assert again.returncode == 0, again.stdout + again.stderr
    await tipline.reply(telegram_user.id, lambda m: "Lần hai" in str(m.get("text")))

    async def statuses() -> Counter[str]:
        async with tipline.db.session() as session:
            return Counter((await session.exec(select(Delivery.status))).all())

    async def settled() -> bool:
        return (await statuses()) == Counter({"sent": 3, "refused": 1})

    await eventually("three sent, one refused by Zalo", settled, timeout=45)
    assert zalo_oa.counters.get("quota_refused") == 1
