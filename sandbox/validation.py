"""Checks Telegram applies to outgoing messages: HTML entities, lengths, keyboards."""

from __future__ import annotations

import html
import re
from dataclasses import dataclass, field
from typing import Any

from sandbox.errors import bad_request

MAX_TEXT = 4096
MAX_CAPTION = 1024
MAX_CALLBACK_DATA_BYTES = 64
MAX_CALLBACK_ANSWER = 200

_SIMPLE_TAGS = {
    "b": "bold",
    "strong": "bold",
    "i": "italic",
    "em": "italic",
    "u": "underline",
    "ins": "underline",
    "s": "strikethrough",
    "strike": "strikethrough",
    "del": "strikethrough",
    "tg-spoiler": "spoiler",
}
_ALLOWED_TAGS = frozenset({*_SIMPLE_TAGS, "a", "span", "tg-emoji", "pre", "code", "blockquote"})
_NAMED_ENTITIES = {"lt": "<", "gt": ">", "amp": "&", "quot": '"'}
_SPECIAL = re.compile(r"[<&]")
_ENTITY_LIKE = re.compile(r"&#?[0-9A-Za-z]+;")
_BOT_COMMAND = re.compile(r"(?<![\w/<>])/[A-Za-z0-9_]{1,64}(?:@[A-Za-z0-9_]{3,32})?(?![\w/<>])")


@dataclass(slots=True)
class FormattedText:
    """Plain text plus its entities (offsets in UTF-16 code units, as in the Bot API)."""

    text: str
    entities: list[dict[str, Any]] = field(default_factory=list)
    html: str = ""  # an HTML rendering of the source, for transcripts and the browser demo


class EntityParseError(ValueError):
    """The HTML could not be parsed the way Telegram parses it."""


def utf16_len(text: str) -> int:
    """Return the length of text in UTF-16 code units (what entity offsets count)."""
    if text.isascii():
        return len(text)
    return len(text.encode("utf-16-le")) // 2


def _byte_offset(source: str, index: int) -> int:
    # Telegram reports positions as UTF-8 byte offsets; only computed on error.
    return len(source[:index].encode("utf-8"))


def _decode_entity(source: str, pos: int) -> tuple[str | None, int]:
    """Decode an HTML entity at source[pos] == "&"; return (character or None, end)."""
    n = len(source)
    end = pos + 1
    if end < n and source[end] == "#":
        end += 1
        code = 0
        if end < n and source[end] in "xX":
            end += 1
            start = end
            while end < n and source[end] in "0123456789abcdefABCDEF":
                end += 1
            digits = source[start:end]
            code = int(digits, 16) if digits and len(digits) < 10 else -1
        else:
            start = end
            while end < n and source[end].isdigit() and source[end].isascii():
                end += 1
            digits = source[start:end]
            code = int(digits) if digits and len(digits) < 10 else -1
        if code <= 0 or code >= 0x10FFFF or 0xD800 <= code <= 0xDFFF:
            return None, pos
        char = chr(code)
    else:
        while end < n and source[end].isascii() and source[end].isalpha():
            end += 1
        named = _NAMED_ENTITIES.get(source[pos + 1 : end])
        if named is None:
            return None, pos
        char = named
    if end < n and source[end] == ";":
        end += 1
    return char, end


@dataclass(slots=True)
class _OpenTag:
    name: str
    argument: str
    offset: int
    text_index: int  # index into the output pieces, to recover a link's own text
    expandable: bool = False


def parse_html(source: str, *, strict_entities: bool = True) -> FormattedText:
    """Parse Telegram-flavoured HTML into text and entities, failing where Telegram fails.

    Telegram itself keeps an unknown `&name;` literally; with strict_entities (the default)
    the emulator refuses it, so bots that forget to escape user text fail in tests.
    """
    pieces: list[str] = []
    entities: list[dict[str, Any]] = []
    stack: list[_OpenTag] = []
    offset = 0
    i = 0
    n = len(source)
    while i < n:
        match = _SPECIAL.search(source, i)
        stop = match.start() if match else n
        if stop > i:
            chunk = source[i:stop]
            pieces.append(chunk)
            offset += utf16_len(chunk)
            i = stop
            if i >= n:
                break
        if source[i] == "&":
            char, end = _decode_entity(source, i)
            if char is None:
                bad = _ENTITY_LIKE.match(source, i)
                if strict_entities and bad:
                    raise EntityParseError(
                        f'Unsupported HTML entity "{bad.group()}" at byte offset '
                        f"{_byte_offset(source, i)}"
                    )
                pieces.append("&")
                offset += 1
                i += 1
                continue
            pieces.append(char)
            offset += utf16_len(char)
            i = end
            continue
        i = _parse_tag(source, i, pieces, entities, stack, offset)
    if stack:
        raise EntityParseError(f"Can't find end tag corresponding to start tag {stack[-1].name}")
    for entity in entities:
        # A language only survives on pre blocks, as in Telegram.
        if entity["type"] == "code":
            entity.pop("language", None)
    entities.sort(key=lambda e: (e["offset"], -e["length"]))
    return FormattedText("".join(pieces), entities, source)


def _parse_tag(
    source: str,
    begin: int,
    pieces: list[str],
    entities: list[dict[str, Any]],
    stack: list[_OpenTag],
    offset: int,
) -> int:
    """Parse the tag starting at source[begin] == "<"; return the index after it."""
    n = len(source)
    i = begin + 1
    if i < n and source[i] == "/":
        return _parse_end_tag(source, begin, pieces, entities, stack, offset)
    while i < n and not source[i].isspace() and source[i] != ">":
        i += 1
    if i >= n:
        raise EntityParseError(f"Unclosed start tag at byte offset {_byte_offset(source, begin)}")
    name = source[begin + 1 : i].lower()
    if name not in _ALLOWED_TAGS:
        raise EntityParseError(
            f'Unsupported start tag "{name}" at byte offset {_byte_offset(source, begin)}'
        )
    argument = ""
    expandable = False
    while True:
        while i < n and source[i].isspace():
            i += 1
        if i >= n:
            raise EntityParseError(
                f'Unclosed start tag "{name}" at byte offset {_byte_offset(source, begin)}'
            )
        if source[i] == ">":
            break
        attr_begin = i
        while i < n and not source[i].isspace() and source[i] not in "=>":
            i += 1
        attr = source[attr_begin:i].lower()
        while i < n and source[i].isspace():
            i += 1
        if i < n and source[i] != "=" and name == "blockquote" and attr == "expandable":
            expandable = True
            continue
        if not attr:
            raise EntityParseError(
                f'Empty attribute name in the tag "{name}" at byte offset '
                f"{_byte_offset(source, begin)}"
            )
        if i >= n or source[i] != "=":
            raise EntityParseError(
                f'Expected equal sign in declaration of an attribute of the tag "{name}" '
                f"at byte offset {_byte_offset(source, begin)}"
            )
        i += 1
        while i < n and source[i].isspace():
            i += 1
        if i >= n:
            raise EntityParseError(
                f'Unclosed start tag "{name}" at byte offset {_byte_offset(source, begin)}'
            )
        value, i = _attribute_value(source, i)
        if name == "a" and attr == "href":
            argument = value
        elif name == "code" and attr == "class" and value.startswith("language-"):
            argument = value[len("language-") :]
        elif name == "span" and attr == "class" and value.startswith("tg-"):
            argument = value[len("tg-") :]
        elif name == "tg-emoji" and attr == "emoji-id":
            argument = value
    if name == "span" and argument != "spoiler":
        raise EntityParseError(
            f'Tag "span" must have class "tg-spoiler" at byte offset {_byte_offset(source, begin)}'
        )
    stack.append(_OpenTag(name, argument, offset, len(pieces), expandable))
    return i + 1


def _attribute_value(source: str, i: int) -> tuple[str, int]:
    """Read a quoted string or a bare name token at source[i]; return (value, next index)."""
    n = len(source)
    quote = source[i]
    if quote not in "'\"":
        start = i
        while i < n and (source[i].isalnum() or source[i] in ".-"):
            i += 1
        if i < n and not source[i].isspace() and source[i] != ">":
            raise EntityParseError(
                f"Unexpected end of name token at byte offset {_byte_offset(source, start)}"
            )
        return source[start:i].lower(), i
    i += 1
    value: list[str] = []
    while i < n and source[i] != quote:
        if source[i] == "&":
            char, end = _decode_entity(source, i)
            if char is not None:
                value.append(char)
                i = end
                continue
        value.append(source[i])
        i += 1
    return "".join(value), min(i + 1, n)


def _parse_end_tag(
    source: str,
    begin: int,
    pieces: list[str],
    entities: list[dict[str, Any]],
    stack: list[_OpenTag],
    offset: int,
) -> int:
    n = len(source)
    if not stack:
        raise EntityParseError(f"Unexpected end tag at byte offset {_byte_offset(source, begin)}")
    i = begin + 2
    while i < n and not source[i].isspace() and source[i] != ">":
        i += 1
    end_name = source[begin + 2 : i].lower()
    while i < n and source[i].isspace():
        i += 1
    if i >= n or source[i] != ">":
        raise EntityParseError(f"Unclosed end tag at byte offset {_byte_offset(source, begin)}")
    opened = stack[-1]
    if end_name and end_name != opened.name:
        raise EntityParseError(
            f"Unmatched end tag at byte offset {_byte_offset(source, begin)}, "
            f'expected "</{opened.name}>", found "</{end_name}>"'
        )
    stack.pop()
    length = offset - opened.offset
    if length > 0:
        entity = _make_entity(opened, length, pieces, entities)
        if entity is not None:
            entities.append(entity)
    return i + 1


def _make_entity(
    opened: _OpenTag, length: int, pieces: list[str], entities: list[dict[str, Any]]
) -> dict[str, Any] | None:
    """Build the entity a closed tag produces (None when it merges into a neighbour)."""
    name = opened.name
    base: dict[str, Any] = {"offset": opened.offset, "length": length}
    simple = _SIMPLE_TAGS.get(name)
    if simple is not None or name == "span":
        return {"type": simple or "spoiler", **base}
    if name == "tg-emoji":
        if not opened.argument.isdigit() or int(opened.argument) == 0:
            raise EntityParseError("Invalid custom emoji identifier specified")
        return {"type": "custom_emoji", **base, "custom_emoji_id": opened.argument}
    if name == "a":
        url = opened.argument or "".join(pieces[opened.text_index :])
        user = re.fullmatch(r"tg://user\?id=(\d+)", url)
        if user:
            return {"type": "text_mention", **base, "user": _mention_user(int(user.group(1)))}
        return {"type": "text_link", **base, "url": url}
    last = entities[-1] if entities else None
    same_span = last is not None and last["offset"] == opened.offset and last["length"] == length
    if name == "pre":
        # <pre><code class="language-x">...</code></pre> is one pre entity with a language.
        if same_span and last is not None and last["type"] == "code" and last.get("language"):
            last["type"] = "pre"
            return None
        return {"type": "pre", **base}
    if name == "code":
        if same_span and last is not None and last["type"] == "pre" and opened.argument:
            last["language"] = opened.argument
            return None
        entity = {"type": "code", **base}
        if opened.argument:
            entity["language"] = opened.argument
        return entity
    kind = "expandable_blockquote" if opened.expandable else "blockquote"
    return {"type": kind, **base}


def _mention_user(user_id: int) -> dict[str, Any]:
    return {"id": user_id, "is_bot": False, "first_name": str(user_id)}


def _trim(formatted: FormattedText) -> FormattedText:
    """Strip surrounding whitespace as Telegram does, keeping entities aligned."""
    text = formatted.text
    stripped = text.strip()
    if stripped == text:
        return formatted
    lead = utf16_len(text[: len(text) - len(text.lstrip())])
    limit = utf16_len(stripped)
    entities: list[dict[str, Any]] = []
    for entity in formatted.entities:
        start = max(entity["offset"] - lead, 0)
        end = min(entity["offset"] + entity["length"] - lead, limit)
        if end > start:
            entities.append({**entity, "offset": start, "length": end - start})
    return FormattedText(stripped, entities, formatted.html)


def format_text(
    text: str | None,
    parse_mode: str | None,
    entities: Any,
    *,
    caption: bool = False,
    strict_entities: bool = True,
) -> FormattedText:
    """Apply parse_mode/entities and Telegram's length rules to a text or caption."""
    limit = MAX_CAPTION if caption else MAX_TEXT
    if text is None:
        text = ""
    if not caption and not text.strip():
        raise bad_request("message text is empty")
    if entities is not None:
        if not isinstance(entities, list):
            raise bad_request("can't parse entities JSON object")
        formatted = FormattedText(text, list(entities), html.escape(text, quote=False))
    elif parse_mode is not None and parse_mode.lower() == "html":
        try:
            formatted = parse_html(text, strict_entities=strict_entities)
        except EntityParseError as exc:
            raise bad_request(f"can't parse entities: {exc}") from None
    elif parse_mode is not None and parse_mode.lower() not in ("markdown", "markdownv2"):
        raise bad_request(f"unsupported parse_mode {parse_mode}")
    else:
        # Markdown modes are accepted leniently: the source is kept as plain text.
        formatted = FormattedText(text, [], html.escape(text, quote=False))
    formatted = _trim(formatted)
    if not caption and not formatted.text:
        raise bad_request("message text is empty")
    if len(formatted.text) > limit:
        raise bad_request("message caption is too long" if caption else "message is too long")
    return formatted


def command_entities(text: str) -> list[dict[str, Any]]:
    """Return the bot_command entities Telegram attaches to a user's text."""
    found: list[dict[str, Any]] = []
    for match in _BOT_COMMAND.finditer(text):
        found.append(
            {
                "type": "bot_command",
                "offset": utf16_len(text[: match.start()]),
                "length": utf16_len(match.group()),
            }
        )
    return found


def check_reply_markup(markup: Any) -> dict[str, Any] | None:
    """Validate a reply_markup object as Telegram does; return it unchanged."""
    if markup is None:
        return None
    if not isinstance(markup, dict):
        raise bad_request("can't parse reply keyboard markup JSON object")
    if "inline_keyboard" in markup:
        _check_inline_keyboard(markup["inline_keyboard"])
    elif "keyboard" in markup:
        _check_reply_keyboard(markup["keyboard"])
    elif not markup.get("remove_keyboard") and not markup.get("force_reply"):
        raise bad_request("can't parse reply keyboard markup JSON object")
    return markup


_INLINE_ACTIONS = (
    "url",
    "callback_data",
    "web_app",
    "login_url",
    "switch_inline_query",
    "switch_inline_query_current_chat",
    "switch_inline_query_chosen_chat",
    "copy_text",
    "callback_game",
    "pay",
)


def _check_inline_keyboard(rows: Any) -> None:
    if not isinstance(rows, list) or not all(isinstance(row, list) for row in rows):
        raise bad_request(
            "can't parse inline keyboard button: InlineKeyboardButton must be an Object"
        )
    for row in rows:
        for button in row:
            if not isinstance(button, dict) or not isinstance(button.get("text"), str):
                raise bad_request("can't parse inline keyboard button: Text must be a String")
            actions = [key for key in _INLINE_ACTIONS if key in button]
            if not actions:
                raise bad_request(
                    "can't parse inline keyboard button: Text buttons are unallowed in the "
                    "inline keyboard"
                )
            if "callback_data" in button:
                check_callback_data(button["callback_data"])
            if "url" in button:
                url = button["url"]
                if not isinstance(url, str) or not re.match(r"(https?|tg)://\S+$", url):
                    raise bad_request(
                        f"inline keyboard button URL '{url}' is invalid: Wrong HTTP URL"
                    )


def _check_reply_keyboard(rows: Any) -> None:
    if not isinstance(rows, list) or not all(isinstance(row, list) for row in rows):
        raise bad_request("can't parse reply keyboard markup JSON object")
    for row in rows:
        for button in row:
            text = button.get("text") if isinstance(button, dict) else button
            if not isinstance(text, str) or not text:
                raise bad_request("can't parse reply keyboard markup JSON object")


def check_callback_data(data: Any) -> None:
    """Refuse callback_data that is not 1-64 bytes of UTF-8, as Telegram does."""
    if not isinstance(data, str) or not 1 <= len(data.encode("utf-8")) <= MAX_CALLBACK_DATA_BYTES:
        raise bad_request("BUTTON_DATA_INVALID")


def inline_callback_data(markup: dict[str, Any] | None) -> set[str]:
    """Return the callback_data values of an inline keyboard (empty for anything else)."""
    if not markup or "inline_keyboard" not in markup:
        return set()
    return {
        button["callback_data"]
        for row in markup["inline_keyboard"]
        for button in row
        if "callback_data" in button
    }


def check_command_list(commands: Any) -> list[dict[str, str]]:
    """Validate setMyCommands' list (names 1-32 of a-z0-9_, descriptions 1-256)."""
    if not isinstance(commands, list) or len(commands) > 100:
        raise bad_request("can't parse commands JSON object")
    checked: list[dict[str, str]] = []
    for item in commands:
        if not isinstance(item, dict):
            raise bad_request("can't parse BotCommand JSON object")
        name = item.get("command")
        description = item.get("description")
        if not isinstance(name, str) or not re.fullmatch(r"[a-z0-9_]{1,32}", name):
            raise bad_request("BOT_COMMAND_INVALID")
        if not isinstance(description, str) or not 1 <= len(description) <= 256:
            raise bad_request("BOT_COMMAND_DESCRIPTION_INVALID")
        checked.append({"command": name, "description": description})
    return checked
