"""The broadcast sides of the channels whose credentials are set, built from the settings.

The broadcast sender (`tinbao serve`'s elected outreach leader, `tinbao run`, `tinbao broadcast
send`) gets one entry per configured messenger; a subscriber's route says which one is theirs.
"""

from __future__ import annotations

import httpx

from bot.channels.outbound import BroadcastOutbound
from bot.context import Services
from bot.i18n import translator


def broadcast_channels(services: Services, *, connections: int) -> dict[str, BroadcastOutbound]:
    """Every configured channel's broadcast side (own connections, apart from the webhooks')."""
    settings = services.settings
    t = translator(settings.default_locale, settings.timezone)
    channels: dict[str, BroadcastOutbound] = {}
    if settings.telegram_enabled:
        from bot.channels.telegram.broadcast import TelegramBroadcast, make_bot

        bot = make_bot(
            settings.bot_token.get_secret_value(),
            settings.bot_api_base_url,
            settings.bot_api_file_url,
            connections=connections,
        )
        channels["telegram"] = TelegramBroadcast(bot, settings.broadcast_rate)
    if settings.zalo_oa_enabled:
        from bot.channels.zalo_oa.client import ZaloOaClient
        from bot.channels.zalo_oa.outbound import ZaloOaOutbound
        from bot.channels.zalo_oa.tokens import TokenStore

        oa_http = _http(connections)
        client = ZaloOaClient(
            app_id=settings.zalo_oa_app_id,
            app_secret=settings.zalo_app_secret.get_secret_value(),
            api_url=settings.zalo_oa_api_url,
            oauth_url=settings.zalo_oauth_url,
            http=oa_http,
        )
        tokens = TokenStore(
            db=services.db, keyring=services.keyring, client=client, clock=services.intake.clock
        )
        channels["zalo_oa"] = ZaloOaOutbound(client, tokens, t, owned_http=oa_http)
    if settings.zalo_bot_enabled:
        from bot.channels.zalo_bot.client import ZaloBotClient
        from bot.channels.zalo_bot.outbound import ZaloBotOutbound

        bot_http = _http(connections)
        bot_client = ZaloBotClient(
            settings.zalo_bot_token.get_secret_value(),
            base_url=settings.zalo_bot_api_url,
            http=bot_http,
        )
        channels["zalo_bot"] = ZaloBotOutbound(bot_client, t, owned_http=bot_http)
    return channels


def _http(connections: int) -> httpx.AsyncClient:
    """A client sized for the sender's slots."""
    limits = httpx.Limits(max_connections=connections, max_keepalive_connections=connections)
    return httpx.AsyncClient(timeout=httpx.Timeout(30.0), limits=limits)
