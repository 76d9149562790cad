"""A bare PTB bot that answers like tinbao does, without any of tinbao's work: the baseline.

Run: python bench/echo_bot.py --api-url http://127.0.0.1:8081 --token 123456:ECHO

Same throughput settings as bot/app.py (256 concurrent updates, a pool of 128 connections,
long polling with poll_interval=0) and the same Bot API calls per update: a text message gets
one sendMessage; a button press gets answerCallbackQuery plus one sendMessage. Every reply
carries one inline button, so a simulated citizen can always press something next.
"""

from __future__ import annotations

import argparse
import logging

from telegram import InlineKeyboardButton, InlineKeyboardMarkup, Update
from telegram.ext import (
    Application,
    ApplicationBuilder,
    CallbackQueryHandler,
    ContextTypes,
    MessageHandler,
    filters,
)

BUTTON = InlineKeyboardMarkup([[InlineKeyboardButton("Tiếp", callback_data="next")]])


async def on_text(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """Any message: one sendMessage with one button."""
    message = update.effective_message
    if message is None:
        return
    await context.bot.send_message(
        chat_id=message.chat_id, text=f"echo: {message.text or ''}", reply_markup=BUTTON
    )


async def on_button(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """A button press: answerCallbackQuery, then one sendMessage with one button."""
    query = update.callback_query
    if query is None or query.message is None:
        return
    await query.answer()
    await context.bot.send_message(
        chat_id=query.message.chat.id, text=f"pressed: {query.data}", reply_markup=BUTTON
    )


async def _post_init(application: Application) -> None:
    """Announce readiness the way tinbao does (the benchmark waits for setMyCommands)."""
    await application.bot.set_my_commands([("start", "echo")])


def build(api_url: str, token: str, pool_size: int = 128) -> Application:
    """Build the echo Application with tinbao's throughput settings."""
    root = api_url.rstrip("/")
    application = (
        ApplicationBuilder()
        .token(token)
        .base_url(root + "/bot")
        .base_file_url(root + "/file/bot")
        .concurrent_updates(256)
        .connection_pool_size(pool_size)
        .pool_timeout(30)
        .post_init(_post_init)
        .build()
    )
    application.add_handler(CallbackQueryHandler(on_button))
    application.add_handler(MessageHandler(filters.ALL, on_text))
    return application


def main() -> None:
    """Parse arguments and poll until interrupted."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--api-url", required=True, help="Bot API root, e.g. the emulator URL")
    parser.add_argument("--token", required=True)
    parser.add_argument(
        "--connection-pool-size", type=int, default=128, help="tinbao uses 128 (default)"
    )
    args = parser.parse_args()
    logging.basicConfig(
        level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    build(args.api_url, args.token, args.connection_pool_size).run_polling(
        poll_interval=0, allowed_updates=Update.ALL_TYPES
    )


if __name__ == "__main__":
    main()
