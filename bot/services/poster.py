"""Printable A4 posters with QR codes: a commune's tip line, or an outreach session's check-in.

The printed "biển thông báo": a citizen scans a code with the phone's camera and lands in the
bot with the commune (or the session) already chosen. Zalo links carry no payload, so under a
Zalo code the poster says what to type instead. Channel-free: links are plain URLs.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import cache
from io import BytesIO
from pathlib import Path
from typing import Literal

import segno
from PIL import Image, ImageDraw, ImageFont

from bot.content.catalog import Hotline
from bot.i18n import Translator, _

PosterFormat = Literal["png", "pdf"]
FORMATS: dict[str, PosterFormat] = {".png": "png", ".pdf": "pdf"}

DPI = 300
PAGE_SIZE = (2480, 3508)  # A4 (210 x 297 mm) at 300 dpi
MARGIN = 180  # 15 mm: inside what office printers leave blank
CONTENT_WIDTH = PAGE_SIZE[0] - 2 * MARGIN
QUIET_ZONE = 4  # modules of white around a QR code, as the standard asks
MIN_MODULE_PX = 6  # 0.5 mm per module at 300 dpi: below this cheap printers smear the code
LINE_SPACING = 1.22

RED = (183, 28, 28)
GOLD = (249, 168, 37)
INK = (28, 28, 28)
GREY = (85, 85, 85)
WHITE = (255, 255, 255)

# The words Zalo users type: matched by the keyword parser, so never translated.
TIP_KEYWORD = "báo tin"
CHECKIN_KEYWORD = "tham dự"
# Brand names, the same in every language.
ZALO_OA_LABEL = "Zalo OA"
ZALO_BOT_LABEL = "Zalo Bot"
TELEGRAM_LABEL = "Telegram"

TIP_LINE_TITLE = _("Tip line")
ANONYMOUS_NOTE = _(
    "You do not have to give your name. Every tip gets a code so you can follow it up."
)
SCAN_NOTE = _("Scan a code with your phone's camera or the Zalo app.")
SEND_KEYWORD = _("Send: {keyword}")
COMMUNE_PHONE = _("Police of {unit}: {phone}")  # "Công an xã Khả Cửu: ..."
PHONES_HEADING = _("Phone numbers to remember")
EMERGENCY_FOOTER = _(
    "In an emergency, call 113: a message does not replace a call. Calls to 111-115 are free."
)
SESSION_TITLE = _("Outreach session")
SESSION_PLACE = _("Place: {place}")
SESSION_TIME = _("Time: {time}")
CHECKIN_NOTE = _("Scan the code to check in.")
SESSION_FOOTER = _("After the session, the same channel takes tips about security and order.")


class NoLinksError(ValueError):
    """No messenger link is configured, so the poster would have no QR code."""


class PosterOverflowError(ValueError):
    """The poster's text leaves no room for readable QR codes."""


@dataclass(frozen=True)
class QrTarget:
    """One QR code: a label above it, the URL it encodes, and an extra line under it."""

    label: str
    url: str
    hint: str = ""


@dataclass(frozen=True)
class PosterLinks:
    """Where the codes lead: a Telegram bot username (no "@"), the Zalo OA and Zalo bot links."""

    telegram_username: str = ""
    zalo_oa_link: str = ""
    zalo_bot_link: str = ""


@dataclass(frozen=True)
class PosterSpec:
    """Everything printed on one poster, already translated, top to bottom."""

    title_lines: tuple[str, ...]
    subtitle: str
    targets: tuple[QrTarget, ...]
    notes: tuple[str, ...] = ()
    phones_heading: str = ""
    hotline_lines: tuple[str, ...] = ()
    footer: str = ""


def poster_format(path: Path) -> PosterFormat:
    """The output format a file name asks for (.pdf or .png); ValueError otherwise."""
    fmt = FORMATS.get(path.suffix.lower())
    if fmt is None:
        raise ValueError(f"{path.name}: a poster is written as .pdf or .png")
    return fmt


def telegram_link(username: str, payload: str) -> str:
    """A t.me deep link that opens the bot and sends /start with the payload."""
    return f"https://t.me/{username}?start={payload}"


def _targets(links: PosterLinks, payload: str, zalo_hint: str) -> tuple[QrTarget, ...]:
    """One code per configured channel, Zalo first: it is what people in Vietnam use."""
    targets = []
    if links.zalo_oa_link:
        targets.append(QrTarget(ZALO_OA_LABEL, links.zalo_oa_link, zalo_hint))
    if links.zalo_bot_link:
        targets.append(QrTarget(ZALO_BOT_LABEL, links.zalo_bot_link, zalo_hint))
    if links.telegram_username:
        url = telegram_link(links.telegram_username, payload)
        targets.append(QrTarget(TELEGRAM_LABEL, url, "@" + links.telegram_username))
    if not targets:
        raise NoLinksError(
            "no messenger link to print: give a Telegram bot username, a Zalo OA link "
            "or a Zalo Bot link"
        )
    return tuple(targets)


def commune_poster_spec(
    commune_name: str,
    province_name: str,
    commune_code: int,
    links: PosterLinks,
    translator: Translator,
    hotlines: Mapping[int, Hotline],
    phone: str | None = None,
) -> PosterSpec:
    """The tip-line poster of one commune: codes that open the bot on that commune."""
    g = translator.gettext
    hint = g(SEND_KEYWORD).format(keyword=f"{TIP_KEYWORD} {commune_code}")
    unit = commune_name[:1].lower() + commune_name[1:]  # "Xã Khả Cửu" reads "xã Khả Cửu" here
    lines = [g(COMMUNE_PHONE).format(unit=unit, phone=phone)] if phone else []
    lines += [f"{number} – {line.name(translator.locale)}" for number, line in hotlines.items()]
    return PosterSpec(
        title_lines=(g(TIP_LINE_TITLE), commune_name),
        subtitle=province_name,
        targets=_targets(links, f"c{commune_code}", hint),
        notes=(g(ANONYMOUS_NOTE), g(SCAN_NOTE)),
        phones_heading=g(PHONES_HEADING),
        hotline_lines=tuple(lines),
        footer=g(EMERGENCY_FOOTER),
    )


def session_poster_spec(
    topic: str,
    place: str,
    starts_at_local_text: str,
    commune_name: str,
    session_id: int,
    links: PosterLinks,
    translator: Translator,
) -> PosterSpec:
    """The check-in poster of an outreach session: codes that sign the scanner in."""
    g = translator.gettext
    hint = g(SEND_KEYWORD).format(keyword=f"{CHECKIN_KEYWORD} {session_id}")
    return PosterSpec(
        title_lines=(g(SESSION_TITLE), topic),
        subtitle=commune_name,
        targets=_targets(links, f"s{session_id}", hint),
        notes=(
            g(SESSION_PLACE).format(place=place),
            g(SESSION_TIME).format(time=starts_at_local_text),
            g(CHECKIN_NOTE),
        ),
        footer=g(SESSION_FOOTER),
    )


def font_path(bold: bool = False) -> Path:
    """DejaVu Sans as bundled with matplotlib: it covers every Vietnamese letter."""
    import matplotlib  # imported here: only posters need it, and it is slow to import

    name = "DejaVuSans-Bold.ttf" if bold else "DejaVuSans.ttf"
    return Path(matplotlib.get_data_path()) / "fonts" / "ttf" / name


@cache
def _font(bold: bool, size: int) -> ImageFont.FreeTypeFont:
    """A loaded font; cached because layout tries several sizes."""
    return ImageFont.truetype(str(font_path(bold)), size)


def _nfc(text: str) -> str:
    """Precomposed letters: Pillow's basic layout misplaces combining accents (NFD input)."""
    return unicodedata.normalize("NFC", text)


def _line_height(font: ImageFont.FreeTypeFont) -> int:
    """Distance between baselines of consecutive lines."""
    ascent, descent = font.getmetrics()
    return round((ascent + descent) * LINE_SPACING)


def wrap(text: str, font: ImageFont.FreeTypeFont, width: int) -> list[str]:
    """Break text into lines no wider than width (a word longer than that keeps its own line)."""
    lines: list[str] = []
    current = ""
    for word in _nfc(text).split():
        candidate = f"{current} {word}" if current else word
        if current and font.getlength(candidate) > width:
            lines.append(current)
            current = word
        else:
            current = candidate
    if current:
        lines.append(current)
    return lines


def _title_font(lines: Sequence[str], width: int) -> ImageFont.FreeTypeFont:
    """The largest bold size (150 down to 96 px) at which every title line fits on one line."""
    for size in range(150, 95, -6):
        font = _font(True, size)
        if all(font.getlength(_nfc(line)) <= width for line in lines):
            return font
    return _font(True, 96)  # still too long: wrap at this size


@dataclass
class _Page:
    """The image being drawn and its drawing context."""

    image: Image.Image
    draw: ImageDraw.ImageDraw

    def centered(
        self,
        text: str,
        y: int,
        font: ImageFont.FreeTypeFont,
        fill: tuple[int, int, int],
        *,
        width: int = CONTENT_WIDTH,
        center: int = PAGE_SIZE[0] // 2,
    ) -> int:
        """Draw wrapped, centered text from y down; return the y below it."""
        step = _line_height(font)
        for line in wrap(text, font, width):
            self.draw.text((center, y), line, font=font, fill=fill, anchor="ma")
            y += step
        return y

    def height_of(self, text: str, font: ImageFont.FreeTypeFont, width: int) -> int:
        """Height that centered() would use for text."""
        return len(wrap(text, font, width)) * _line_height(font)


def _draw_header(page: _Page, spec: PosterSpec) -> int:
    """Bands, title, subtitle and notes; return the y below them."""
    width, _height = PAGE_SIZE
    page.draw.rectangle((0, 0, width, 100), fill=RED)
    page.draw.rectangle((0, 100, width, 124), fill=GOLD)
    y = 250
    title = _title_font(spec.title_lines, CONTENT_WIDTH)
    for line in spec.title_lines:
        y = page.centered(line, y, title, RED)
    if spec.subtitle:
        y = page.centered(spec.subtitle, y + 10, _font(False, 84), INK)
    y += 40
    page.draw.line((MARGIN, y, width - MARGIN, y), fill=GOLD, width=8)
    y += 70
    for note in spec.notes:
        y = page.centered(note, y, _font(False, 60), INK) + 16
    return y


def _draw_footer(page: _Page, spec: PosterSpec) -> int:
    """Phone numbers and footer, laid out from the bottom up; return the y above them."""
    width, height = PAGE_SIZE
    page.draw.rectangle((0, height - 60, width, height), fill=RED)
    footer_font, heading_font, line_font = _font(False, 46), _font(True, 64), _font(False, 56)
    y = height - 60 - 80 - page.height_of(spec.footer, footer_font, CONTENT_WIDTH)
    top = y
    page.centered(spec.footer, y, footer_font, GREY)
    if spec.hotline_lines:
        block = _line_height(heading_font) + sum(
            page.height_of(line, line_font, CONTENT_WIDTH) for line in spec.hotline_lines
        )
        top = y - 60 - block
        y = page.centered(spec.phones_heading, top, heading_font, RED)
        for line in spec.hotline_lines:
            y = page.centered(line, y, line_font, INK)
    return top


def _qr_image(url: str, size: int) -> Image.Image:
    """The URL as a QR code no larger than size px, whole pixels per module."""
    # make_qr, not make: segno would pick a Micro QR for a short URL, which phones do not read.
    qr = segno.make_qr(url, error="m")
    modules, _rows = qr.symbol_size(scale=1, border=QUIET_ZONE)
    scale = size // modules
    if scale < MIN_MODULE_PX:
        raise PosterOverflowError("the text leaves no room for QR codes large enough to scan")
    buffer = BytesIO()
    qr.save(buffer, kind="png", scale=scale, border=QUIET_ZONE)
    buffer.seek(0)
    return Image.open(buffer).convert("RGB")


def _draw_codes(page: _Page, targets: Sequence[QrTarget], top: int, bottom: int) -> None:
    """Codes side by side between top and bottom, each with its label above and hint below."""
    gap = 80
    text_gap = 10
    cell = (CONTENT_WIDTH - gap * (len(targets) - 1)) // len(targets)
    label_font, hint_font = _font(True, 72), _font(True, 60)
    text_height = (
        text_gap
        + _line_height(label_font)
        + max(page.height_of(t.hint, hint_font, cell) for t in targets)
    )
    size = min(cell, 1100, bottom - top - text_height)
    top += max(0, (bottom - top - text_height - size) // 2)  # centre the row in the free space
    for index, target in enumerate(targets):
        center = MARGIN + index * (cell + gap) + cell // 2
        y = page.centered(target.label, top, label_font, INK, width=cell, center=center)
        code = _qr_image(target.url, size)
        # Codes of different lengths come out a few modules apart: centre each in its square,
        # so the hints below stay on one line.
        offset = (size - code.height) // 2
        page.image.paste(code, (center - code.width // 2, y + offset))
        page.centered(target.hint, y + size + text_gap, hint_font, RED, width=cell, center=center)


def draw_poster(spec: PosterSpec) -> Image.Image:
    """The poster as an A4 page image at 300 dpi."""
    image = Image.new("RGB", PAGE_SIZE, WHITE)
    page = _Page(image, ImageDraw.Draw(image))
    top = _draw_header(page, spec) + 40
    bottom = _draw_footer(page, spec) - 60
    _draw_codes(page, spec.targets, top, bottom)
    return image


def render_poster(spec: PosterSpec, path: Path, fmt: PosterFormat) -> None:
    """Write the poster to path as a PNG or a one-page PDF, both A4 at 300 dpi."""
    image = draw_poster(spec)
    if fmt == "png":
        image.save(path, "PNG", dpi=(DPI, DPI))
        return
    # Pillow stores the page as a JPEG: high quality and no chroma subsampling keep the QR
    # modules' edges and the red text sharp.
    image.save(path, "PDF", resolution=DPI, quality=95, subsampling=0)
