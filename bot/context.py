"""Typed handler context: `context.services` and `context.translate` instead of bot_data."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from telegram.ext import Application, CallbackContext, ExtBot

from bot.i18n import Translator, translator
from bot.services.anonymity import Keyring
from bot.services.inbox import InboxService
from bot.services.intake import IntakeService
from scheduler.broadcasts import OutreachRuntime
from scheduler.maintenance import MaintenanceRuntime
from scheduler.sender import OutboxSender
from storage.db import Database
from tinbao.settings import Settings

SERVICES_KEY = "services"


@dataclass
class Services:
    """Everything handlers call into; built once per process in `build_application`."""

    settings: Settings
    db: Database
    keyring: Keyring
    intake: IntakeService
    inbox: InboxService
    # Set once the bot exists (post_init); services call wake_outbox() after queuing rows.
    sender: OutboxSender | None = None
    outreach: OutreachRuntime | None = None
    maintenance: MaintenanceRuntime | None = None

    def wake_outbox(self) -> None:
        """Tell this process's outbox sender (and broadcast scheduler) that rows changed."""
        if self.sender is not None:
            self.sender.wake()
        if self.outreach is not None:
            self.outreach.wake()


class CustomContext(CallbackContext[ExtBot[None], dict[Any, Any], dict[Any, Any], dict[Any, Any]]):
    """Handler context with typed access to the services."""

    def __init__(
        self,
        application: Application[Any, Any, Any, Any, Any, Any],
        chat_id: int | None = None,
        user_id: int | None = None,
    ) -> None:
        super().__init__(application=application, chat_id=chat_id, user_id=user_id)

    @property
    def services(self) -> Services:
        """The process's services."""
        services = self.bot_data[SERVICES_KEY]
        assert isinstance(services, Services)
        return services

    @property
    def translate(self) -> Translator:
        """A translator for the default locale."""
        settings = self.services.settings
        return translator(settings.default_locale, settings.timezone)
