"""Who is asking: the session cookie, the CSRF token, and the login-form token.

Every console route is wrapped by `route(stage=...)`: it loads the session row (or sends the
reader to the login page), refuses a POST without the session's CSRF token (form field or the
`X-CSRF-Token` header htmx sends), and sets the security headers. The login and join forms
have no session yet: a random cookie and the same value in the form (double submit) guard
them, with SameSite=Strict on every cookie.
"""

from __future__ import annotations

import hmac
import secrets
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import wraps
from typing import Any

from starlette.requests import Request
from starlette.responses import PlainTextResponse, RedirectResponse, Response

from bot.context import Services
from web import sessions
from web.accounts import LoginPolicy

SESSION_COOKIE = "tinbao_console"
PRE_CSRF_COOKIE = "tinbao_form"
CSRF_FIELD = "csrf"
CSRF_HEADER = "x-csrf-token"
LIVE_HEADER = "x-tinbao-live"
MAX_FORM_BYTES = 64 * 1024  # a reply is at most a few thousand characters
SAFE_METHODS = frozenset({"GET", "HEAD"})


# No inline script or style anywhere, so the policy can forbid them: injected markup is inert.
def content_security_policy(*image_origins: str) -> str:
    """The console's policy; `image_origins` may add a map tile server to img-src."""
    images = " ".join(("'self'", "data:", "blob:", *image_origins))
    return (
        f"default-src 'self'; img-src {images}; style-src 'self'; script-src 'self'; "
        "connect-src 'self'; frame-ancestors 'none'; form-action 'self'; base-uri 'none'"
    )


CONTENT_SECURITY_POLICY = content_security_policy()

Handler = Callable[[Request], Awaitable[Response]]


@dataclass
class ConsoleState:
    """What every console route needs: services, settings-derived limits, the mount point."""

    services: Services
    root: str
    default_locale: str
    timezone: str
    policy: LoginPolicy
    clock: Callable[[], datetime]
    draining: Callable[[], bool]


def console_of(request: Request) -> ConsoleState:
    """The console state of the app serving this request."""
    state = request.app.state.console
    assert isinstance(state, ConsoleState)
    return state


def secure_cookies(request: Request) -> bool:
    """Cookies are `Secure` whenever the reader came over TLS (behind Caddy: forwarded)."""
    return request.url.scheme == "https"


def set_session_cookie(response: Response, request: Request, token: str) -> None:
    """Give the browser its session token: HttpOnly, SameSite=Strict, Secure behind TLS."""
    response.set_cookie(
        SESSION_COOKIE,
        token,
        httponly=True,
        samesite="strict",
        secure=secure_cookies(request),
        path=console_of(request).root,
    )


def clear_session_cookie(response: Response, request: Request) -> None:
    """Drop the session cookie."""
    response.delete_cookie(SESSION_COOKIE, path=console_of(request).root)


def harden(response: Response) -> Response:
    """Headers every console answer carries."""
    response.headers.setdefault("Content-Security-Policy", CONTENT_SECURITY_POLICY)
    response.headers.setdefault("X-Content-Type-Options", "nosniff")
    response.headers.setdefault("Referrer-Policy", "same-origin")
    response.headers.setdefault("X-Frame-Options", "DENY")
    return response


def forbidden(text: str = "forbidden") -> Response:
    """A refusal (the console's pages render their own 403 with a message)."""
    return harden(PlainTextResponse(text, status_code=403))


async def form_of(request: Request) -> Any:
    """The request's form, refused past MAX_FORM_BYTES (checked before parsing)."""
    length = request.headers.get("content-length", "")
    if not length.isdigit() or int(length) > MAX_FORM_BYTES:
        raise FormTooLargeError
    return await request.form(max_files=0, max_fields=50)


class FormTooLargeError(Exception):
    """A form body over the limit, or without a length."""


def _same(expected: str, given: str) -> bool:
    """Constant-time token comparison."""
    return bool(expected) and hmac.compare_digest(expected.encode(), given.encode())


def public(handler: Handler) -> Handler:
    """A page before login (login, join): the double-submit token instead of a session."""

    @wraps(handler)
    async def wrapped(request: Request) -> Response:
        token = request.cookies.get(PRE_CSRF_COOKIE, "")
        fresh = not token or len(token) > 64
        if fresh:
            token = secrets.token_urlsafe(24)
        request.state.pre_csrf = token
        request.state.current = None
        if request.method not in SAFE_METHODS:
            try:
                form = await form_of(request)
            except FormTooLargeError:
                return harden(PlainTextResponse("too large", status_code=413))
            if fresh or not _same(token, str(form.get(CSRF_FIELD, ""))):
                return forbidden("CSRF token missing or wrong")
            request.state.form = form
        response = await handler(request)
        if fresh:
            response.set_cookie(
                PRE_CSRF_COOKIE,
                token,
                httponly=True,
                samesite="strict",
                secure=secure_cookies(request),
                path=console_of(request).root,
                max_age=int(timedelta(hours=12).total_seconds()),
            )
        return harden(response)

    return wrapped


def route(
    *, stage: str = sessions.Stage.FULL, stream: bool = False
) -> Callable[[Handler], Handler]:
    """A page behind login: the session must be live and at `stage`; POSTs need its CSRF.

    Without a session a page redirects to the login form; a `stream` (and any htmx request)
    answers 401, which an EventSource does not follow and the script turns into a reload.
    """

    def decorate(handler: Handler) -> Handler:
        @wraps(handler)
        async def wrapped(request: Request) -> Response:
            console = console_of(request)
            request.state.pre_csrf = ""
            async with console.services.db.session() as session:
                current = await sessions.load(
                    session,
                    token=request.cookies.get(SESSION_COOKIE, ""),
                    now=console.clock(),
                    limits=console.policy.timeouts,
                    # A redraw the live stream asked for is not the reader doing something.
                    touch=LIVE_HEADER not in request.headers,
                )
            if current is None:
                wants_page = not stream and "hx-request" not in request.headers
                if request.method in SAFE_METHODS and wants_page:
                    response: Response = RedirectResponse(f"{console.root}/login", 303)
                    clear_session_cookie(response, request)
                    return harden(response)
                return harden(PlainTextResponse("not logged in", status_code=401))
            if current.row.stage != stage:
                target = "/enroll" if current.row.stage == sessions.Stage.ENROLL else "/tips"
                return harden(RedirectResponse(console.root + target, 303))
            request.state.current = current
            if request.method not in SAFE_METHODS:
                try:
                    form = await form_of(request)
                except FormTooLargeError:
                    return harden(PlainTextResponse("too large", status_code=413))
                given = request.headers.get(CSRF_HEADER) or str(form.get(CSRF_FIELD, ""))
                if not _same(current.row.csrf_token, given):
                    return forbidden("CSRF token missing or wrong")
                request.state.form = form
            return harden(await handler(request))

        return wrapped

    return decorate
