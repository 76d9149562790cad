"""Login, opening an account with an invite, TOTP enrolment, logout (here and everywhere)."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from bot.i18n import _
from web import accounts, credentials, sessions
from web.guard import clear_session_cookie, console_of, public, route, set_session_cookie
from web.render import LOCALE_COOKIE, page, translator_for

ERRORS = {
    "bad_login": _("Wrong username, password or code."),
    "locked": _("Too many failed attempts: this account is locked for a while. Try again later."),
    "throttled": _("Too many attempts from this address. Wait a few minutes and try again."),
    "username_invalid": _(
        "The username must be 3 to 32 characters: lower-case letters, digits, dot, dash."
    ),
    "username_taken": _("That username is taken."),
    "password_short": _("The password must be at least 10 characters long."),
    "password_long": _("The password is too long."),
    "password_is_username": _("The password must not be the username."),
    "password_mismatch": _("The two passwords differ."),
    "name_missing": _("Enter your name as colleagues know it."),
    "invite_unknown": _("This invite code is not valid."),
    "invite_used": _("This invite code has already been used."),
    "invite_expired": _("This invite code has expired."),
    "bad_code": _("That code is not right. Check your phone's clock and try a fresh code."),
}


def _address(request: Request) -> str:
    """The client's address (uvicorn takes it from X-Forwarded-For behind a trusted proxy)."""
    return request.client.host if request.client else "unknown"


@public
async def login(request: Request) -> Response:
    """GET: the login form; POST: password and TOTP code, then a session."""
    console = console_of(request)
    t = translator_for(request)
    if request.method == "GET":
        return page(request, "login.html", {"error": ""})
    form = request.state.form
    async with console.services.db.session() as session:
        try:
            done = await accounts.log_in(
                session,
                keyring=console.services.keyring,
                username=str(form.get("username", ""))[:64],
                password=str(form.get("password", ""))[: accounts.MAX_PASSWORD_CHARS + 1],
                code=str(form.get("code", ""))[:16],
                address=_address(request),
                now=console.clock(),
                policy=console.policy,
            )
        except accounts.AccountError as error:
            message = t.gettext(ERRORS.get(error.reason, ERRORS["bad_login"]))
            status = 429 if error.reason == "throttled" else 401
            return page(request, "login.html", {"error": message}, status_code=status)
    target = "/tips" if done.stage == sessions.Stage.FULL else "/enroll"
    response = RedirectResponse(console.root + target, 303)
    set_session_cookie(response, request, done.token)
    return response


@public
async def join(request: Request) -> Response:
    """GET: the form to open an account with an invite; POST: create it, then enrol TOTP."""
    console = console_of(request)
    t = translator_for(request)
    if request.method == "GET":
        code = request.query_params.get("code", "")[:32]
        return page(request, "join.html", {"error": "", "code": code, "values": {}})
    form = request.state.form
    values = {key: str(form.get(key, ""))[:120] for key in ("code", "name", "username")}
    password = str(form.get("password", ""))[: accounts.MAX_PASSWORD_CHARS + 1]
    if password != str(form.get("password2", ""))[: accounts.MAX_PASSWORD_CHARS + 1]:
        error = t.gettext(ERRORS["password_mismatch"])
        return page(request, "join.html", {"error": error, "values": values}, status_code=400)
    async with console.services.db.session() as session:
        try:
            done = await accounts.open_account(
                session,
                code=values["code"],
                display_name=values["name"],
                username=values["username"],
                password=password,
                now=console.clock(),
                policy=console.policy,
            )
        except accounts.AccountError as error:
            message = t.gettext(ERRORS.get(error.reason, ERRORS["invite_unknown"]))
            return page(request, "join.html", {"error": message, "values": values}, status_code=400)
    response = RedirectResponse(console.root + "/enroll", 303)
    set_session_cookie(response, request, done.token)
    return response


@route(stage=sessions.Stage.ENROLL)
async def enroll(request: Request) -> Response:
    """GET: a new TOTP secret as a QR code (shown once); POST: its first code confirms it."""
    console = console_of(request)
    current = request.state.current
    t = translator_for(request)
    async with console.services.db.session() as session:
        if request.method == "POST":
            code = str(request.state.form.get("code", ""))[:16]
            confirmed = await accounts.confirm_totp(
                session,
                keyring=console.services.keyring,
                current=current,
                code=code,
                now=console.clock(),
            )
            if confirmed:
                return RedirectResponse(console.root + "/tips", 303)
            error = t.gettext(ERRORS["bad_code"])
            secret = accounts.pending_totp(keyring=console.services.keyring, current=current)
        else:
            error, secret = "", None
        if secret is None:
            # A fresh secret on every GET: a secret never confirmed is worthless, so a reload
            # shows a new one rather than the same one twice; a mistyped code keeps it.
            secret = await accounts.begin_totp(
                session, keyring=console.services.keyring, current=current
            )
    uri = credentials.provisioning_uri(secret, current.account.username)
    context = {"qr": credentials.qr_svg(uri), "secret": secret, "error": error}
    return page(request, "enroll.html", context, status_code=400 if error else 200)


async def _end(request: Request, *, everywhere: bool) -> Response:
    """End this session, or every session of the account."""
    console = console_of(request)
    current = request.state.current
    async with console.services.db.session() as session:
        if everywhere:
            await sessions.end_all(session, account_id=current.account.id, now=console.clock())
        else:
            await sessions.end(session, row=current.row, now=console.clock())
        await session.commit()
    response = RedirectResponse(console.root + "/login", 303)
    clear_session_cookie(response, request)
    return response


@route(stage=sessions.Stage.FULL)
async def logout(request: Request) -> Response:
    """End this session."""
    return await _end(request, everywhere=False)


@route(stage=sessions.Stage.FULL)
async def logout_everywhere(request: Request) -> Response:
    """End every session of this account (a lost phone, a shared computer)."""
    return await _end(request, everywhere=True)


async def language(request: Request) -> Response:
    """Switch the console's language (a cookie; nothing else changes)."""
    console = console_of(request)
    chosen = request.query_params.get("to", "")
    back = request.headers.get("referer", "")
    target = back if back.startswith(str(request.base_url)) else console.root + "/tips"
    response = RedirectResponse(target, 303)
    if chosen in ("vi", "en"):
        response.set_cookie(
            LOCALE_COOKIE, chosen, samesite="strict", path=console.root, max_age=365 * 86400
        )
    return response
