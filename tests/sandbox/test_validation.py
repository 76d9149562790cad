"""Telegram's message validation: HTML entities, lengths, keyboards, callback data."""

from __future__ import annotations

from typing import Any

import pytest

from sandbox.client import EmulatorClient
from sandbox.validation import EntityParseError, command_entities, parse_html, utf16_len
from tests.sandbox.support import ANN, BotApiClient


def test_parse_html_builds_entities_with_utf16_offsets() -> None:
    parsed = parse_html(
        '😀 <b>bold <i>both</i></b> <a href="https://x.org">link</a> &lt;&amp;&#33;'
    )
    assert parsed.text == "😀 bold both link <&!"
    types = [(e["type"], e["offset"], e["length"]) for e in parsed.entities]
    # The emoji is two UTF-16 code units, so "bold" starts at 3.
    assert types == [("bold", 3, 9), ("italic", 8, 4), ("text_link", 13, 4)]
    assert parsed.entities[2]["url"] == "https://x.org"


def test_parse_html_pre_with_language_and_spoilers() -> None:
    parsed = parse_html(
        '<pre><code class="language-python">x = 1</code></pre>'
        '<span class="tg-spoiler">s</span><tg-spoiler>t</tg-spoiler>'
        "<blockquote expandable>q</blockquote><code>c</code>"
    )
    assert parsed.entities == [
        {"type": "pre", "offset": 0, "length": 5, "language": "python"},
        {"type": "spoiler", "offset": 5, "length": 1},
        {"type": "spoiler", "offset": 6, "length": 1},
        {"type": "expandable_blockquote", "offset": 7, "length": 1},
        {"type": "code", "offset": 8, "length": 1},
    ]


@pytest.mark.parametrize(
    ("source", "message"),
    [
        ("<foo>x</foo>", 'Unsupported start tag "foo" at byte offset 0'),
        ("<b>x", "Can't find end tag corresponding to start tag b"),
        ("<b>x</i>", 'Unmatched end tag at byte offset 4, expected "</b>", found "</i>"'),
        ("x</b>", "Unexpected end tag at byte offset 1"),
        ("1 < 2", 'Unsupported start tag "" at byte offset 2'),
        ("a<b", "Unclosed start tag at byte offset 1"),
        ("Tom &foo; Jerry", 'Unsupported HTML entity "&foo;" at byte offset 4'),
        ('<span class="x">y</span>', 'Tag "span" must have class "tg-spoiler" at byte offset 0'),
        ("é<br>", 'Unsupported start tag "br" at byte offset 2'),
    ],
)
def test_parse_html_rejects_what_telegram_rejects(source: str, message: str) -> None:
    with pytest.raises(EntityParseError) as error:
        parse_html(source)
    assert str(error.value) == message


def test_lenient_entities_keep_unknown_names_like_telegram() -> None:
    assert parse_html("A &foo; B & C", strict_entities=False).text == "A &foo; B & C"
    assert parse_html("A & B").text == "A & B"  # a bare ampersand is never an entity


def test_command_entities() -> None:
    assert command_entities("/start abc") == [{"type": "bot_command", "offset": 0, "length": 6}]
    assert command_entities("đi /help@tinbao_bot") == [
        {"type": "bot_command", "offset": 3, "length": 16}
    ]
    assert command_entities("a/b http://x/y") == []
    assert utf16_len("😀a") == 3


async def test_send_message_errors(api: BotApiClient, users: EmulatorClient) -> None:
    await users.send_text(ANN, "hi")
    cases: list[tuple[dict[str, Any], str]] = [
        ({"text": ""}, "Bad Request: message text is empty"),
        ({"text": "   \n"}, "Bad Request: message text is empty"),
        ({"text": "x" * 4097}, "Bad Request: message is too long"),
        (
            {"text": "<b>x</b>", "parse_mode": "HTML", "chat_id": 999},
            "Bad Request: chat not found",
        ),
        (
            {"text": "<x>", "parse_mode": "HTML"},
            'Bad Request: can\'t parse entities: Unsupported start tag "x" at byte offset 0',
        ),
        (
            {
                "text": "a",
                "reply_markup": {"inline_keyboard": [[{"text": "b", "callback_data": ""}]]},
            },
            "Bad Request: BUTTON_DATA_INVALID",
        ),
        (
            {
                "text": "a",
                "reply_markup": {"inline_keyboard": [[{"text": "b", "callback_data": "đ" * 33}]]},
            },
            "Bad Request: BUTTON_DATA_INVALID",
        ),
        ({"text": "a", "reply_to_message_id": 77}, "Bad Request: message to be replied not found"),
    ]
    for params, description in cases:
        body = await api.call("sendMessage", **{"chat_id": ANN.id, **params})
        assert body == {"ok": False, "error_code": 400, "description": description}, params


async def test_length_counts_text_after_entity_parsing(
    api: BotApiClient, users: EmulatorClient
) -> None:
    await users.send_text(ANN, "hi")
    # 4096 visible characters wrapped in tags is fine; the tags do not count.
    text = "<b>" + "x" * 4096 + "</b>"
    sent = await api.ok("sendMessage", chat_id=ANN.id, text=text, parse_mode="HTML")
    assert len(sent["text"]) == 4096
    # Callback data of exactly 64 bytes is accepted.
    markup = {"inline_keyboard": [[{"text": "b", "callback_data": "d" * 64}]]}
    await api.ok("sendMessage", chat_id=ANN.id, text="ok", reply_markup=markup)


async def test_caption_too_long(api: BotApiClient, users: EmulatorClient) -> None:
    photo = await users.send_photo(ANN, b"not really an image")
    file_id = photo["media"]["file_id"]
    body = await api.call("sendPhoto", chat_id=ANN.id, photo=file_id, caption="c" * 1025)
    assert body["description"] == "Bad Request: message caption is too long"
    sent = await api.ok("sendPhoto", chat_id=ANN.id, photo=file_id, caption="c" * 1024)
    assert sent["photo"][0]["file_id"] == file_id


async def test_markdown_is_accepted_leniently(api: BotApiClient, users: EmulatorClient) -> None:
    await users.send_text(ANN, "hi")
    sent = await api.ok("sendMessage", chat_id=ANN.id, text="*a* _b_ 1.5", parse_mode="MarkdownV2")
    assert sent["text"] == "*a* _b_ 1.5"


async def test_text_is_trimmed_and_entities_shifted(
    api: BotApiClient, users: EmulatorClient
) -> None:
    await users.send_text(ANN, "hi")
    sent = await api.ok("sendMessage", chat_id=ANN.id, text="  <b>hi</b> \n", parse_mode="HTML")
    assert sent["text"] == "hi"
    assert sent["entities"] == [{"type": "bold", "offset": 0, "length": 2}]
