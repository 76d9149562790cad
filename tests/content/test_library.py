"""Outreach content: shipped topics and pledges fit Telegram; bad files are refused by name."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from bot.content.library import (
    MESSAGE_LIMIT,
    PLEDGE_TEXT_LIMIT,
    TOPIC_BODY_LIMIT,
    ContentError,
    HtmlError,
    Pledge,
    Topic,
    load_pledges,
    load_topics,
    pledges,
    render_pledge,
    render_topic,
    telegram_length,
    topics,
    validate_html,
)

REQUIRED_TOPICS = {
    "ma_tuy",
    "lua_dao_qua_mang",
    "pccc_ho_gia_dinh",
    "an_toan_giao_thong",
    "xam_hai_tre_em",
    "giao_nop_vu_khi",
    "tin_dung_den",
    "cu_tru_dinh_danh",
    "bao_luc_gia_dinh",
    "an_ninh_mang",
}
REQUIRED_PLEDGES = {"khong_ma_tuy", "an_toan_pccc", "chap_hanh_giao_thong", "khong_vu_khi"}
LOCALES = ("vi", "en")
HOTLINES = ("113", "114", "115", "111")

VALID_TOPIC = """\
---
id: {id}
title: Chủ đề mẫu
title_en: Sample topic
tags: [mau]
summary: Một câu tóm tắt.
summary_en: A one-sentence summary.
sources:
  - title: Luật Mẫu & Quy định (<2025>)
    url: https://example.org/luat
  - title: Bộ luật Hình sự 2015
---
Nội dung <b>mẫu</b> &amp; ví dụ.
• Gọi <b>113</b>; <a href="https://example.org">xem thêm</a>.
• <b>Gửi tin báo qua bot, ẩn danh</b>.

<!-- en -->
Sample <i>body</i>.
"""

VALID_PLEDGES = """\
- id: mau
  topic: mau
  title: Cam kết mẫu
  title_en: Sample pledge
  text: |
    Tôi cam kết:
    • Không vi phạm.
  text_en: |
    I pledge:
    • No violations.
"""


def _topic_dir(tmp_path: Path, text: str, stem: str = "mau") -> Path:
    """A topics directory holding one file."""
    folder = tmp_path / "topics"
    folder.mkdir(exist_ok=True)
    (folder / f"{stem}.md").write_text(text, encoding="utf-8")
    return folder


def _pledge_file(tmp_path: Path, text: str) -> Path:
    """A pledges file."""
    path = tmp_path / "pledges.yaml"
    path.write_text(text, encoding="utf-8")
    return path


# --- the shipped content -------------------------------------------------------------------


def test_at_least_ten_topics_with_the_required_ids() -> None:
    shipped = topics()
    assert len(shipped) >= 10
    assert set(shipped) >= REQUIRED_TOPICS


def test_required_pledges_exist_and_name_known_topics() -> None:
    shipped = pledges()
    assert set(shipped) >= REQUIRED_PLEDGES
    for pledge in shipped.values():
        assert pledge.topic in topics()


def test_at_least_three_topics_have_an_english_body() -> None:
    assert sum(1 for topic in topics().values() if topic.body_en) >= 3


@pytest.mark.parametrize("locale", LOCALES)
@pytest.mark.parametrize("topic_id", sorted(topics()))
def test_topic_renders_within_telegram_limits(topic_id: str, locale: str) -> None:
    topic = topics()[topic_id]
    message = render_topic(topic, locale)
    validate_html(message)
    assert telegram_length(message) <= MESSAGE_LIMIT
    assert telegram_length(topic.body(locale)) <= TOPIC_BODY_LIMIT
    assert message.startswith(f"<b>{topic.title(topic.render_locale(locale))}")


@pytest.mark.parametrize("topic_id", sorted(topics()))
def test_topic_ends_with_whom_to_call_and_the_bot(topic_id: str) -> None:
    topic = topics()[topic_id]
    assert len(topic.summary_vi) <= 200
    for body in filter(None, (topic.body_vi, topic.body_en)):
        tail = validate_html(body)[-900:]
        assert any(number in tail for number in HOTLINES), "no hotline near the end"
    vi_tail = validate_html(topic.body_vi)[-900:]
    assert "gửi tin báo qua bot, ẩn danh" in vi_tail.lower()


@pytest.mark.parametrize("locale", LOCALES)
@pytest.mark.parametrize("pledge_id", sorted(pledges()))
def test_pledge_renders_within_telegram_limits(pledge_id: str, locale: str) -> None:
    pledge = pledges()[pledge_id]
    message = render_pledge(pledge, locale)
    validate_html(message)
    assert telegram_length(message) <= MESSAGE_LIMIT
    assert telegram_length(pledge.text(locale)) <= PLEDGE_TEXT_LIMIT
    assert "cam kết" in pledge.text_vi.lower()


def test_cached_accessors_load_once_and_are_read_only() -> None:
    assert topics() is topics()
    assert pledges() is pledges()
    with pytest.raises(TypeError):
        topics()["x"] = topics()["ma_tuy"]  # type: ignore[index]


# --- loading, fallbacks and rendering ------------------------------------------------------


def test_valid_file_loads_and_renders_sources_escaped(tmp_path: Path) -> None:
    loaded = load_topics(_topic_dir(tmp_path, VALID_TOPIC.format(id="mau")))
    topic = loaded["mau"]
    assert isinstance(topic, Topic)
    assert topic.tags == ("mau",)
    message = render_topic(topic, "vi")
    assert message.startswith("<b>Chủ đề mẫu</b>\n\nNội dung")
    assert message.endswith(
        '<i>Nguồn:</i> <a href="https://example.org/luat">'
        "Luật Mẫu &amp; Quy định (&lt;2025&gt;)</a>; Bộ luật Hình sự 2015"
    )
    english = render_topic(topic, "en_US")
    assert english.startswith("<b>Sample topic</b>\n\nSample <i>body</i>.")
    assert "<i>Sources:</i>" in english
    assert topic.summary("en") == "A one-sentence summary."


def test_missing_english_falls_back_to_vietnamese(tmp_path: Path) -> None:
    text = VALID_TOPIC.format(id="mau").split("<!-- en -->")[0]
    for line in ("title_en: Sample topic\n", "summary_en: A one-sentence summary.\n"):
        text = text.replace(line, "")
    topic = load_topics(_topic_dir(tmp_path, text))["mau"]
    assert topic.body_en is None
    assert topic.title("en") == topic.title_vi
    assert topic.body("en") == topic.body_vi
    assert render_topic(topic, "en") == render_topic(topic, "vi")
    assert render_topic(topic, "fr") == render_topic(topic, "vi")


def test_pledges_load_and_render(tmp_path: Path) -> None:
    loaded = load_pledges(_pledge_file(tmp_path, VALID_PLEDGES), topic_ids={"mau"})
    pledge = loaded["mau"]
    assert isinstance(pledge, Pledge)
    assert render_pledge(pledge, "vi") == "<b>Cam kết mẫu</b>\n\nTôi cam kết:\n• Không vi phạm."
    assert render_pledge(pledge, "en").startswith("<b>Sample pledge</b>\n\nI pledge:")


def test_length_counts_visible_text_in_utf16_units() -> None:
    assert telegram_length("<b>a</b> &amp; <i>b</i>") == len("a & b")
    assert telegram_length("&#128512;") == 2  # one emoji outside the BMP is two UTF-16 units
    assert telegram_length('<a href="https://example.org/very/long/path">x</a>') == 1


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("<b>open", "never closed"),
        ("<b><i>x</b></i>", "still open"),
        ("x</b>", "closes nothing"),
        ("<p>x</p>", "not allowed"),
        ("a<br/>b", "self-closing"),
        ('<a href="http://example.org">x</a>', "https://"),
        ('<a href="javascript:alert(1)">x</a>', "https://"),
        ('<b class="x">x</b>', "attribute"),
        ('<span class="red">x</span>', "tg-spoiler"),
        ("1 < 2", "bare '<'"),
        ("Tom & Jerry", "bare '&'"),
        ("&nbsp;", "bare '&'"),
        ("<!-- note -->", "comments"),
        ("<code><b>x</b></code>", "inside <code>"),
    ],
)
def test_invalid_html_is_refused(text: str, problem: str) -> None:
    with pytest.raises(HtmlError, match=problem):
        validate_html(text)


def test_valid_html_passes() -> None:
    text = (
        "<b>b</b><strong>s</strong><i>i</i><em>e</em><u>u</u><ins>n</ins><s>s</s><strike>k</strike>"
        '<del>d</del><a href="tg://user?id=1">t</a><code>c</code>'
        '<pre><code class="language-python">p</code></pre><blockquote expandable>q</blockquote>'
        '<tg-spoiler>x</tg-spoiler><span class="tg-spoiler">y</span> &lt;&gt;&quot;&#39;'
    )
    assert validate_html(text).endswith("<>\"'")


# --- bad files are refused, naming the file ------------------------------------------------


def _replace(old: str, new: str) -> Callable[[str], str]:
    """A mutation of the valid topic text."""
    return lambda text: text.replace(old, new, 1)


BAD_TOPICS: dict[str, tuple[Callable[[str], str], str]] = {
    "unclosed tag": (_replace("<b>mẫu</b>", "<b>mẫu"), "never closed"),
    "unknown tag": (_replace("<b>mẫu</b>", "<div>mẫu</div>"), "not allowed"),
    "http link": (_replace('href="https://example.org"', 'href="http://example.org"'), "https://"),
    "http source": (
        _replace("url: https://example.org/luat", "url: http://example.org/luat"),
        "https://",
    ),
    "too long": (_replace("Nội dung", "Nội dung " + "rất dài " * 500), "limit 3500"),
    "long english": (_replace("Sample <i>body</i>.", "Long. " * 700), "English body"),
    "no front matter": (lambda text: text.split("---\n", 2)[2], "front matter missing"),
    "unclosed front matter": (lambda text: text.replace("---\nNội", "Nội"), "not closed"),
    "broken yaml": (_replace("tags: [mau]", "tags: [mau"), "not valid YAML"),
    "not a mapping": (lambda text: "---\n- a\n- b\n---\nx\n", "mapping"),
    "missing field": (_replace("summary: Một câu tóm tắt.\n", ""), "missing field"),
    "unknown field": (_replace("tags: [mau]", "tags: [mau]\ntitel: x"), "unknown field"),
    "bad tag id": (_replace("tags: [mau]", "tags: [Ma Tuy]"), "must match"),
    "summary too long": (_replace("Một câu tóm tắt.", "dài " * 60), "limit 200"),
    "html in title": (_replace("title: Chủ đề mẫu", "title: <b>Chủ đề</b>"), "plain text"),
    "markdown": (_replace("Nội dung <b>mẫu</b>", "Nội dung **mẫu**"), "Markdown"),
    "markdown list": (_replace("• Gọi", "- Gọi"), "Markdown list"),
    "bare ampersand": (_replace("&amp; ví dụ", "& ví dụ"), "bare '&'"),
    "two separators": (lambda text: text + "<!-- en -->\nAgain.\n", "more than one"),
    "empty body": (lambda text: text.split("Nội dung")[0], "body is empty"),
    "english without title_en": (_replace("title_en: Sample topic\n", ""), "title_en"),
}


@pytest.mark.parametrize("case", sorted(BAD_TOPICS))
def test_bad_topic_file_is_refused_naming_the_file(tmp_path: Path, case: str) -> None:
    mutate, problem = BAD_TOPICS[case]
    folder = _topic_dir(tmp_path, mutate(VALID_TOPIC.format(id="mau")))
    with pytest.raises(ContentError, match=problem) as caught:
        load_topics(folder)
    assert "mau.md" in str(caught.value)
    assert caught.value.path == folder / "mau.md"


def test_id_differing_from_file_name_is_refused(tmp_path: Path) -> None:
    folder = _topic_dir(tmp_path, VALID_TOPIC.format(id="khac"), stem="mau")
    with pytest.raises(ContentError, match="differs from the file name") as caught:
        load_topics(folder)
    assert "mau.md" in str(caught.value)


@pytest.mark.parametrize(
    ("old", "new", "line"),
    [
        ("<b>113</b>", "<b>113", 14),  # never closed: reported where it was opened
        ("• Gọi", "• <p>Gọi", 14),
        ("Sample <i>body</i>.", "Sample <i>body.", 18),
        ("Sample <i>body</i>.", "Sample <x>body</x>.", 18),
    ],
)
def test_error_names_the_line_in_the_file(tmp_path: Path, old: str, new: str, line: int) -> None:
    folder = _topic_dir(tmp_path, VALID_TOPIC.format(id="mau").replace(old, new))
    with pytest.raises(ContentError) as caught:
        load_topics(folder)
    assert str(caught.value).startswith(str(folder / "mau.md"))
    assert f"line {line}:" in str(caught.value)


def test_empty_directory_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ContentError, match="no topic files"):
        load_topics(tmp_path)


BAD_PLEDGES: dict[str, tuple[Callable[[str], str], str]] = {
    "unknown topic": (_replace("topic: mau", "topic: khong_co"), "unknown topic"),
    "too long": (_replace("• Không vi phạm.", "• " + "Không vi phạm. " * 120), "limit 1500"),
    "unclosed tag": (_replace("• Không vi phạm.", "• <b>Không vi phạm."), "never closed"),
    "http link": (
        _replace("• Không vi phạm.", '• <a href="http://example.org">x</a>'),
        "https://",
    ),
    "duplicate id": (lambda text: text + text, "duplicate id"),
    "missing title_en": (_replace("  title_en: Sample pledge\n", ""), "missing field"),
    "bad id": (_replace("id: mau", "id: Mau-1"), "must match"),
    "not a list": (lambda text: "id: mau\n", "non-empty list"),
    "broken yaml": (_replace("title: Cam kết mẫu", "title: [Cam kết"), "not valid YAML"),
}


@pytest.mark.parametrize("case", sorted(BAD_PLEDGES))
def test_bad_pledges_file_is_refused_naming_the_file(tmp_path: Path, case: str) -> None:
    mutate, problem = BAD_PLEDGES[case]
    path = _pledge_file(tmp_path, mutate(VALID_PLEDGES))
    with pytest.raises(ContentError, match=problem) as caught:
        load_pledges(path, topic_ids={"mau"})
    assert "pledges.yaml" in str(caught.value)
