"""`tinbao demo`: the whole bot offline in one process, shown in the browser as four phones.

One process runs the Bot API emulator (with Telegram's flood limits), the Zalo OA emulator
mounted on the same server, the real bot polling Telegram (its job queue, outbox sender and
broadcast scheduler start in PTB's post_init hook), the real Zalo OA channel on a local webhook,
and an SQLite database seeded through the bot by `tinbao.demo_seed` (plus one tip sent on
Zalo). The emulator also serves the page (`sandbox/web/`): a citizen on Telegram, the commune's
inbox group as an officer sees it, the outreach staff chat, and a citizen on Zalo.

`--scripted` keeps the older console demo: a scripted citizen sends a tip and follows it up.
"""

from __future__ import annotations

import asyncio
import contextlib
import html
import logging
import re
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pyotp
from pydantic import SecretStr
from rich.console import Console
from rich.markup import escape
from rich.panel import Panel
from starlette.applications import Starlette
from starlette.responses import PlainTextResponse, RedirectResponse
from starlette.routing import Mount

from bot.app import (
    TinbaoApplication,
    build_application,
    build_services,
    start_polling,
    stop_polling,
)
from bot.channels.zalo_oa.channel import ZaloOaChannel
from bot.services.enrollment import find_staff
from sandbox.access import UNLOCK_PATH
from sandbox.client import EmulatorClient, User
from sandbox.emulator import Emulator, EmulatorLimits
from sandbox.serving import serving
from sandbox.zalo_client import ZaloCitizen
from sandbox.zalo_common import zalo_id
from sandbox.zalo_oa import ZaloOaEmulator
from storage.types import utcnow
from tinbao.demo_seed import CAST, DemoCast, SeedReport, seed_demo
from tinbao.runtime import prepare_database
from tinbao.settings import Settings
from web.accounts import link_account
from web.component import console_app

log = logging.getLogger(__name__)

DEMO_TOKEN = "123456:DEMO-TOKEN"
BOT_USERNAME = "tinbao_demo_bot"
BOT_NAME = "Tin báo an ninh"
DEMO_USER = User(id=90_000_001, first_name="Người dân", username="nguoidan_demo")
# The Zalo OA emulator, mounted on the Telegram emulator's server so the page has one origin.
ZALO_PATH = "/zalo-oa"
CONSOLE_PATH = "/console"
# Printed at start: a demo on a laptop, with invented people; `tinbao serve` has no such user.
DEMO_CONSOLE_USER = "demo.khacuu"
DEMO_CONSOLE_PASSWORD = "demo-tinbao-2026"
DEMO_OA_APP_ID = "4455667788990011223"
DEMO_OA_SECRET_KEY = "demo-oa-secret-key"
DEMO_APP_SECRET = "demo-app-secret"
ZALO_DEMO_USER = "nguoi-dan-zalo"
ZALO_DEMO_NAME = "Người dân Zalo"
ZALO_SEED_USER = "nguoi-dan-zalo-2"
DATABASE_FILE = "tinbao.db"
PAGE_PATH = "/web/"
_TAG = re.compile(r"<[^>]+>")
_CODE = re.compile(r"\b[0-9A-Z]{4}-[0-9A-Z]{4}-[0-9A-Z]{4}\b")

# Places a phone can share (the page's "Vị trí" list): around the two demo communes.
PLACES = (
    ("Nhà văn hóa khu 3, xã Khả Cửu", 21.1018, 105.0962),
    ("Chợ Khả Cửu", 21.0979, 105.1013),
    ("Cầu Khả Cửu, đường tỉnh 316", 21.1054, 105.1087),
    ("UBND xã Xuân Lũng", 21.3468, 105.2701),
)
# Names for the citizen phones the page's "Thêm người dân" button adds.
EXTRA_CITIZENS = (
    "Trần Văn Bình",
    "Lý Thị Hoa",
    "Ngô Quốc Bảo",
    "Phan Thị Ngọc",
    "Đặng Văn Toàn",
    "Bùi Thị Thu",
)


def demo_settings(data_dir: Path, api_url: str, *, zalo: bool = False) -> Settings:
    """Settings of the demo bot: demo mode, SQLite in the data directory, no .env file.

    With `zalo`, the Zalo OA emulator mounted at `{api_url}/zalo-oa` is configured too.
    """
    zalo_settings: dict[str, Any] = {}
    if zalo:
        zalo_settings = {
            "zalo_oa_app_id": DEMO_OA_APP_ID,
            "zalo_oa_secret_key": SecretStr(DEMO_OA_SECRET_KEY),
            "zalo_app_secret": SecretStr(DEMO_APP_SECRET),
            "zalo_oa_api_url": api_url + ZALO_PATH,
            "zalo_oauth_url": api_url + ZALO_PATH,
        }
    return Settings(
        mode="demo",
        bot_token=SecretStr(DEMO_TOKEN),
        database_url=f"sqlite+aiosqlite:///{(data_dir / DATABASE_FILE).resolve()}",
        telegram_api_url=api_url,
        data_dir=data_dir,
        _env_file=None,  # type: ignore[call-arg]
        **zalo_settings,
    )


def page_config(cast: DemoCast = CAST) -> dict[str, Any]:
    """What the page shows: the phones, who holds them, and the places one can share."""

    def phone(
        key: str, role: str, user: User, chat_id: int, title: str, hint: str
    ) -> dict[str, Any]:
        return {
            "key": key,
            "role": role,
            "user": user.as_json(),
            "chat_id": chat_id,
            "chat_title": title,
            "kind": "private" if chat_id == user.id else "group",
            "hint": hint,
        }

    return {
        "bot": {"username": BOT_USERNAME, "name": BOT_NAME},
        "phones": [
            phone(
                "citizen",
                "Người dân",
                cast.citizen,
                cast.citizen.id,
                BOT_NAME,
                "Gửi tin báo ẩn danh, nhận mã để theo dõi.",
            ),
            phone(
                "inbox",
                "Cán bộ công an xã",
                cast.officer,
                cast.inbox.chat_id,
                cast.inbox.title,
                "Nhóm hộp thư: nhận thẻ tin báo, trả lời ẩn danh.",
            ),
            phone(
                "staff",
                "Cán bộ tuyên truyền",
                cast.outreach,
                cast.outreach.id,
                BOT_NAME,
                "Lên lịch và gửi tin tuyên truyền.",
            ),
        ],
        "zalo": {
            "api": ZALO_PATH,
            "user": ZALO_DEMO_USER,
            "display_name": ZALO_DEMO_NAME,
            "chat_id": zalo_id(f"oa-user:{DEMO_OA_APP_ID}:{ZALO_DEMO_USER}"),
            "title": "Công an xã Khả Cửu",
            "role": "Người dân (Zalo)",
            "hint": "Zalo Official Account: gõ số để chọn, như trên Zalo thật.",
        },
        "extra_citizens": {"first_id": cast.extra_citizen_base, "names": list(EXTRA_CITIZENS)},
        "places": [
            {"label": label, "latitude": latitude, "longitude": longitude}
            for label, latitude, longitude in PLACES
        ],
    }


def fresh_data_dir(data_dir: Path) -> None:
    """Create the data directory and drop an earlier demo database (the emulator forgets)."""
    data_dir.mkdir(parents=True, exist_ok=True)
    for suffix in ("", "-wal", "-shm", "-journal"):
        with contextlib.suppress(FileNotFoundError):
            (data_dir / f"{DATABASE_FILE}{suffix}").unlink()


def _bot_idle(application: TinbaoApplication) -> bool:
    """No update is queued or being handled inside the application."""
    return (
        application.update_queue.empty()
        and application.update_processor.current_concurrent_updates == 0
    )


async def run_web_demo(
    data_dir: Path,
    *,
    host: str = "127.0.0.1",
    port: int = 8080,
    console: Console,
    stop: asyncio.Event | None = None,
    on_ready: Callable[[str, SeedReport], None] | None = None,
    control_token: str | None = None,
) -> None:
    """Start emulator, bot and page, seed the demo data, print the URL and serve until stopped.

    With a `control_token` (a host other machines reach), their browsers open the page through
    /web/unlock?token=..., which is what the printed address does."""
    started = time.monotonic()
    fresh_data_dir(data_dir)
    # Seeding is setup, not the show: it runs with the flood limits off, then they go on.
    emulator = Emulator(limits=EmulatorLimits.off(), control_token=control_token)
    emulator.add_bot(token=DEMO_TOKEN, username=BOT_USERNAME, first_name=BOT_NAME)
    emulator.web_config = page_config()
    zalo = ZaloOaEmulator(
        app_id=DEMO_OA_APP_ID, oa_secret_key=DEMO_OA_SECRET_KEY, app_secret=DEMO_APP_SECRET
    )
    emulator.mount(ZALO_PATH, zalo.app)
    # The console runs on the bot's event loop (it shares the bot's database pool, which must
    # not cross loops), on a port of its own; the page's /console only redirects there.
    console_slot = ConsoleRedirect()
    emulator.mount(CONSOLE_PATH, console_slot)
    running = emulator.start_in_thread(host=host, port=port)
    url = _reachable(running.url, host)
    zalo.url = url + ZALO_PATH
    application: TinbaoApplication | None = None
    oa: ZaloOaChannel | None = None
    try:
        settings = demo_settings(data_dir, url, zalo=True)
        await prepare_database(settings.database_url)
        services = build_services(settings)
        oa = ZaloOaChannel(services)
        await oa.tokens.set_refresh_token(zalo.issue_refresh_token())
        application = build_application(settings, services, outbounds={oa.name: oa.outbound})
        console_host = Starlette(
            routes=[
                Mount(
                    CONSOLE_PATH,
                    app=console_app(services, draining=lambda: console_slot.closing),
                )
            ]
        )
        await start_polling(application)
        await oa.start()
        oa_app = Starlette(routes=list(oa.routes))
        async with (
            serving(oa_app, lambda: None) as oa_url,
            serving(console_host, lambda: None, host=host) as console_url,
            httpx.AsyncClient(base_url=zalo.url, timeout=30) as http,
        ):
            console_slot.target = _reachable(console_url, host)
            await http.post("/control/webhook", json={"url": oa_url + "/zalo/oa/webhook"})
            async with EmulatorClient(url) as client:
                report = await seed_demo(client, services.db, lambda: _bot_idle(application))
            await seed_zalo_tip(ZaloCitizen(http, ZALO_SEED_USER, "Người dân Zalo 2"))
            login = await seed_console_login(services)
            _limits_on(emulator)
            page = f"{url}{UNLOCK_PATH}?token={control_token}" if control_token else url + PAGE_PATH
            _announce(console, url, page, report, time.monotonic() - started)
            _announce_console(console, console_slot.target, login)
            if on_ready is not None:
                on_ready(url + PAGE_PATH, report)
            await _wait_for_stop(stop)
    finally:
        console_slot.closing = True
        if oa is not None:
            await oa.stop()
        if application is not None:
            await stop_polling(application)
        running.stop()


async def seed_zalo_tip(citizen: ZaloCitizen) -> None:
    """A citizen on Zalo follows the OA and sends a whole tip, typing the choices' numbers."""
    await citizen.follow()
    await citizen.wait_for("Gửi tin báo")
    await citizen.choose("Gửi tin báo", "Trật tự an toàn giao thông")
    await citizen.choose("Trật tự an toàn giao thông", "Không")
    await citizen.choose("Không")
    await citizen.say("kha cuu", "Khả Cửu")
    await citizen.choose("Xã Khả Cửu (Phú Thọ)")
    await citizen.say(
        "Nhóm thanh niên đua xe máy trên đường tỉnh 316 đoạn qua cầu Khả Cửu, tối thứ bảy.",
        "Xong",
    )
    await citizen.choose("Xong", "📨")
    await citizen.choose("📨", lambda text: bool(_CODE.search(text)))


class ConsoleRedirect:
    """The page's /console: a redirect to the console's own server; 503 until it is up."""

    def __init__(self) -> None:
        self.target = ""
        self.closing = False  # set on the way out: the console's live streams end

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        """Send the browser to the same path on the console's server."""
        if not self.target:
            await PlainTextResponse("starting", status_code=503)(scope, receive, send)
            return
        path = scope.get("path", "")
        if not path.startswith(CONSOLE_PATH):  # Starlette versions differ on what Mount strips
            path = CONSOLE_PATH + path
        query = scope.get("query_string", b"").decode()
        location = self.target + path + (f"?{query}" if query else "")
        await RedirectResponse(location, status_code=307)(scope, receive, send)


@dataclass(frozen=True)
class ConsoleLogin:
    """The demo officer's console login, printed for whoever runs the demo."""

    username: str
    password: str
    totp_secret: str


async def seed_console_login(services: Any) -> ConsoleLogin:
    """Give the demo's Khả Cửu officer a console login (invented credentials, demo only)."""
    login = ConsoleLogin(DEMO_CONSOLE_USER, DEMO_CONSOLE_PASSWORD, pyotp.random_base32(32))
    async with services.db.session() as session:
        staff = await find_staff(session, platform="telegram", platform_user_id=CAST.officer.id)
        assert staff is not None, "the seed enrolls the officer first"
        await link_account(
            session,
            keyring=services.keyring,
            staff=staff,
            username=login.username,
            password=login.password,
            totp_secret=login.totp_secret,
            now=utcnow(),
        )
    return login


def _announce_console(console: Console, url: str, login: ConsoleLogin) -> None:
    """Print how to log in to the console as the demo officer."""
    console.print(f"  Police console: [bold]{url}{CONSOLE_PATH}/login[/bold]", soft_wrap=True)
    console.print(
        f"    username {login.username}  password {login.password}  "
        f"TOTP secret {login.totp_secret}  (add it to an authenticator app, or: "
        f"python -c \"import pyotp; print(pyotp.TOTP('{login.totp_secret}').now())\")",
        soft_wrap=True,
        highlight=False,
    )


def _reachable(url: str, host: str) -> str:
    """The URL to use and print: a wildcard bind is reached through the loopback address."""
    if host in ("0.0.0.0", ""):
        return url.replace("//0.0.0.0:", "//127.0.0.1:", 1)
    if host == "::":
        return url.replace("//[::]:", "//[::1]:", 1)
    return url


def _limits_on(emulator: Emulator) -> None:
    """Switch Telegram's flood limits on, every bucket full."""
    # RateLimiter.acquire never awaits, so swapping its limits from this thread is safe.
    emulator.limiter.limits = EmulatorLimits.telegram()
    emulator.limiter.reset()


def _announce(console: Console, url: str, page: str, report: SeedReport, seconds: float) -> None:
    """Print the page's address and what was seeded."""
    tips = ", ".join(f"{len(ids)} {status}" for status, ids in report.tips.items())
    console.print(f"[bold]tinbao demo[/bold] ready in {seconds:.1f} s")
    console.print(f"  seeded: 2 commune inboxes, 2 officers, 1 outreach staff; tips: {tips}")
    if report.outreach:
        console.print(
            f"  outreach: a pledge campaign, a daily broadcast, {report.subscribers} subscribers"
        )
    elif not report.problems:
        console.print("  outreach (topics, subscriptions, broadcasts) is not in this build yet")
    for problem in report.problems:
        console.print(f"  [yellow]warning:[/yellow] {escape(problem)}", highlight=False)
    console.print(f"  Bot API emulator and control API: {url}  (docs/emulator.md)")
    console.print(f"  Open in a browser: [bold]{page}[/bold]", soft_wrap=True)
    console.print("  Ctrl+C to stop.")


async def _wait_for_stop(stop: asyncio.Event | None) -> None:
    """Block until `stop` is set, SIGTERM arrives, or the task is cancelled (Ctrl+C)."""
    event = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    with contextlib.suppress(NotImplementedError, RuntimeError):
        loop.add_signal_handler(signal.SIGTERM, event.set)
    try:
        await event.wait()
    finally:
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.remove_signal_handler(signal.SIGTERM)


async def run_demo(data_dir: Path, *, keep_running: bool, console: Console) -> None:
    """The console demo: start emulator and bot, play the scripted citizen, maybe keep serving."""
    data_dir.mkdir(parents=True, exist_ok=True)
    emulator = Emulator(limits=EmulatorLimits())
    emulator.add_bot(token=DEMO_TOKEN, username=BOT_USERNAME, first_name=BOT_NAME)
    running = emulator.start_in_thread(host="127.0.0.1", port=0)
    settings = demo_settings(data_dir, running.url)
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
