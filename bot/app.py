"""build_application(): all wiring of the Telegram bot in one place, in order."""

from __future__ import annotations

import asyncio
import gc
import logging
from collections.abc import Callable, Mapping
from datetime import datetime, timedelta
from typing import Any

from telegram import BotCommand, Update
from telegram.error import TelegramError
from telegram.ext import (
    AIORateLimiter,
    Application,
    ApplicationBuilder,
    CallbackQueryHandler,
    ChatMemberHandler,
    CommandHandler,
    ContextTypes,
    MessageHandler,
    filters,
)

from bot.channels.outbound import BroadcastOutbound, Outbound
from bot.channels.telegram.outbound import CHANNEL, TelegramOutbound
from bot.content import library
from bot.context import SERVICES_KEY, CustomContext, Services
from bot.handlers import citizen, errors, groups, outreach_staff, reports, staff, traced
from bot.i18n import _, translator
from bot.services.anonymity import Keyring
from bot.services.broadcast_flow import BroadcastFlow
from bot.services.inbox import InboxService
from bot.services.intake import IntakeLimits, IntakeService
from bot.services.outreach_flow import OutreachFlow
from bot.services.session_flow import SessionFlow
from bot.update_processor import PerChatUpdateProcessor
from scheduler.broadcasts import OutreachRuntime
from scheduler.maintenance import MaintenanceRuntime
from scheduler.sender import OutboxSender
from storage.db import Database
from storage.types import utcnow
from tinbao.settings import Settings

TinbaoApplication = Application[Any, CustomContext, Any, Any, Any, Any]
log = logging.getLogger(__name__)
SENDER_STOP_KEY = "outbox_sender_stop"
SENDER_TASK_KEY = "outbox_sender_task"
# Set when this Application is the whole process (`tinbao run`): it then runs maintenance and
# closes the database. Under `tinbao serve` the host owns both, Telegram or not.
STANDALONE_KEY = "standalone"
OUTBOUNDS_KEY = "outbounds"

# Commands shown in Telegram's menu, per language.
_COMMANDS = (
    ("start", _("Main menu")),
    ("status", _("Follow up a tip: /status CODE")),
    ("add", _("Add information: /add CODE")),
    ("topics", _("Learn the law")),
    ("subscribe", _("Receive outreach news")),
    ("pledge", _("Sign a pledge")),
    ("cancel", _("Stop what you are doing")),
    ("help", _("Help")),
)


def build_services(
    settings: Settings, *, db: Database | None = None, clock: Callable[[], datetime] = utcnow
) -> Services:
    """Create the services a bot process needs."""
    # Refuse to start with a bad topic or pledge file: the error names the file and the problem.
    library.topics()
    library.pledges()
    database = db or Database(settings.database_url)
    keyring = Keyring.from_settings(settings)
    holder: list[Services] = []

    def wake() -> None:
        """Late-bound: the sender exists only once the bot does."""
        if holder:
            holder[0].wake_outbox()

    intake = IntakeService(
        db=database,
        keyring=keyring,
        limits=IntakeLimits(
            draft_ttl=timedelta(hours=settings.draft_ttl_hours),
            tips_per_hour=settings.tips_per_hour,
            messages_per_minute=settings.messages_per_minute,
            max_file_bytes=settings.max_file_bytes,
        ),
        timezone=settings.timezone,
        police_locale=settings.default_locale,
        clock=clock,
        on_outbox=wake,
    )
    intake.add_flow(OutreachFlow(intake))
    intake.add_flow(
        BroadcastFlow(intake, settings.timezone, quiet=(settings.quiet_start, settings.quiet_end))
    )
    intake.add_flow(SessionFlow(intake, settings.timezone))
    inbox = InboxService(
        db=database,
        locale=settings.default_locale,
        timezone=settings.timezone,
        clock=clock,
        on_outbox=wake,
        keyring=keyring,
    )
    services = Services(settings=settings, db=database, keyring=keyring, intake=intake, inbox=inbox)
    holder.append(services)
    return services


def build_application(
    settings: Settings,
    services: Services | None = None,
    *,
    webhook: bool = False,
    outbounds: Mapping[str, Outbound] | None = None,
) -> TinbaoApplication:
    """Build the PTB Application with every handler registered in order.

    With `webhook` the Application has no updater (updates are put on its queue by
    `tinbao serve`) and leaves maintenance to the host, which runs it with or without Telegram.
    `outbounds` are other channels' sending sides for the outbox sender of a standalone
    Application (the demo's Zalo OA).
    """
    services = services or build_services(settings)
    builder = ApplicationBuilder()
    if webhook:
        builder = builder.updater(None)
    application: TinbaoApplication = (
        builder.token(settings.bot_token.get_secret_value())
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
        .post_stop(_post_stop)
        .post_shutdown(_post_shutdown)
        .build()
    )
    application.bot_data[SERVICES_KEY] = services
    application.bot_data[STANDALONE_KEY] = not webhook
    application.bot_data[OUTBOUNDS_KEY] = dict(outbounds or {})

    private = filters.ChatType.PRIVATE
    group = filters.ChatType.GROUPS
    # Staff first. Invites in private chats (a deep link /start j<CODE> must not reach the
    # citizen flow, which would call it an unknown commune).
    application.add_handler(CommandHandler("join", staff.on_join, filters=private))
    application.add_handler(
        MessageHandler(private & filters.Regex(r"^/start j[A-Za-z0-9]+$"), staff.on_start_invite)
    )
    # Audit trails and staff lists name people: private chat only, never where a group reads.
    application.add_handler(CommandHandler("audit", staff.on_audit, filters=private))
    application.add_handler(CommandHandler("staff", staff.on_staff_list, filters=private))
    application.add_handler(CommandHandler("revoke", staff.on_revoke, filters=private))
    application.add_handler(CommandHandler("console", staff.on_console, filters=private))
    application.add_handler(
        CommandHandler(
            ["audit", "staff", "revoke", "console", "thongke", "report"],
            groups.on_private_only_command,
            filters=~private,
        )
    )
    application.add_handler(CommandHandler("campaign", outreach_staff.on_campaign, filters=private))
    application.add_handler(
        CommandHandler(["thongke", "report"], reports.on_report, filters=private)
    )
    application.add_handler(
        CommandHandler("pledges", outreach_staff.on_pledge_counts, filters=private)
    )
    # Inbox groups: linking, card buttons, and officers' replies to the bot's tip messages.
    application.add_handler(CommandHandler("link", staff.on_link, filters=group))
    application.add_handler(CommandHandler("unlink", staff.on_unlink, filters=group))
    application.add_handler(CallbackQueryHandler(staff.on_card_button, pattern=r"^t:"))
    application.add_handler(
        MessageHandler(
            group & filters.REPLY & ~filters.COMMAND & ~filters.UpdateType.EDITED,
            staff.on_group_reply,
        )
    )
    # Other group traffic: the citizen flow must never run in a group, where others would see
    # a tip, so commands there get a pointer to the private chat.
    application.add_handler(
        ChatMemberHandler(groups.on_added_to_group, ChatMemberHandler.MY_CHAT_MEMBER)
    )
    application.add_handler(MessageHandler(group & filters.COMMAND, groups.on_group_command))
    # The tipster's "Answer" button under a police message.
    application.add_handler(CallbackQueryHandler(citizen.on_answer_button, pattern=r"^a:"))
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
    traced.name_callbacks(application)
    return application


COMMANDS_RETRY_SECONDS = 60.0
COMMANDS_RETRY_MAX_SECONDS = 3600.0


async def _register_commands(application: TinbaoApplication) -> bool:
    """Set the command menu in each language; False (logged) when Telegram refused or failed.

    The menu is cosmetic: a Bot API outage at start-up must not stop the bot from serving.
    """
    services: Services = application.bot_data[SERVICES_KEY]
    try:
        for locale in ("vi", "en"):
            t = translator(locale)
            commands = [BotCommand(name, t.gettext(desc)) for name, desc in _COMMANDS]
            default = locale == services.settings.default_locale
            await application.bot.set_my_commands(
                commands, language_code=None if default else locale
            )
    except TelegramError as error:
        name = type(error).__name__
        log.warning("setMyCommands failed (%s): serving anyway, retrying later", name)
        return False
    return True


def _retry_commands_later(application: TinbaoApplication, delay: float) -> None:
    """Try the command menu again after `delay` seconds, doubling the wait up to an hour."""
    if application.job_queue is None:
        return

    async def again(context: CustomContext) -> None:
        if not await _register_commands(application):
            _retry_commands_later(application, min(delay * 2, COMMANDS_RETRY_MAX_SECONDS))

    application.job_queue.run_once(again, when=delay, name="set-my-commands")


async def _post_init(application: TinbaoApplication) -> None:
    """Register the command menu once the bot is initialised (and, alone, start the runtimes)."""
    services: Services = application.bot_data[SERVICES_KEY]
    if not await _register_commands(application):
        _retry_commands_later(application, COMMANDS_RETRY_SECONDS)
    if application.bot_data[STANDALONE_KEY]:
        # Alone in its process (`tinbao run`): it runs maintenance and the outbox sender too;
        # under `tinbao serve` the host runs both, for every channel.
        services.maintenance = make_maintenance(services)
        await services.maintenance.start()
        channels = {
            CHANNEL: TelegramOutbound(application.bot),
            **application.bot_data[OUTBOUNDS_KEY],
        }
        services.sender = make_sender(services, channels)
        if services.settings.run_sender:
            stop = asyncio.Event()
            application.bot_data[SENDER_STOP_KEY] = stop
            application.bot_data[SENDER_TASK_KEY] = asyncio.create_task(services.sender.run(stop))
        if services.settings.run_outreach:
            services.outreach = make_outreach(services)
            await services.outreach.start()
    # What start-up allocated (modules, catalogs, reference data) lives as long as the process:
    # keep it out of the cyclic collector, whose full passes over it stalled every chat for
    # 60-130 ms (docs/benchmarks.md, "Intake"). Collect first, so no garbage is frozen with it.
    gc.collect()
    gc.freeze()


def make_outreach(
    services: Services, channels: Mapping[str, BroadcastOutbound] | None = None
) -> OutreachRuntime:
    """Broadcast scheduling and delivery (active only in the elected leader process)."""
    from bot.channels.registry import broadcast_channels
    from scheduler.delivery import DEFAULT_SLOTS

    settings = services.settings
    return OutreachRuntime(
        db=services.db,
        keyring=services.keyring,
        channels=channels
        if channels is not None
        else broadcast_channels(services, connections=DEFAULT_SLOTS + 4),
        timezone=settings.timezone,
        rate=settings.broadcast_rate,
        clock=services.intake.clock,
        quiet=(settings.quiet_start, settings.quiet_end),
    )


def make_sender(services: Services, channels: Mapping[str, Outbound]) -> OutboxSender:
    """The outbox sender for this process's channels."""
    settings = services.settings
    return OutboxSender(
        db=services.db,
        channels=channels,
        keyring=services.keyring,
        t=translator(settings.default_locale, settings.timezone),
        clock=services.intake.clock,
        lease=timedelta(seconds=settings.outbox_lease_seconds),
    )


def make_maintenance(services: Services) -> MaintenanceRuntime:
    """Deadlines, retention and the draft sweep (active only in the process elected for them)."""
    return MaintenanceRuntime(
        db=services.db,
        inbox=services.inbox,
        retention_days=services.settings.retention_days,
        clock=services.intake.clock,
        # The draft sweep queues its notices in the outbox: it needs no messenger, so it runs
        # with the deadlines for every channel (Zalo-only installs included).
        expire_drafts=services.intake.expire_drafts,
    )


async def _post_stop(application: TinbaoApplication) -> None:
    """Stop the outbox sender and the outreach runtime (in-flight rows are left to leases)."""
    stop = application.bot_data.pop(SENDER_STOP_KEY, None)
    task = application.bot_data.pop(SENDER_TASK_KEY, None)
    if stop is not None and task is not None:
        stop.set()
        await task
    services: Services = application.bot_data[SERVICES_KEY]
    if not application.bot_data[STANDALONE_KEY]:
        return  # under `tinbao serve` the host stops outreach and maintenance
    if services.outreach is not None:
        await services.outreach.stop()
        services.outreach = None
    if services.maintenance is not None:
        await services.maintenance.stop()
        services.maintenance = None


async def _post_shutdown(application: TinbaoApplication) -> None:
    """Close the database pool (when this Application is the whole process)."""
    services: Services = application.bot_data[SERVICES_KEY]
    if application.bot_data[STANDALONE_KEY]:
        await services.db.dispose()


ALLOWED_UPDATES = Update.ALL_TYPES


async def start_application(application: TinbaoApplication) -> None:
    """Initialise and start the application with its hooks, from inside a running loop.

    `run_polling` owns the event loop; the demo, the tests and `tinbao serve` already have one,
    so they start the same way by hand, hooks included (PTB calls post_init only from
    run_polling and run_webhook).
    """
    await application.initialize()
    if application.post_init is not None:
        await application.post_init(application)
    await application.start()


async def stop_application(application: TinbaoApplication) -> None:
    """Undo `start_application`: handle what is queued, stop, run the hooks, shut down."""
    if application.running:
        await application.stop()
    if application.post_stop is not None:
        await application.post_stop(application)
    await application.shutdown()
    if application.post_shutdown is not None:
        await application.post_shutdown(application)


async def start_polling(application: TinbaoApplication, *, timeout: int = 10) -> None:
    """Start the application and poll, as `run_polling` does, from inside a running loop."""
    await start_application(application)
    assert application.updater is not None
    await application.updater.start_polling(
        poll_interval=0, timeout=timeout, allowed_updates=ALLOWED_UPDATES
    )


async def stop_polling(application: TinbaoApplication) -> None:
    """Undo `start_polling`, hooks included."""
    assert application.updater is not None
    if application.updater.running:
        await application.updater.stop()
    await stop_application(application)
