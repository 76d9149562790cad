"""Legal-outreach topics and pledge templates: loaded, validated and rendered for Telegram."""

from __future__ import annotations

import html
import re
import unicodedata
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from functools import cache
from html.parser import HTMLParser
from pathlib import Path
from types import MappingProxyType
from typing import Any, NoReturn

import yaml

CONTENT_DIR = Path(__file__).parent
TOPICS_DIR = CONTENT_DIR / "topics"
PLEDGES_PATH = CONTENT_DIR / "pledges.yaml"

LOCALES = ("vi", "en")
DEFAULT_LOCALE = "vi"
# Telegram's limit for one message, counted after entity parsing.
MESSAGE_LIMIT = 4096
# Topic bodies leave room for the title, the sources line and buttons.
TOPIC_BODY_LIMIT = 3500
PLEDGE_TEXT_LIMIT = 1500
TITLE_LIMIT = 100
SUMMARY_LIMIT = 200
# The line that starts the optional English body of a topic file.
EN_SEPARATOR = "<!-- en -->"
# Labels added by the renderer; content data, like the texts they introduce.
SOURCES_LABEL = {"vi": "Nguồn:", "en": "Sources:"}

ALLOWED_TAGS = frozenset(
    {
        "b",
        "strong",
        "i",
        "em",
        "u",
        "ins",
        "s",
        "strike",
        "del",
        "a",
        "code",
        "pre",
        "blockquote",
        "tg-spoiler",
        "span",
    }
)
LINK_SCHEMES = ("https://", "tg://")

_ID = re.compile(r"[a-z0-9_]+")
_SEPARATOR_LINE = re.compile(r"^[ \t]*<!--[ \t]*en[ \t]*-->[ \t]*$", re.MULTILINE)
_ENTITY = re.compile(r"&(?:lt|gt|amp|quot|#[0-9]{1,7}|#x[0-9a-fA-F]{1,6});")
_TAG_LIKE = re.compile(r"</?[a-zA-Z]")
_MARKDOWN = (
    (re.compile(r"\*\*|__"), "Markdown emphasis (** or __): use <b>, <i>, <u>"),
    (re.compile(r"\[[^\]\n]+\]\([^)\n]+\)"), 'Markdown link [text](url): use <a href="...">'),
    (re.compile(r"`"), "Markdown code (`): use <code>"),
    (re.compile(r"^[ \t]*#{1,6}[ \t]", re.MULTILINE), "Markdown heading (#): use <b>"),
    (re.compile(r"^[ \t]*[-*+][ \t]", re.MULTILINE), "Markdown list (-, *, +): start with '• '"),
)

_TOPIC_REQUIRED = ("id", "title", "tags", "summary", "sources")
_TOPIC_OPTIONAL = ("title_en", "summary_en")
_PLEDGE_REQUIRED = ("id", "title", "title_en", "text", "topic")
_PLEDGE_OPTIONAL = ("text_en",)


class ContentError(ValueError):
    """A content file is missing, malformed or breaks a rule; the message names the file."""

    def __init__(self, path: Path | str, problem: str) -> None:
        super().__init__(f"{path}: {problem}")
        self.path = Path(path)
        self.problem = problem


class HtmlError(ValueError):
    """A text is not valid Telegram HTML; `line` counts from 1 within that text."""

    def __init__(self, problem: str, line: int) -> None:
        super().__init__(f"line {line}: {problem}")
        self.problem = problem
        self.line = line


@dataclass(frozen=True)
class Source:
    """A legal text a topic is based on."""

    title: str
    url: str | None = None


@dataclass(frozen=True)
class Topic:
    """A legal-outreach topic: Vietnamese always, English optional."""

    id: str
    title_vi: str
    summary_vi: str
    body_vi: str
    tags: tuple[str, ...]
    sources: tuple[Source, ...]
    title_en: str | None = None
    summary_en: str | None = None
    body_en: str | None = None

    def title(self, locale: str) -> str:
        """The title in a locale, Vietnamese when missing."""
        return (self.title_en if _lang(locale) == "en" else None) or self.title_vi

    def summary(self, locale: str) -> str:
        """The one-sentence summary in a locale, Vietnamese when missing."""
        return (self.summary_en if _lang(locale) == "en" else None) or self.summary_vi

    def body(self, locale: str) -> str:
        """The Telegram-HTML body in a locale, Vietnamese when missing."""
        return (self.body_en if _lang(locale) == "en" else None) or self.body_vi

    def render_locale(self, locale: str) -> str:
        """The locale a rendered message uses: the requested one only if the body exists in it."""
        return "en" if _lang(locale) == "en" and self.body_en else DEFAULT_LOCALE


@dataclass(frozen=True)
class Pledge:
    """A pledge template households sign ("ký cam kết")."""

    id: str
    title_vi: str
    title_en: str
    text_vi: str
    topic: str
    text_en: str | None = None

    def title(self, locale: str) -> str:
        """The title in a locale, Vietnamese when missing."""
        return self.title_en if _lang(locale) == "en" else self.title_vi

    def text(self, locale: str) -> str:
        """The Telegram-HTML pledge text in a locale, Vietnamese when missing."""
        return (self.text_en if _lang(locale) == "en" else None) or self.text_vi

    def render_locale(self, locale: str) -> str:
        """The locale a rendered pledge uses: the requested one only if the text exists in it."""
        return "en" if _lang(locale) == "en" and self.text_en else DEFAULT_LOCALE


def _lang(locale: str) -> str:
    """Reduce "en_US", "vi-VN" and the like to a supported language, Vietnamese by default."""
    language = locale.replace("-", "_").split("_", 1)[0].lower()
    return language if language in LOCALES else DEFAULT_LOCALE


class _TelegramHtml(HTMLParser):
    """Checks one text against Telegram's HTML subset and collects its visible text."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=False)
        self.stack: list[str] = []
        self.opened_on: list[int] = []
        self.visible: list[str] = []

    def fail(self, problem: str) -> NoReturn:
        """Stop parsing with a problem at the current position."""
        raise HtmlError(problem, self.getpos()[0])

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        """Accept only allowed tags, attributes and nesting."""
        if tag not in ALLOWED_TAGS:
            self.fail(
                f"tag <{tag}> is not allowed (Telegram HTML: {', '.join(sorted(ALLOWED_TAGS))})"
            )
        if self.stack and self.stack[-1] == "code":
            self.fail(f"<{tag}> inside <code>: code cannot contain other tags")
        if self.stack and self.stack[-1] == "pre" and tag != "code":
            self.fail(f"<{tag}> inside <pre>: pre can only contain <code>")
        if tag == "a" and "a" in self.stack:
            self.fail("a link inside a link")
        self._check_attributes(tag, dict(attrs))
        self.stack.append(tag)
        self.opened_on.append(self.getpos()[0])

    def _check_attributes(self, tag: str, attrs: dict[str, str | None]) -> None:
        """Accept only the attributes Telegram reads for each tag."""
        allowed = {
            "a": {"href"},
            "span": {"class"},
            "code": {"class"},
            "blockquote": {"expandable"},
        }
        for name in attrs:
            if name not in allowed.get(tag, set()):
                self.fail(f'attribute "{name}" is not allowed on <{tag}>')
        if tag == "a":
            href = attrs.get("href") or ""
            if not href.startswith(LINK_SCHEMES):
                self.fail(f'link "{href}" must start with https:// or tg://')
        elif tag == "span" and attrs.get("class") != "tg-spoiler":
            self.fail('<span> needs class="tg-spoiler"')
        elif tag == "code" and "class" in attrs and not self._is_language_class(attrs["class"]):
            self.fail('<code class="language-..."> is only allowed directly inside <pre>')

    def _is_language_class(self, value: str | None) -> bool:
        """Whether a <code> class names a language directly inside <pre>, as Telegram allows."""
        return (value or "").startswith("language-") and self.stack[-1:] == ["pre"]

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        """Refuse self-closing tags such as <br/>: Telegram has none."""
        self.fail(f"<{tag}/> is not supported: Telegram HTML has no self-closing tags")

    def handle_endtag(self, tag: str) -> None:
        """Require every closing tag to match the innermost open tag."""
        if not self.stack:
            self.fail(f"</{tag}> closes nothing")
        if self.stack[-1] != tag:
            self.fail(f"</{tag}> found while <{self.stack[-1]}> is still open")
        self.stack.pop()
        self.opened_on.pop()

    def handle_data(self, data: str) -> None:
        """Collect visible text; a bare < or > must be written as an entity."""
        if "<" in data or ">" in data:
            self.fail("bare '<' or '>' (an unfinished tag, or write &lt; / &gt;)")
        self.visible.append(data)

    def handle_entityref(self, name: str) -> None:
        """Collect a named entity as the character it stands for."""
        self.visible.append(html.unescape(f"&{name};"))

    def handle_charref(self, name: str) -> None:
        """Collect a numeric entity as the character it stands for."""
        self.visible.append(html.unescape(f"&#{name};"))

    def handle_comment(self, data: str) -> None:
        """Refuse comments: Telegram would show them as broken markup."""
        self.fail("HTML comments are not allowed in a message")

    def handle_decl(self, decl: str) -> None:
        """Refuse declarations."""
        self.fail(f"<!{decl}> is not allowed")

    def unknown_decl(self, data: str) -> None:
        """Refuse CDATA and other declarations."""
        self.fail(f"<![{data}]> is not allowed")

    def handle_pi(self, data: str) -> None:
        """Refuse processing instructions."""
        self.fail(f"<?{data}> is not allowed")


def validate_html(text: str) -> str:
    """Check a text against Telegram's HTML subset; return its visible text or raise HtmlError."""
    for match in re.finditer("&", text):
        if not _ENTITY.match(text, match.start()):
            line = text.count("\n", 0, match.start()) + 1
            raise HtmlError("bare '&': write &amp; (entities: &lt; &gt; &amp; &quot; &#NN;)", line)
    parser = _TelegramHtml()
    parser.feed(text)
    parser.close()
    if parser.stack:
        raise HtmlError(f"<{parser.stack[-1]}> is never closed", parser.opened_on[-1])
    return "".join(parser.visible)


def telegram_length(text: str) -> int:
    """The length Telegram counts for an HTML text: UTF-16 units of its visible text."""
    return len(validate_html(text).encode("utf-16-le")) // 2


def _check_text(path: Path, where: str, text: str, limit: int, first_line: int = 1) -> str:
    """Validate a Telegram-HTML text from a content file and return it normalised."""
    stripped = text.lstrip()
    first_line += text[: len(text) - len(stripped)].count("\n")
    text = unicodedata.normalize("NFC", stripped.rstrip())
    if not text:
        raise ContentError(path, f"{where} is empty")
    try:
        visible = validate_html(text)
    except HtmlError as error:
        line = first_line + error.line - 1
        raise ContentError(path, f"{where}, line {line}: {error.problem}") from None
    for pattern, problem in _MARKDOWN:
        found = pattern.search(visible)
        if found:
            raise ContentError(path, f"{where}: {problem} (near {found.group(0)!r})")
    length = len(visible.encode("utf-16-le")) // 2
    if length > limit:
        raise ContentError(path, f"{where} is {length} characters after rendering; limit {limit}")
    return text


def _plain(path: Path, where: str, value: Any, limit: int) -> str:
    """Validate a plain-text field (title, summary): one line, no markup, within a limit."""
    if not isinstance(value, str) or not value.strip():
        raise ContentError(path, f"{where} must be a non-empty string")
    value = unicodedata.normalize("NFC", value.strip())
    if "\n" in value:
        raise ContentError(path, f"{where} must be a single line")
    if _TAG_LIKE.search(value):
        raise ContentError(path, f"{where} is plain text: no HTML tags")
    if len(value) > limit:
        raise ContentError(path, f"{where} is {len(value)} characters; limit {limit}")
    return value


def _optional_plain(path: Path, where: str, value: Any, limit: int) -> str | None:
    """Validate an optional plain-text field."""
    return None if value is None else _plain(path, where, value, limit)


def _check_fields(
    path: Path,
    where: str,
    data: Mapping[str, Any],
    required: tuple[str, ...],
    optional: tuple[str, ...],
) -> None:
    """Refuse missing required fields and unknown (misspelt) ones."""
    missing = [name for name in required if name not in data]
    if missing:
        raise ContentError(path, f"{where}: missing field(s) {', '.join(missing)}")
    unknown = sorted(set(data) - set(required) - set(optional))
    if unknown:
        allowed = ", ".join(required + optional)
        raise ContentError(
            path, f"{where}: unknown field(s) {', '.join(unknown)} (allowed: {allowed})"
        )


def _check_id(path: Path, where: str, value: Any) -> str:
    """Validate an id: lower-case letters, digits and underscores."""
    if not isinstance(value, str) or not _ID.fullmatch(value):
        raise ContentError(path, f"{where}: id {value!r} must match [a-z0-9_]+")
    return value


def _split_front_matter(path: Path, raw: str) -> tuple[dict[str, Any], str, int]:
    """Split a topic file into its front matter, its body and the body's first line number."""
    lines = raw.lstrip("\ufeff").replace("\r\n", "\n").split("\n")
    if lines[0].strip() != "---":
        raise ContentError(path, "front matter missing: the file must start with a '---' line")
    end = next((i for i in range(1, len(lines)) if lines[i].strip() == "---"), None)
    if end is None:
        raise ContentError(path, "front matter is not closed by a '---' line")
    try:
        meta = yaml.safe_load("\n".join(lines[1:end]))
    except yaml.YAMLError as error:
        detail = " ".join(str(error).split())
        raise ContentError(path, f"front matter is not valid YAML: {detail}") from None
    if not isinstance(meta, dict):
        raise ContentError(path, "front matter must be a mapping of fields (key: value)")
    return meta, "\n".join(lines[end + 1 :]), end + 2


def _sources(path: Path, value: Any) -> tuple[Source, ...]:
    """Validate the list of legal sources."""
    if not isinstance(value, list):
        raise ContentError(path, "sources must be a list of {title, url?}")
    result = []
    for number, item in enumerate(value, start=1):
        where = f"sources #{number}"
        if not isinstance(item, dict):
            raise ContentError(path, f"{where} must be a mapping with title and optional url")
        _check_fields(path, where, item, ("title",), ("url",))
        title = _plain(path, f"{where} title", item["title"], 200)
        url = item.get("url")
        if url is not None and (not isinstance(url, str) or not url.startswith("https://")):
            raise ContentError(path, f"{where}: url {url!r} must start with https://")
        result.append(Source(title=title, url=url))
    return tuple(result)


def _tags(path: Path, value: Any) -> tuple[str, ...]:
    """Validate the tag list."""
    if not isinstance(value, list) or not value:
        raise ContentError(path, "tags must be a non-empty list of short ids")
    return tuple(_check_id(path, "tags", tag) for tag in value)


def _parse_topic(path: Path) -> Topic:
    """Read and validate one topic file."""
    try:
        raw = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        raise ContentError(path, f"cannot read: {error}") from None
    meta, body, body_line = _split_front_matter(path, raw)
    _check_fields(path, "front matter", meta, _TOPIC_REQUIRED, _TOPIC_OPTIONAL)
    topic_id = _check_id(path, "front matter", meta["id"])
    if topic_id != path.stem:
        raise ContentError(path, f"id {topic_id!r} differs from the file name {path.stem!r}")
    parts = _SEPARATOR_LINE.split(body)
    if len(parts) > 2:
        raise ContentError(path, f"more than one {EN_SEPARATOR} line")
    body_vi = _check_text(path, "body", parts[0], TOPIC_BODY_LIMIT, body_line)
    body_en = None
    if len(parts) == 2:
        en_line = body_line + parts[0].count("\n")
        body_en = _check_text(path, "English body", parts[1], TOPIC_BODY_LIMIT, en_line)
    title_en = _optional_plain(path, "title_en", meta.get("title_en"), TITLE_LIMIT)
    summary_en = _optional_plain(path, "summary_en", meta.get("summary_en"), SUMMARY_LIMIT)
    if body_en and not (title_en and summary_en):
        raise ContentError(path, "an English body needs title_en and summary_en")
    topic = Topic(
        id=topic_id,
        title_vi=_plain(path, "title", meta["title"], TITLE_LIMIT),
        summary_vi=_plain(path, "summary", meta["summary"], SUMMARY_LIMIT),
        body_vi=body_vi,
        tags=_tags(path, meta["tags"]),
        sources=_sources(path, meta["sources"]),
        title_en=title_en,
        summary_en=summary_en,
        body_en=body_en,
    )
    for locale in LOCALES:
        _check_message(path, f"rendered topic ({locale})", render_topic(topic, locale))
    return topic


def _check_message(path: Path, where: str, message: str) -> None:
    """Check a rendered message fits one Telegram message."""
    try:
        length = telegram_length(message)
    except HtmlError as error:
        raise ContentError(path, f"{where}: {error}") from None
    if length > MESSAGE_LIMIT:
        raise ContentError(path, f"{where} is {length} characters; Telegram allows {MESSAGE_LIMIT}")


def load_topics(directory: Path | str | None = None) -> dict[str, Topic]:
    """Load and validate every topic file (*.md) of a directory, ordered by id."""
    folder = Path(directory) if directory is not None else TOPICS_DIR
    files = sorted(folder.glob("*.md"))
    if not files:
        raise ContentError(folder, "no topic files (*.md)")
    result: dict[str, Topic] = {}
    for path in files:
        topic = _parse_topic(path)
        if topic.id in result:
            raise ContentError(path, f"duplicate topic id {topic.id!r}")
        result[topic.id] = topic
    return result


def _parse_pledge(path: Path, number: int, item: Any, topic_ids: Collection[str]) -> Pledge:
    """Validate one pledge entry of the pledges file."""
    where = f"pledge #{number}"
    if not isinstance(item, dict):
        raise ContentError(path, f"{where} must be a mapping")
    if isinstance(item.get("id"), str):
        where = f"pledge #{number} ({item['id']})"
    _check_fields(path, where, item, _PLEDGE_REQUIRED, _PLEDGE_OPTIONAL)
    topic = item["topic"]
    if topic not in topic_ids:
        raise ContentError(path, f"{where}: unknown topic {topic!r}")
    text_en = item.get("text_en")
    pledge = Pledge(
        id=_check_id(path, where, item["id"]),
        title_vi=_plain(path, f"{where} title", item["title"], TITLE_LIMIT),
        title_en=_plain(path, f"{where} title_en", item["title_en"], TITLE_LIMIT),
        text_vi=_check_str_text(path, f"{where} text", item["text"]),
        topic=topic,
        text_en=None if text_en is None else _check_str_text(path, f"{where} text_en", text_en),
    )
    for locale in LOCALES:
        _check_message(path, f"{where} rendered ({locale})", render_pledge(pledge, locale))
    return pledge


def _check_str_text(path: Path, where: str, value: Any) -> str:
    """Validate a pledge text field."""
    if not isinstance(value, str):
        raise ContentError(path, f"{where} must be a string")
    return _check_text(path, where, value, PLEDGE_TEXT_LIMIT)


def load_pledges(
    path: Path | str | None = None, *, topic_ids: Collection[str] | None = None
) -> dict[str, Pledge]:
    """Load and validate the pledge templates; each must name a known topic (default: topics())."""
    file = Path(path) if path is not None else PLEDGES_PATH
    known = topic_ids if topic_ids is not None else topics().keys()
    try:
        raw = yaml.safe_load(file.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as error:
        raise ContentError(file, f"cannot read: {error}") from None
    except yaml.YAMLError as error:
        raise ContentError(file, f"not valid YAML: {' '.join(str(error).split())}") from None
    if not isinstance(raw, list) or not raw:
        raise ContentError(file, "must be a non-empty list of pledges")
    result: dict[str, Pledge] = {}
    for number, item in enumerate(raw, start=1):
        pledge = _parse_pledge(file, number, item, known)
        if pledge.id in result:
            raise ContentError(file, f"pledge #{number}: duplicate id {pledge.id!r}")
        result[pledge.id] = pledge
    return result


@cache
def topics() -> Mapping[str, Topic]:
    """The shipped topics, loaded and validated once (read-only)."""
    return MappingProxyType(load_topics())


@cache
def pledges() -> Mapping[str, Pledge]:
    """The shipped pledge templates, loaded and validated once (read-only)."""
    return MappingProxyType(load_pledges())


def _escape(text: str) -> str:
    """Escape plain text for Telegram HTML."""
    return html.escape(text, quote=False)


def _render_source(source: Source) -> str:
    """One source, as a link when it has a URL."""
    if source.url:
        return f'<a href="{html.escape(source.url)}">{_escape(source.title)}</a>'
    return _escape(source.title)


def render_topic(topic: Topic, locale: str) -> str:
    """The message for a topic: bold title, body and a sources line, in one language."""
    language = topic.render_locale(locale)
    parts = [f"<b>{_escape(topic.title(language))}</b>", topic.body(language)]
    if topic.sources:
        listed = "; ".join(_render_source(source) for source in topic.sources)
        parts.append(f"<i>{SOURCES_LABEL[language]}</i> {listed}")
    return "\n\n".join(parts)


def render_pledge(pledge: Pledge, locale: str) -> str:
    """The message for a pledge: bold title and the pledge text, in one language."""
    language = pledge.render_locale(locale)
    return f"<b>{_escape(pledge.title(language))}</b>\n\n{pledge.text(language)}"
