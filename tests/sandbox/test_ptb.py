"""The real python-telegram-bot Application, polling the emulator over HTTP."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from telegram import InlineKeyboardButton, InlineKeyboardMarkup, Update
from telegram.constants import ParseMode
from telegram.ext import (
    Application,
    ApplicationBuilder,
    CallbackQueryHandler,
    CommandHandler,
    ContextTypes,
    MessageHandler,
    filters,
)

from sandbox.client import EmulatorClient
from sandbox.emulator import Emulator
from tests.sandbox.support import ANN, BEN, TOKEN, png


async def start(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    assert update.message is not None
    await context.bot.set_my_commands([("start", "Bắt đầu"), ("tip", "Gửi tin báo")])
    await update.message.reply_text(f"Xin chào! payload={' '.join(context.args or [])}")


async def echo(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    assert update.message is not None and update.message.text is not None
    keyboard = InlineKeyboardMarkup(
        [
            [
                InlineKeyboardButton("Đúng", callback_data="yes"),
                InlineKeyboardButton("Sai", callback_data="no"),
            ]
        ]
    )
    await update.message.reply_text(
        f"<b>Echo:</b> {update.message.text}",
        parse_mode=ParseMode.HTML,
        reply_markup=keyboard,
        do_quote=True,  # sends reply_parameters
    )


async def pressed(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    query = update.callback_query
    assert query is not None
    await query.answer(f"Bạn chọn {query.data}", show_alert=query.data == "no")
    await query.edit_message_text(f"Đã chọn: {query.data}")


async def photo(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    assert update.message is not None
    file = await update.message.photo[-1].get_file()
    data = await file.download_as_bytearray()
    await update.message.reply_photo(bytes(data), caption=f"{len(data)} bytes")


@pytest.fixture
async def served(emulator: Emulator) -> AsyncIterator[str]:
    async with emulator.serving() as url:
        yield url


@pytest.fixture
async def app(served: str) -> AsyncIterator[Application]:
    application = (
        ApplicationBuilder()
        .token(TOKEN)
        .base_url(f"{served}/bot")
        .base_file_url(f"{served}/file/bot")
        .build()
    )
    application.add_handler(CommandHandler("start", start))
    application.add_handler(MessageHandler(filters.TEXT & ~filters.COMMAND, echo))
    application.add_handler(MessageHandler(filters.PHOTO, photo))
    application.add_handler(CallbackQueryHandler(pressed))
    await application.initialize()
    await application.start()
    assert application.updater is not None
    await application.updater.start_polling(poll_interval=0, timeout=1)
    yield application
    await application.updater.stop()
    await application.stop()
    await application.shutdown()


async def test_ptb_echo_buttons_and_files(app: Application, served: str) -> None:
    assert app.bot.username == "tinbao_bot"
    async with EmulatorClient(served) as users:
        await users.send_text(ANN, "/start tip_123")
        (welcome,) = await users.wait_bot_messages(ANN.id)
        assert welcome["text"] == "Xin chào! payload=tip_123"
        assert [c["command"] for c in await users.commands()] == ["start", "tip"]

        await users.send_text(ANN, "Có trộm ở ngõ 5")
        (reply,) = await users.wait_bot_messages(ANN.id)
        assert reply["text"] == "Echo: Có trộm ở ngõ 5"
        assert reply["html"] == "<b>Echo:</b> Có trộm ở ngõ 5"
        assert reply["reply_to"] == reply["message_id"] - 1
        buttons = reply["reply_markup"]["inline_keyboard"][0]
        assert [b["callback_data"] for b in buttons] == ["yes", "no"]

        query_id = await users.press(ANN, ANN.id, reply["message_id"], "no")
        answer = await users.callback_answer(query_id)
        assert answer is not None
        assert answer["text"] == "Bạn chọn no" and answer["show_alert"] is True
        (edited,) = await users.wait_bot_messages(ANN.id)
        assert edited["message_id"] == reply["message_id"]
        assert edited["text"] == "Đã chọn: no" and edited["edited"]

        image = png(32, 16)
        await users.send_photo(BEN, image)
        (echoed,) = await users.wait_bot_messages(BEN.id)
        assert echoed["caption"] == f"{len(image)} bytes"
        assert (echoed["media"]["width"], echoed["media"]["height"]) == (32, 16)
        assert await users.file_bytes(echoed["media"]["file_id"]) == image

        transcript = await users.transcript(ANN.id)
        assert [m["from_bot"] for m in transcript] == [False, True, False, True]
        counters = await users.counters()
        assert counters["sent_total"] == 3 and counters["refused_429_total"] == 0
