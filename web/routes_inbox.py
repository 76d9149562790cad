"""The inbox in the browser: the list, a tip's page, its actions, replies, notes and files."""

from __future__ import annotations

from urllib.parse import urlsplit

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from bot.content.catalog import categories, category_by_id
from bot.i18n import _
from bot.services import audit
from bot.services.authorization import Action, may
from bot.services.cards import ACTION_LABELS, CLOSE_REASONS, STATUS_LABELS, file_note
from bot.services.inbox import ActionResult
from storage import communes
from storage.models import Staff, Tip, TipAttachment
from web import queries
from web.clocks import clocks
from web.guard import console_of, content_security_policy, route
from web.render import page, translator_for

# What the console's buttons may send: the card's actions, with close reasons spelled out.
ACTIONS = frozenset({"ack", "v1", "v0", "ver", "esc", *(f"cl:{key}" for key in CLOSE_REASONS)})
INLINE_TYPES = frozenset({"image/jpeg", "image/png", "image/webp", "image/gif"})


def _staff(request: Request) -> Staff:
    """The reader, as a staff member."""
    staff = request.state.current.staff
    assert isinstance(staff, Staff)
    return staff


@route()
async def tip_list(request: Request) -> Response:
    """The reader's tips, filtered, searched and sorted; `partial=1` is just the rows (htmx)."""
    console = console_of(request)
    if not may(_staff(request), Action.TIP):  # outreach staff: their work is elsewhere
        return RedirectResponse(console.root + "/outreach", 303)
    wanted = queries.InboxFilter.parse(request.query_params)
    async with console.services.db.session() as session:
        rows, more = await queries.list_tips(
            session,
            staff=_staff(request),
            wanted=wanted,
            now=console.clock(),
            timezone=console.timezone,
        )
    t = translator_for(request)
    context = {
        "rows": rows,
        "more": more,
        "wanted": wanted,
        "now": console.clock(),
        "categories": [(c.id, c.name(t.locale)) for c in categories()],
        "category_names": {c.id: c.name(t.locale) for c in categories()},
        "statuses": {key: t.gettext(label) for key, label in STATUS_LABELS.items()},
        "query": str(request.url.remove_query_params("partial").query),
        "prev_url": _page_url(request, wanted.page - 1) if wanted.page else "",
        "next_url": _page_url(request, wanted.page + 1) if more else "",
    }
    name = "tip_rows.html" if request.query_params.get("partial") == "1" else "tips.html"
    return page(request, name, context)


def _page_url(request: Request, number: int) -> str:
    """The list's URL with another page number (the other filters kept)."""
    url = request.url.remove_query_params("partial").include_query_params(page=number)
    return f"{url.path}?{url.query}"


async def _refuse_tip(request: Request, tip_id: int, action: str) -> Response:
    """403 for a tip outside the reader's scope (or none at all: the same answer), audited."""
    console = console_of(request)
    async with console.services.db.session() as session:
        exists = await session.get(Tip, tip_id)
        audit.record(
            session,
            actor=_staff(request),
            action=action,
            tip_id=exists.id if exists else None,
            allowed=False,
            now=console.clock(),
        )
        await session.commit()
    t = translator_for(request)
    message = t.gettext(_("You are not allowed to open this tip."))
    return page(request, "refused.html", {"message": message}, status_code=403)


def _tip_id(request: Request) -> int:
    """The tip id of the path (the route's convertor makes it an int)."""
    value = request.path_params["tip_id"]
    assert isinstance(value, int)
    return value


async def _show(request: Request, tip_id: int, *, result: ActionResult | None = None) -> Response:
    """The tip page, audited as a view of its content; 403 outside the reader's scope."""
    console = console_of(request)
    settings = console.services.settings
    staff = _staff(request)
    now = console.clock()
    async with console.services.db.session() as session:
        tip = await queries.scoped_tip(session, staff=staff, tip_id=tip_id)
        if tip is not None:
            found = await queries.tip_page(session, tip=tip)
    if tip is None:  # refused outside the session above: SQLite's pool holds one connection
        return await _refuse_tip(request, tip_id, "view")
    async with console.services.db.session() as session:
        if result is None:  # an action's own audit row covers the page shown after it
            audit.record(session, actor=staff, action="view", tip_id=tip.id, now=now)
            await session.commit()
    t = translator_for(request)
    category = category_by_id().get(tip.category)
    context = {
        "found": found,
        "tip": tip,
        "category": category.name(t.locale) if category else tip.category,
        "status": t.gettext(STATUS_LABELS.get(tip.status, tip.status)),
        "close_reasons": [(key, t.gettext(label)) for key, label in CLOSE_REASONS.items()],
        "close_reason": t.gettext(CLOSE_REASONS[tip.close_reason])
        if tip.close_reason in CLOSE_REASONS
        else "",
        "action_labels": {key: t.gettext(label) for key, label in ACTION_LABELS.items()},
        "clocks": clocks(t, tip, now),
        "inline_types": INLINE_TYPES,
        # The same warning the inbox shows under a file kept with its metadata.
        "file_notes": {file.id: file_note(t, file.note) for file in found.attachments},
        "result": result,
        "matches": [],
        "map_tiles": settings.console_tile_url,
        "map_attribution": settings.console_tile_attribution,
    }
    status = 200 if result is None or result.ok else 403
    response = page(request, "tip.html", context, status_code=status)
    if settings.console_tile_url:  # the tiles come from the deployment's tile server
        tiles = urlsplit(settings.console_tile_url)
        origin = f"{tiles.scheme}://{tiles.netloc}"
        response.headers["Content-Security-Policy"] = content_security_policy(origin)
    return response


@route()
async def tip_page(request: Request) -> Response:
    """One tip: card fields, thread, files, map, clocks, actions, reply, notes."""
    return await _show(request, _tip_id(request))


@route()
async def tip_action(request: Request) -> Response:
    """A card action from the console (acknowledge, valuable, verifying, close, escalate, move)."""
    console = console_of(request)
    tip_id = _tip_id(request)
    value = str(request.state.form.get("action", ""))[:40]
    t = translator_for(request)
    is_move = value.startswith("mv:") and value[3:].isdigit()
    if value not in ACTIONS and not is_move:
        return await _show(
            request, tip_id, result=ActionResult(t.gettext(_("Unknown action.")), ok=False)
        )
    result = await console.services.inbox.act(
        staff_id=_require_id(request), tip_id=tip_id, value=value
    )
    if not result.ok:
        return await _refuse_tip(request, tip_id, value)
    if is_move:  # the tip may have left the reader's scope: back to the list
        return RedirectResponse(console.root + "/tips", 303)
    return await _show(request, tip_id, result=result)


@route()
async def tip_reply(request: Request) -> Response:
    """Answer the tipster, anonymously, through the outbox on their channel."""
    console = console_of(request)
    tip_id = _tip_id(request)
    text = str(request.state.form.get("text", "")).strip()
    t = translator_for(request)
    if not text:
        empty = ActionResult(t.gettext(_("Write the answer first.")), ok=False)
        return await _show(request, tip_id, result=empty)
    result = await console.services.inbox.reply(
        staff_id=_require_id(request), tip_id=tip_id, text=text
    )
    return await _show(request, tip_id, result=result)


@route()
async def tip_note(request: Request) -> Response:
    """Add an internal note (police only)."""
    console = console_of(request)
    tip_id = _tip_id(request)
    text = str(request.state.form.get("text", ""))
    result = await console.services.inbox.add_note(
        staff_id=_require_id(request), tip_id=tip_id, text=text
    )
    return await _show(request, tip_id, result=result)


@route()
async def move_choices(request: Request) -> Response:
    """Communes matching a typed name, each a button that moves the tip there (htmx partial)."""
    console = console_of(request)
    tip_id = _tip_id(request)
    query = request.query_params.get("q", "")[:80]
    async with console.services.db.session() as session:
        tip = await queries.scoped_tip(session, staff=_staff(request), tip_id=tip_id)
        matches = await communes.search_communes(session, query) if tip else []
    if tip is None:
        return await _refuse_tip(request, tip_id, "move")
    return page(request, "move_choices.html", {"tip": tip, "matches": matches, "q": query})


@route()
async def tip_file(request: Request) -> Response:
    """One attachment: images inline, anything else as a download; audited."""
    console = console_of(request)
    staff = _staff(request)
    tip_id = _tip_id(request)
    file_id = request.path_params["file_id"]
    async with console.services.db.session() as session:
        tip = await queries.scoped_tip(session, staff=staff, tip_id=tip_id)
        attachment = await session.get(TipAttachment, file_id) if tip else None
        mine = tip is not None and attachment is not None and attachment.tip_id == tip.id
        if mine and attachment is not None and attachment.content is not None:
            audit.record(
                session,
                actor=staff,
                action="view_file",
                tip_id=tip_id,
                after={"file": attachment.id},
                now=console.clock(),
            )
            await session.commit()
    if tip is None or attachment is None or not mine:
        return await _refuse_tip(request, tip_id, "view_file")
    if attachment.content is None:
        t = translator_for(request)
        gone = t.gettext(_("This file was deleted by the retention policy."))
        return page(request, "refused.html", {"message": gone}, status_code=410)
    inline = attachment.mime_type in INLINE_TYPES
    name = f"{tip.short_id}-{attachment.position + 1}"
    disposition = "inline" if inline else f'attachment; filename="{name}"'
    return Response(
        bytes(attachment.content),
        media_type=attachment.mime_type if inline else "application/octet-stream",
        headers={"Content-Disposition": disposition, "Cache-Control": "no-store"},
    )


def _require_id(request: Request) -> int:
    """The reader's staff id."""
    staff_id = _staff(request).id
    assert staff_id is not None
    return staff_id
