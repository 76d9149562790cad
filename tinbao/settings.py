"""Process settings, read from TINBAO_* environment variables and an optional .env file."""

from __future__ import annotations

import re
import secrets
from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit

from pydantic import Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

OFFICIAL_API_URL = "https://api.telegram.org"
# Values that ship in .env.example or tutorials; starting production with one of them would make
# every encrypted reply route and every user hash forgeable by anyone who read the docs.
PLACEHOLDER_SECRETS = frozenset({"", "change-me", "changeme", "secret", "dev", "test", "example"})
SECRET_FILE_NAME = "secret_key"
WEBHOOK_SECRET_PATTERN = re.compile(r"[A-Za-z0-9_-]{1,256}")
# Telegram's rule for a bot username (the "@" excluded).
TELEGRAM_USERNAME_PATTERN = re.compile(r"[A-Za-z0-9_]{5,32}")


class Settings(BaseSettings):
    """All configuration of a tinbao process."""

    model_config = SettingsConfigDict(env_prefix="TINBAO_", env_file=".env", extra="ignore")

    mode: Literal["production", "dev", "demo"] = "production"
    bot_token: SecretStr = SecretStr("")
    database_url: str = "sqlite+aiosqlite:///./tinbao.db"
    telegram_api_url: str = OFFICIAL_API_URL
    secret_key: SecretStr = SecretStr("")
    # Comma-separated secrets that were TINBAO_SECRET_KEY before a rotation: read with, never
    # written with (docs/key-rotation.md says when one may be dropped).
    previous_secret_keys: SecretStr = SecretStr("")
    data_dir: Path = Path("./tinbao-data")
    timezone: str = "Asia/Ho_Chi_Minh"
    default_locale: str = "vi"
    draft_ttl_hours: float = Field(default=24.0, gt=0)
    tips_per_hour: int = Field(default=5, ge=1)
    messages_per_minute: int = Field(default=30, ge=1)
    max_file_bytes: int = 20 * 1024 * 1024
    # Outgoing pace for the whole bot (Telegram asks for <= 30 msg/s); 0 turns this overall
    # pace off (group chats stay paced at 20 msg/min), which only benchmarks should do.
    bot_max_rate: float = Field(default=30.0, ge=0)
    # Police inbox.
    retention_days: int = Field(default=90, ge=1)
    run_sender: bool = True  # send the outbox from this process (`tinbao sender` runs it alone)
    outbox_lease_seconds: float = Field(default=60.0, gt=0)
    invite_ttl_days: float = Field(default=7.0, gt=0)
    # Outreach broadcasts: pace (Telegram allows ~30 msg/s overall) and quiet hours (local).
    broadcast_rate: float = Field(default=25.0, gt=0)
    quiet_start: int = Field(default=21, ge=0, le=23)
    quiet_end: int = Field(default=7, ge=0, le=23)
    run_outreach: bool = True  # run broadcast scheduling and delivery (leader only) here
    # Serving (`tinbao serve`): the public https root that messengers post webhooks to, the
    # Telegram webhook secret (1-256 of A-Za-z0-9_-, Telegram's rule) and the log format.
    public_url: str = ""
    webhook_secret: SecretStr = SecretStr("")
    log_format: Literal["text", "json"] = "text"
    # Zalo Official Account (Open API v3): app id and the OA secret key (webhook signature),
    # the app secret (token refresh), and the API roots.
    zalo_oa_app_id: str = ""
    zalo_oa_secret_key: SecretStr = SecretStr("")
    zalo_app_secret: SecretStr = SecretStr("")
    zalo_oa_api_url: str = "https://openapi.zalo.me"
    zalo_oauth_url: str = "https://oauth.zaloapp.com"
    # Zalo Bot Platform: the bot token, its API root, and the webhook secret (8-256 characters;
    # without it the bot long-polls getUpdates instead, for installs with no public URL).
    zalo_bot_token: SecretStr = SecretStr("")
    zalo_bot_api_url: str = "https://bot-api.zaloplatforms.com"
    zalo_bot_webhook_secret: SecretStr = SecretStr("")
    # Printed posters (`tinbao poster`): where a citizen's phone goes when it scans a code. The
    # Telegram bot's username without "@" (t.me deep links), and the public links of the Zalo OA
    # and the Zalo bot (https://zalo.me/...). An empty value leaves that code off the poster.
    telegram_bot_username: str = ""
    zalo_oa_link: str = ""
    zalo_bot_link: str = ""
    # Web console (`tinbao serve` mounts it at /console): session timeouts, and the login
    # throttle (failures in a row before an account locks; attempts per address per 10 min).
    console_enabled: bool = True
    console_idle_minutes: float = Field(default=30.0, gt=0)
    console_session_hours: float = Field(default=12.0, gt=0)
    console_max_failures: int = Field(default=5, ge=1)
    console_lockout_minutes: float = Field(default=15.0, gt=0)
    console_address_attempts: int = Field(default=30, ge=1)
    # A tip's location on a map: a tile server the police network can reach (usually the
    # province's own; https://host/{z}/{x}/{y}.png). Empty: coordinates and a link only.
    console_tile_url: str = ""
    console_tile_attribution: str = "© OpenStreetMap contributors"

    @model_validator(mode="after")
    def _check_webhook_secret(self) -> Settings:
        """Refuse a webhook secret Telegram would refuse at setWebhook."""
        value = self.webhook_secret.get_secret_value()
        if value and not WEBHOOK_SECRET_PATTERN.fullmatch(value):
            raise ValueError(
                "TINBAO_WEBHOOK_SECRET may hold only A-Z, a-z, 0-9, _ and - (1-256 characters)"
            )
        return self

    @model_validator(mode="after")
    def _check_tile_url(self) -> Settings:
        """Refuse a tile URL that is not http(s) with {z}, {x} and {y} in it."""
        url = self.console_tile_url
        if url and not (
            url.startswith(("https://", "http://")) and all(p in url for p in ("{z}", "{x}", "{y}"))
        ):
            raise ValueError(
                "TINBAO_CONSOLE_TILE_URL must be an http(s) URL with {z}, {x} and {y} in it"
            )
        return self

    @model_validator(mode="after")
    def _check_zalo_bot_secret(self) -> Settings:
        """Refuse a Zalo Bot webhook secret the platform would refuse (8-256 characters)."""
        value = self.zalo_bot_webhook_secret.get_secret_value()
        if value and not 8 <= len(value) <= 256:
            raise ValueError("TINBAO_ZALO_BOT_WEBHOOK_SECRET must be 8-256 characters long")
        return self

    @model_validator(mode="after")
    def _check_poster_links(self) -> Settings:
        """Refuse poster links a phone could not open: a QR code printed wrong is printed 1,000x."""
        name = self.telegram_bot_username
        if name and not TELEGRAM_USERNAME_PATTERN.fullmatch(name):
            raise ValueError(
                "TINBAO_TELEGRAM_BOT_USERNAME must be 5-32 of A-Z, a-z, 0-9 and _ (without @)"
            )
        for env, url in (
            ("TINBAO_ZALO_OA_LINK", self.zalo_oa_link),
            ("TINBAO_ZALO_BOT_LINK", self.zalo_bot_link),
        ):
            if url and not is_web_link(url):
                raise ValueError(f"{env} must be an http(s) URL, like https://zalo.me/...")
        return self

    @model_validator(mode="after")
    def _require_real_secret(self) -> Settings:
        """Refuse a placeholder secret in production; generate and keep one in dev/demo."""
        if self.secret_key.get_secret_value().strip().lower() not in PLACEHOLDER_SECRETS:
            return self
        if self.mode == "production":
            raise ValueError(
                "TINBAO_SECRET_KEY is missing or a placeholder; set a long random value "
                "(for example: python -c 'import secrets; print(secrets.token_urlsafe(48))')"
            )
        self.secret_key = SecretStr(_load_or_create_dev_secret(self.data_dir))
        return self

    @property
    def telegram_enabled(self) -> bool:
        """Telegram runs only when its token is set (in Vietnam it often is not)."""
        return bool(self.bot_token.get_secret_value().strip())

    @property
    def zalo_oa_enabled(self) -> bool:
        """The Zalo OA channel runs only when its app id and both secrets are set."""
        return all(
            (
                self.zalo_oa_app_id.strip(),
                self.zalo_oa_secret_key.get_secret_value().strip(),
                self.zalo_app_secret.get_secret_value().strip(),
            )
        )

    @property
    def zalo_bot_enabled(self) -> bool:
        """The Zalo Bot channel runs only when its token is set."""
        return bool(self.zalo_bot_token.get_secret_value().strip())

    def log_secrets(self) -> list[str]:
        """Values the logs must never show, whatever library prints them."""
        values = [
            self.bot_token,
            self.secret_key,
            self.webhook_secret,
            self.zalo_oa_secret_key,
            self.zalo_app_secret,
            self.zalo_bot_token,
            self.zalo_bot_webhook_secret,
        ]
        return [value.get_secret_value() for value in values if value.get_secret_value()]

    @property
    def bot_api_base_url(self) -> str:
        """The base_url PTB needs: `{root}/bot`."""
        return self.telegram_api_url.rstrip("/") + "/bot"

    @property
    def bot_api_file_url(self) -> str:
        """The base_file_url PTB needs: `{root}/file/bot`."""
        return self.telegram_api_url.rstrip("/") + "/file/bot"


def is_web_link(url: str) -> bool:
    """True for an http(s) URL with a host and no spaces (what a QR code may carry)."""
    parts = urlsplit(url)
    has_space = any(ch.isspace() for ch in url)
    return parts.scheme in ("http", "https") and bool(parts.netloc) and not has_space


def _load_or_create_dev_secret(data_dir: Path) -> str:
    """Return the dev/demo secret kept in the data directory, creating it once."""
    path = data_dir / SECRET_FILE_NAME
    if path.exists():
        return path.read_text(encoding="utf-8").strip()
    data_dir.mkdir(parents=True, exist_ok=True)
    value = secrets.token_urlsafe(48)
    path.write_text(value, encoding="utf-8")
    path.chmod(0o600)
    return value
