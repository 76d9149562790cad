"""`tinbao poster`: real PDF and PNG files, their QR codes decoded back, Vietnamese glyphs."""

from __future__ import annotations

import asyncio
import io
from datetime import UTC, datetime
from pathlib import Path

import pytest
import zxingcpp
from fontTools.ttLib import TTFont
from PIL import Image, ImageDraw, ImageFont
from pydantic import ValidationError
from typer.testing import CliRunner

from bot.i18n import translator
from bot.services.poster import (
    PAGE_SIZE,
    NoLinksError,
    PosterLinks,
    commune_poster_spec,
    draw_poster,
    font_path,
    session_poster_spec,
)
from storage.db import Database
from storage.models import OutreachSession
from tinbao.cli import app
from tinbao.settings import Settings

runner = CliRunner()
SECRET = "secret-p-long-enough-for-tests-0123456789-posterpost"
KHA_CUU = 8635
USERNAME = "tinbao_khacuu_bot"
OA_LINK = "https://zalo.me/2345678901234567890"
BOT_LINK = "https://zalo.me/s/bot/khacuu"
LINK_ENV = ("TINBAO_TELEGRAM_BOT_USERNAME", "TINBAO_ZALO_OA_LINK", "TINBAO_ZALO_BOT_LINK")
ALL_LINKS = [
    "--telegram-username",
    USERNAME,
    "--zalo-oa-link",
    OA_LINK,
    "--zalo-bot-link",
    BOT_LINK,
]
DIACRITICS = "Xã Khả Cửu, Phường Đông Ngàn"


@pytest.fixture
def cli_env(database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The seeded test database (communes loaded) behind the CLI's settings; no links set."""
    monkeypatch.chdir(tmp_path)  # no .env from the working copy
    monkeypatch.setenv("TINBAO_DATABASE_URL", database_url)
    monkeypatch.setenv("TINBAO_SECRET_KEY", SECRET)
    monkeypatch.setenv("TINBAO_DATA_DIR", str(tmp_path / "data"))
    for name in LINK_ENV:
        monkeypatch.delenv(name, raising=False)
    return tmp_path


def _decoded(image: Image.Image) -> set[str]:
    """The texts of every QR code found on a page image."""
    found = zxingcpp.read_barcodes(image)
    assert all(code.format == zxingcpp.BarcodeFormat.QRCode for code in found)
    return {code.text for code in found}


def _pdf_page(path: Path) -> Image.Image:
    """The page image inside a Pillow-written PDF (one JPEG stream)."""
    data = path.read_bytes()
    start, end = data.index(b"\xff\xd8\xff"), data.rindex(b"\xff\xd9") + 2
    return Image.open(io.BytesIO(data[start:end]))


def test_png_poster_carries_every_link(cli_env: Path) -> None:
    out = cli_env / "poster.png"
    args = ["poster", "--commune", str(KHA_CUU), "--out", str(out), *ALL_LINKS]
    result = runner.invoke(app, [*args, "--phone", "0210 3812 345"])
    assert result.exit_code == 0, result.output
    assert "Xã Khả Cửu" in result.output
    with Image.open(out) as image:
        assert image.format == "PNG"
        assert image.size == PAGE_SIZE == (2480, 3508)
        assert round(image.info["dpi"][0]) == 300
        assert _decoded(image) == {f"https://t.me/{USERNAME}?start=c8635", OA_LINK, BOT_LINK}


def test_pdf_poster_takes_links_from_settings(
    cli_env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TINBAO_TELEGRAM_BOT_USERNAME", USERNAME)
    monkeypatch.setenv("TINBAO_ZALO_OA_LINK", OA_LINK)
    out = cli_env / "poster.pdf"
    result = runner.invoke(app, ["poster", "--commune", str(KHA_CUU), "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert out.read_bytes().startswith(b"%PDF-")
    page = _pdf_page(out)
    assert page.size == PAGE_SIZE
    assert _decoded(page) == {f"https://t.me/{USERNAME}?start=c8635", OA_LINK}


def test_an_option_overrides_the_setting(cli_env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TINBAO_TELEGRAM_BOT_USERNAME", "someone_else_bot")
    out = cli_env / "poster.png"
    args = ["poster", "--commune", str(KHA_CUU), "--out", str(out)]
    result = runner.invoke(app, [*args, "--telegram-username", "@" + USERNAME])
    assert result.exit_code == 0, result.output
    with Image.open(out) as image:
        assert _decoded(image) == {f"https://t.me/{USERNAME}?start=c8635"}


def test_no_link_configured_is_refused(cli_env: Path) -> None:
    out = cli_env / "poster.pdf"
    result = runner.invoke(app, ["poster", "--commune", str(KHA_CUU), "--out", str(out)])
    assert result.exit_code == 2
    assert "no messenger link" in result.output
    assert not out.exists()


def test_unknown_commune_is_refused(cli_env: Path) -> None:
    out = cli_env / "poster.pdf"
    result = runner.invoke(app, ["poster", "--commune", "999999", "--out", str(out), *ALL_LINKS])
    assert result.exit_code == 2
    assert "no commune with code 999999" in result.output
    assert not out.exists()


@pytest.mark.parametrize("name", ["poster.txt", "poster"])
def test_other_formats_are_refused(cli_env: Path, name: str) -> None:
    out = cli_env / name
    result = runner.invoke(app, ["poster", "--commune", str(KHA_CUU), "--out", str(out)])
    assert result.exit_code == 2
    assert ".pdf or .png" in result.output
    assert not out.exists()


@pytest.mark.parametrize(
    "option",
    [
        ["--telegram-username", "abc"],
        ["--telegram-username", "has-dash-bot"],
        ["--zalo-oa-link", "zalo.me/123"],
        ["--zalo-bot-link", "ftp://zalo.me/123"],
    ],
)
def test_bad_link_options_are_refused(cli_env: Path, option: list[str]) -> None:
    out = cli_env / "poster.pdf"
    result = runner.invoke(app, ["poster", "--commune", str(KHA_CUU), "--out", str(out), *option])
    assert result.exit_code == 2
    assert not out.exists()


@pytest.mark.parametrize(
    "field",
    [
        {"telegram_bot_username": "abcd"},
        {"telegram_bot_username": "@tinbao_bot"},
        {"telegram_bot_username": "a" * 33},
        {"zalo_oa_link": "zalo.me/123"},
        {"zalo_bot_link": "https://"},
        {"zalo_bot_link": "https://zalo.me/a b"},
    ],
)
def test_settings_refuse_bad_poster_links(
    field: dict[str, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ValidationError):
        Settings(secret_key=SECRET, **field)  # type: ignore[arg-type]


def test_settings_take_good_poster_links(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    settings = Settings(
        secret_key=SECRET,  # type: ignore[arg-type]
        telegram_bot_username=USERNAME,
        zalo_oa_link=OA_LINK,
        zalo_bot_link=BOT_LINK,
    )
    assert (settings.telegram_bot_username, settings.zalo_bot_link) == (USERNAME, BOT_LINK)


def _glyph(font: ImageFont.FreeTypeFont, ch: str) -> bytes:
    """The pixels of one character drawn alone (a missing glyph draws the .notdef box)."""
    image = Image.new("L", (160, 160))
    ImageDraw.Draw(image).text((40, 20), ch, font=font, fill=255)
    return image.tobytes()


@pytest.mark.parametrize("bold", [False, True])
def test_font_has_every_vietnamese_letter(bold: bool) -> None:
    path = font_path(bold)
    cmap = TTFont(path).getBestCmap()
    letters = DIACRITICS + "ẮẰẲẴẶắằẳẵặẤẦẨẪẬấầẩẫậỐỒỔỖỘốồổỗộỚỜỞỠỢớờởỡợỨỪỬỮỰứừửữựỹỷỵĐđ"
    assert [ch for ch in letters if ord(ch) not in cmap] == []
    font = ImageFont.truetype(str(path), 80)
    notdef = _glyph(font, "\uffff")
    missing = [ch for ch in letters if not ch.isspace() and _glyph(font, ch) == notdef]
    assert missing == []
    assert font.getlength("ả") != font.getlength("\uffff")


def test_poster_renders_vietnamese_names() -> None:
    links = PosterLinks(telegram_username=USERNAME)
    spec = commune_poster_spec(DIACRITICS, "Phú Thọ", KHA_CUU, links, translator("vi"), {})
    image = draw_poster(spec)
    assert image.size == PAGE_SIZE
    assert _decoded(image) == {f"https://t.me/{USERNAME}?start=c8635"}


def test_commune_spec_lines() -> None:
    links = PosterLinks(USERNAME, OA_LINK, BOT_LINK)
    from bot.content.catalog import hotlines

    spec = commune_poster_spec(
        "Xã Khả Cửu", "Phú Thọ", KHA_CUU, links, translator("vi"), hotlines(), "0210 3812 345"
    )
    assert spec.title_lines[-1] == "Xã Khả Cửu"
    assert spec.subtitle == "Phú Thọ"
    assert [t.url for t in spec.targets] == [
        OA_LINK,
        BOT_LINK,
        f"https://t.me/{USERNAME}?start=c8635",
    ]
    assert all(t.hint.endswith("báo tin 8635") for t in spec.targets[:2])
    assert any("0210 3812 345" in line for line in spec.hotline_lines)
    assert [line.split(" ")[0] for line in spec.hotline_lines[1:]] == [
        "113",
        "114",
        "115",
        "111",
        "112",
    ]
    assert "Công an (cảnh sát phản ứng nhanh)" in spec.hotline_lines[1]


def test_session_spec_links_and_hint() -> None:
    links = PosterLinks(USERNAME, OA_LINK)
    spec = session_poster_spec(
        "Phòng, chống lừa đảo qua mạng",
        "Nhà văn hoá thôn Đồng Lạng",
        "19:30 05/06/2026",
        "Xã Khả Cửu",
        42,
        links,
        translator("vi"),
    )
    by_label = {t.label: t for t in spec.targets}
    assert by_label["Telegram"].url == f"https://t.me/{USERNAME}?start=s42"
    assert by_label["Zalo OA"].url == OA_LINK
    assert by_label["Zalo OA"].hint.endswith("tham dự 42")
    assert "Phòng, chống lừa đảo qua mạng" in spec.title_lines
    assert any("Nhà văn hoá thôn Đồng Lạng" in note for note in spec.notes)
    assert any("19:30 05/06/2026" in note for note in spec.notes)
    assert _decoded(draw_poster(spec)) == {f"https://t.me/{USERNAME}?start=s42", OA_LINK}


def test_session_spec_without_links_is_an_error() -> None:
    with pytest.raises(NoLinksError):
        session_poster_spec(
            "Chủ đề", "Nơi", "19:30", "Xã Khả Cửu", 1, PosterLinks(), translator("vi")
        )


def test_missing_directory_is_refused(cli_env: Path) -> None:
    out = cli_env / "missing" / "poster.pdf"
    result = runner.invoke(
        app, ["poster", "--commune", str(KHA_CUU), "--out", str(out), *ALL_LINKS]
    )
    assert result.exit_code == 2
    assert "Invalid value for --out" in result.output  # the path itself wraps in the box


def _add_session(database_url: str, *, cancelled: bool = False) -> int:
    """An outreach session in Khả Cửu written straight to the database; its id."""

    async def write() -> int:
        db = Database(database_url)
        async with db.session() as session:
            outreach = OutreachSession(
                commune_code=KHA_CUU,
                place="Nhà văn hóa thôn Đông",
                title="Phòng, chống ma túy",
                organiser="Công an xã Khả Cửu",
                starts_at=datetime(2026, 6, 5, 12, 30, tzinfo=UTC),  # 19:30 local
                ends_at=datetime(2026, 6, 5, 14, 30, tzinfo=UTC),
                cancelled_at=datetime(2026, 6, 1, tzinfo=UTC) if cancelled else None,
            )
            session.add(outreach)
            await session.commit()
            assert outreach.id is not None
            identifier = outreach.id
        await db.dispose()
        return identifier

    return asyncio.run(write())


def test_session_poster_from_the_database(cli_env: Path, database_url: str) -> None:
    session_id = _add_session(database_url)
    out = cli_env / "session.png"
    args = ["poster", "--session", str(session_id), "--out", str(out), *ALL_LINKS]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    assert f"session #{session_id}" in result.output
    with Image.open(out) as image:
        expected = {f"https://t.me/{USERNAME}?start=s{session_id}", OA_LINK, BOT_LINK}
        assert _decoded(image) == expected


@pytest.mark.parametrize("how", ["cancelled", "unknown", "both"])
def test_session_poster_refusals(cli_env: Path, database_url: str, how: str) -> None:
    session_id = _add_session(database_url, cancelled=how == "cancelled")
    wanted = ["--session", str(session_id if how != "unknown" else 999_999)]
    if how == "both":
        wanted += ["--commune", str(KHA_CUU)]
    out = cli_env / "session.pdf"
    result = runner.invoke(app, ["poster", *wanted, "--out", str(out), *ALL_LINKS])
    assert result.exit_code == 2, result.output
    assert not out.exists()
