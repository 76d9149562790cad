"""build_application(): all wiring of the Telegram bot in one place, in order."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from telegram import BotCommand, Update
from telegram.ext import (
    AIORateLimiter,
    Application,
    ApplicationBuilder,
    CallbackQueryHandler,
    ChatMemberHandler,
    ContextTypes,
    MessageHandler,
    filters,
)

from bot.context import SERVICES_KEY, CustomContext, Services
from bot.handlers import citizen, errors, groups
from bot.i18n import _, translator
from bot.jobs import DRAFT_SWEEP_SECONDS, send_draft_expiry_notices
from bot.services.anonymity import Keyring
from bot.services.intake import IntakeLimits, IntakeService
from bot.update_processor import PerChatUpdateProcessor
from storage.db import Database
from storage.types import utcnow
from tinbao.settings import Settings

TinbaoApplication = Application[Any, CustomContext, Any, Any, Any, Any]

# Commands shown in Telegram's menu, per language.
_COMMANDS = (
    ("start", _("Main menu")),
    ("status", _("Follow up a tip: /status CODE")),
    ("add", _("Add information: /add CODE")),
    ("cancel", _("Stop what you are doing")),
    ("help", _("Help")),
)


def build_services(
    settings: Settings, *, db: Database | None = None, clock: Callable[[], datetime] = utcnow
) -> Services:
    """Create the services a bot process needs."""
    database = db or Database(settings.database_url)
    keyring = Keyring(settings.secret_key.get_secret_value())
    intake = IntakeService(
        db=database,
        keyring=keyring,
        limits=IntakeLimits(
            draft_ttl=timedelta(hours=settings.draft_ttl_hours),
            tips_per_hour=settings.tips_per_hour,
            messages_per_minute=settings.messages_per_minute,
        ),
        timezone=settings.timezone,
        clock=clock,
    )
    return Services(settings=settings, db=database, keyring=keyring, intake=intake)


def build_application(settings: Settings, services: Services | None = None) -> TinbaoApplication:
    """Build the PTB Application with every handler registered in order."""
    services = services or build_services(settings)
    application: TinbaoApplication = (
        ApplicationBuilder()
        .token(settings.bot_token.get_secret_value())
        .base_url(settings.bot_api_base_url)
        .base_file_url(settings.bot_api_file_url)
        .context_types(ContextTypes(context=CustomContext))
        # Many citizens at once, each citizen's updates in order (see PerChatUpdateProcessor).
        .concurrent_updates(PerChatUpdateProcessor(256))
        .connection_pool_size(128)
        .pool_timeout(30)
        # Paces sends under Telegram's limits and retries a 429 after its retry_after.
        .rate_limiter(
            AIORateLimiter(
                overall_max_rate=settings.bot_max_rate, overall_time_period=1, max_retries=3
            )
        )
        .post_init(_post_init)
        .post_shutdown(_post_shutdown)
        .build()
    )
    application.bot_data[SERVICES_KEY] = services

    private = filters.ChatType.PRIVATE
    # Groups first: the citizen flow must never run in a group, where others would see a tip.
    application.add_handler(
        ChatMemberHandler(groups.on_added_to_group, ChatMemberHandler.MY_CHAT_MEMBER)
    )
    application.add_handler(
        MessageHandler(filters.ChatType.GROUPS & filters.COMMAND, groups.on_group_command)
    )
    # Citizen private chat. Button presses, then edits (an edit is a separate update type that
    # plain message handlers would also match), then every other message, commands included:
    # the intake service decides what each means in the current step, so nothing falls through.
    application.add_handler(CallbackQueryHandler(citizen.on_button))
    application.add_handler(
        MessageHandler(private & filters.UpdateType.EDITED, citizen.on_edited_message)
    )
    application.add_handler(
        MessageHandler(private & ~filters.UpdateType.EDITED, citizen.on_message)
    )
    application.add_error_handler(errors.on_error)
    return application


async def _post_init(application: TinbaoApplication) -> None:
    """Register the command menu and the draft sweeper once the bot is initialised."""
    services: Services = application.bot_data[SERVICES_KEY]
    for locale in ("vi", "en"):
        t = translator(locale)
        commands = [BotCommand(name, t.gettext(description)) for name, description in _COMMANDS]
        await application.bot.set_my_commands(
            commands, language_code=None if locale == services.settings.default_locale else locale
        )
    if application.job_queue is not None:
        application.job_queue.run_repeating(
            _sweep_drafts, interval=DRAFT_SWEEP_SECONDS, first=DRAFT_SWEEP_SECONDS, name="drafts"
        )


async def _sweep_drafts(context: CustomContext) -> None:
    """Job: expire silent drafts."""
    await send_draft_expiry_notices(context.bot, context.services.intake)


async def _post_shutdown(application: TinbaoApplication) -> None:
    """Close the database pool."""
    services: Services = application.bot_data[SERVICES_KEY]
    await services.db.dispose()


ALLOWED_UPDATES = Update.ALL_TYPES
