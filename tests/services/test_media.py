"""Metadata stripping of kept and re-sent files (design principle 4)."""

from __future__ import annotations

import struct
import sys
import zlib
from io import BytesIO
from pathlib import Path

import pytest
from PIL import Image, ImageCms, PngImagePlugin

from bot.services.media import (
    MAX_PIXELS,
    MediaRejected,
    SanitizedFile,
    has_gps_exif,
    sanitize,
)

# tests/services has no __init__.py, so pytest puts only this folder on sys.path while
# collecting; the repository root is needed to import the shared factory module.
_ROOT = str(Path(__file__).resolve().parents[2])
if _ROOT not in sys.path:
    sys.path.insert(0, _ROOT)

from tests.factories_media import (  # noqa: E402
    JPEG_COMMENT,
    XMP_WITH_GPS,
    gps_exif,
    gradient_image,
    make_test_jpeg_with_gps,
)

SRGB_ICC = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()

# --- helpers -----------------------------------------------------------------------------


def jpeg_markers(data: bytes) -> list[int]:
    """Return the marker bytes of a JPEG's header segments, up to the start of scan."""
    assert data[:2] == b"\xff\xd8", "not a JPEG"
    markers, offset = [], 2
    while offset < len(data):
        assert data[offset] == 0xFF
        marker = data[offset + 1]
        markers.append(marker)
        if marker == 0xDA:  # start of scan: entropy-coded data follows
            break
        (length,) = struct.unpack(">H", data[offset + 2 : offset + 4])
        offset += 2 + length
    return markers


def png_chunks(data: bytes) -> list[bytes]:
    """Return the chunk types of a PNG, in order."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    chunks, offset = [], 8
    while offset < len(data):
        (length,) = struct.unpack(">I", data[offset : offset + 4])
        chunks.append(data[offset + 4 : offset + 8])
        offset += 12 + length
    return chunks


def png_header_only(width: int, height: int) -> bytes:
    """Return a tiny PNG whose header claims the given size (a decompression bomb)."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        crc = zlib.crc32(kind + body) & 0xFFFFFFFF
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", crc)

    ihdr = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)  # 1-bit greyscale
    idat = zlib.compress(b"\x00" * 1024)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")


def decode(result: SanitizedFile) -> Image.Image:
    """Fully decode the sanitized bytes, proving they are a valid image."""
    image = Image.open(BytesIO(result.data))
    image.load()
    return image


def assert_no_metadata(image: Image.Image) -> None:
    """Assert Pillow sees no EXIF, XMP, ICC or comment in the decoded output."""
    assert not image.getexif()
    for key in ("exif", "xmp", "XML:com.adobe.xmp", "icc_profile", "comment"):
        assert key not in image.info, key


def assert_clean_jpeg(data: bytes) -> None:
    """Assert a JPEG has no APP1..APP15 (EXIF, XMP, ICC, MPF...) and no COM segment."""
    markers = jpeg_markers(data)
    assert not [m for m in markers if 0xE1 <= m <= 0xEF or m == 0xFE], [hex(m) for m in markers]
    assert b"Exif\x00\x00" not in data
    assert b"ICC_PROFILE" not in data
    assert b"xmpmeta" not in data
    assert JPEG_COMMENT not in data
    assert not has_gps_exif(data)


# --- JPEG --------------------------------------------------------------------------------


def test_factory_jpeg_really_carries_metadata() -> None:
    data = make_test_jpeg_with_gps()
    assert has_gps_exif(data)
    with Image.open(BytesIO(data)) as image:
        exif = image.getexif()
        assert exif[0x010F] == "Apple"
        assert exif[0x0110] == "iPhone 15 Pro"
        assert exif[0x0112] == 1
        assert exif.get_ifd(0x8825)[1] == "N"
        assert "icc_profile" in image.info
        assert image.info["comment"] == JPEG_COMMENT
        assert "xmp" in image.info
    markers = jpeg_markers(data)
    assert 0xE1 in markers and 0xFE in markers and 0xE2 in markers


def test_gps_jpeg_photo_is_stripped() -> None:
    original = make_test_jpeg_with_gps()
    result = sanitize(original, kind="photo", mime_type="image/jpeg", filename="IMG_0001.JPG")
    assert result.reencoded is True
    assert result.note is None
    assert result.kind == "photo"
    assert result.mime_type == "image/jpeg"
    assert result.filename == "IMG_0001.JPG"
    assert_clean_jpeg(result.data)
    image = decode(result)
    assert image.format == "JPEG"
    assert image.size == (64, 48)
    assert_no_metadata(image)


def test_jpeg_disguised_as_pdf_document_is_stripped() -> None:
    original = make_test_jpeg_with_gps()
    result = sanitize(original, kind="document", mime_type="application/pdf", filename="scan.pdf")
    assert result.reencoded is True
    assert result.kind == "document"
    assert result.mime_type == "image/jpeg"
    assert result.filename == "scan.jpg"
    assert_clean_jpeg(result.data)
    assert_no_metadata(decode(result))


def test_orientation_is_applied_to_pixels() -> None:
    original = make_test_jpeg_with_gps(64, 48, orientation=6)
    result = sanitize(original, kind="photo", mime_type="image/jpeg", filename=None)
    image = decode(result)
    assert image.size == (48, 64)
    assert 0x0112 not in image.getexif()
    # Orientation 6 means "rotate 90° clockwise to display": the stored top-left corner
    # (black-ish red/green gradient origin) must now be the top-right corner.
    red, green, _ = image.convert("RGB").getpixel((47, 0))  # type: ignore[misc]
    assert red < 40 and green < 40
    red, green, _ = image.convert("RGB").getpixel((0, 63))  # type: ignore[misc]
    assert red > 215 and green > 215


def test_jpeg_quality_is_reasonable() -> None:
    original = make_test_jpeg_with_gps(200, 150)
    result = sanitize(original, kind="photo", mime_type="image/jpeg", filename="a.jpg")
    before = Image.open(BytesIO(original)).convert("RGB")
    after = decode(result).convert("RGB")
    worst = max(abs(a - b) for a, b in zip(before.tobytes(), after.tobytes(), strict=True))
    assert worst < 30


def test_missing_filename_gets_kind_and_extension() -> None:
    result = sanitize(make_test_jpeg_with_gps(), kind="photo", mime_type=None, filename=None)
    assert result.filename == "photo.jpg"


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("../../etc/évidence.jpeg", "évidence.jpeg"),
        ("C:\\Users\\An\\photo", "photo.jpg"),
        ("report\u202egpj.exe", "reportgpj.jpg"),
        (".hidden", ".hidden.jpg"),
        ("", "document.jpg"),
    ],
)
def test_filename_is_cleaned(given: str, expected: str) -> None:
    result = sanitize(make_test_jpeg_with_gps(), kind="document", mime_type=None, filename=given)
    assert result.filename == expected


def test_cmyk_jpeg_becomes_rgb() -> None:
    buffer = BytesIO()
    gradient_image(32, 32, "CMYK").save(buffer, format="JPEG", exif=gps_exif().tobytes())
    result = sanitize(buffer.getvalue(), kind="document", mime_type=None, filename="x.jpg")
    image = decode(result)
    assert image.mode == "RGB"
    assert_clean_jpeg(result.data)


def test_mpo_from_phone_becomes_plain_jpeg() -> None:
    buffer = BytesIO()
    first, second = gradient_image(40, 30), gradient_image(40, 30).rotate(180)
    first.save(
        buffer, format="MPO", save_all=True, append_images=[second], exif=gps_exif().tobytes()
    )
    original = buffer.getvalue()
    with Image.open(BytesIO(original)) as probe:
        assert probe.format == "MPO"
    result = sanitize(original, kind="photo", mime_type="image/jpeg", filename="a.jpg")
    image = decode(result)
    assert image.format == "JPEG"
    assert getattr(image, "n_frames", 1) == 1
    assert_clean_jpeg(result.data)


# --- PNG, WebP, GIF ----------------------------------------------------------------------


def test_png_text_chunks_and_exif_are_dropped() -> None:
    info = PngImagePlugin.PngInfo()
    info.add_text("Author", "Nguyen Van A")
    info.add_text("Comment", "gui tu Zalo", zip=True)
    info.add_itxt("Description", "Vị trí: 21.0285, 105.8542", lang="vi")
    buffer = BytesIO()
    gradient_image(20, 10, "RGBA").save(
        buffer,
        format="PNG",
        pnginfo=info,
        exif=gps_exif().tobytes(),
        dpi=(300, 300),
        icc_profile=SRGB_ICC,
    )
    original = buffer.getvalue()
    assert {b"tEXt", b"zTXt", b"iTXt", b"eXIf", b"iCCP"} <= set(png_chunks(original))
    assert has_gps_exif(original)

    result = sanitize(original, kind="document", mime_type="image/png", filename="screen.png")
    assert result.reencoded is True
    assert result.mime_type == "image/png"
    assert result.filename == "screen.png"
    assert set(png_chunks(result.data)) <= {b"IHDR", b"PLTE", b"tRNS", b"IDAT", b"IEND"}
    assert b"Nguyen" not in result.data
    assert not has_gps_exif(result.data)
    image = decode(result)
    assert_no_metadata(image)
    assert image.mode == "RGBA"
    assert image.tobytes() == gradient_image(20, 10, "RGBA").tobytes()  # lossless


def test_palette_png_keeps_transparency() -> None:
    image = Image.new("P", (8, 8), 1)
    image.putpalette([0, 0, 0, 255, 0, 0] + [0] * 762)
    buffer = BytesIO()
    image.save(buffer, format="PNG", transparency=1, pnginfo=_text_info())
    result = sanitize(buffer.getvalue(), kind="photo", mime_type=None, filename=None)
    out = decode(result)
    assert out.mode == "P"
    assert out.info.get("transparency") == 1
    assert b"tEXt" not in png_chunks(result.data)


def _text_info() -> PngImagePlugin.PngInfo:
    info = PngImagePlugin.PngInfo()
    info.add_text("Author", "Nguyen Van A")
    return info


def test_webp_exif_and_xmp_are_dropped() -> None:
    buffer = BytesIO()
    gradient_image(32, 24).save(
        buffer, format="WEBP", exif=gps_exif().tobytes(), xmp=XMP_WITH_GPS, quality=90
    )
    original = buffer.getvalue()
    assert has_gps_exif(original)
    result = sanitize(original, kind="document", mime_type="image/webp", filename="s.webp")
    assert result.reencoded is True
    assert result.mime_type == "image/webp"
    assert b"EXIF" not in result.data and b"XMP " not in result.data
    assert not has_gps_exif(result.data)
    assert_no_metadata(decode(result))


def test_lossless_webp_stays_lossless() -> None:
    source = gradient_image(16, 16)
    buffer = BytesIO()
    source.save(buffer, format="WEBP", lossless=True, exif=gps_exif().tobytes())
    result = sanitize(buffer.getvalue(), kind="document", mime_type=None, filename="a.webp")
    assert decode(result).convert("RGB").tobytes() == source.tobytes()


def test_animated_gif_keeps_frames_and_loses_comment() -> None:
    frames = [gradient_image(16, 16).rotate(angle) for angle in (0, 90, 180)]
    buffer = BytesIO()
    frames[0].save(
        buffer,
        format="GIF",
        save_all=True,
        append_images=frames[1:],
        duration=120,
        loop=0,
        comment=b"Nguyen Van A",
    )
    original = buffer.getvalue()
    assert b"Nguyen" in original
    result = sanitize(original, kind="document", mime_type="image/gif", filename="a.gif")
    assert result.reencoded is True
    assert b"Nguyen" not in result.data
    image = decode(result)
    assert image.format == "GIF"
    assert getattr(image, "n_frames", 1) == 3
    assert image.info.get("loop") == 0
    assert image.info.get("duration") == 120


def test_animated_webp_keeps_frames_without_metadata() -> None:
    frames = [gradient_image(16, 16).rotate(angle) for angle in (0, 90)]
    buffer = BytesIO()
    frames[0].save(
        buffer,
        format="WEBP",
        save_all=True,
        append_images=frames[1:],
        duration=[80, 160],
        loop=2,
        exif=gps_exif().tobytes(),
        xmp=XMP_WITH_GPS,
    )
    original = buffer.getvalue()
    assert has_gps_exif(original)
    result = sanitize(original, kind="animation", mime_type="image/webp", filename=None)
    assert result.filename == "animation.webp"
    assert not has_gps_exif(result.data)
    assert b"EXIF" not in result.data and b"XMP " not in result.data
    image = decode(result)
    assert getattr(image, "n_frames", 1) == 2
    assert image.info.get("loop") == 2


def test_apng_keeps_frames_without_text() -> None:
    frames = [gradient_image(12, 12, "RGBA").rotate(angle) for angle in (0, 90, 180)]
    buffer = BytesIO()
    frames[0].save(
        buffer,
        format="PNG",
        save_all=True,
        append_images=frames[1:],
        duration=50,
        pnginfo=_text_info(),
    )
    result = sanitize(buffer.getvalue(), kind="document", mime_type=None, filename="a.png")
    assert b"Nguyen" not in result.data
    assert b"acTL" in png_chunks(result.data)
    image = decode(result)
    assert getattr(image, "n_frames", 1) == 3


# --- files kept as received --------------------------------------------------------------

PDF_BYTES = b"%PDF-1.4\n1 0 obj<</Author(Nguyen Van A)>>endobj\ntrailer<<>>\n%%EOF\n"
OGG_BYTES = b"OggS\x00\x02" + bytes(40)
MP4_BYTES = b"\x00\x00\x00\x18ftypmp42\x00\x00\x00\x00mp42isom" + bytes(32)


@pytest.mark.parametrize(
    ("data", "kind", "mime", "filename", "expected_name"),
    [
        (PDF_BYTES, "document", "application/pdf", "report.pdf", "report.pdf"),
        (OGG_BYTES, "voice", "audio/ogg", None, "voice.oga"),
        (MP4_BYTES, "video", "video/mp4", "clip.mp4", "clip.mp4"),
        (MP4_BYTES, "animation", None, "anim.mp4", "anim.mp4"),
        (b"ID3\x04" + bytes(30), "audio", "audio/mpeg", "song.mp3", "song.mp3"),
    ],
)
def test_non_images_are_kept_unchanged_with_a_note(
    data: bytes, kind: str, mime: str | None, filename: str | None, expected_name: str
) -> None:
    result = sanitize(data, kind=kind, mime_type=mime, filename=filename)
    assert result.data == data
    assert result.reencoded is False
    assert result.kind == kind
    assert result.note and "not stripped" in result.note
    assert result.mime_type == (mime or "video/mp4")
    assert result.filename.startswith(expected_name.rsplit(".", 1)[0])


def test_truncated_jpeg_is_kept_with_a_note() -> None:
    original = make_test_jpeg_with_gps(64, 48)
    broken = original[: len(original) - 200]
    result = sanitize(broken, kind="photo", mime_type="image/jpeg", filename="a.jpg")
    assert result.data == broken
    assert result.reencoded is False
    assert result.note and "could not be decoded" in result.note
    # The helper must not call the kept copy clean: its EXIF block is intact.
    assert has_gps_exif(broken)


@pytest.mark.parametrize(
    "data",
    [b"\xff\xd8\xff\xe0" + b"garbage" * 20, b"\xff\xd8", b"", b"\x89PNG\r\n\x1a\nbroken"],
)
def test_garbage_claiming_to_be_an_image_never_crashes(data: bytes) -> None:
    result = sanitize(data, kind="photo", mime_type="image/jpeg", filename="x.jpg")
    assert result.data == data
    assert result.reencoded is False
    assert result.note


def test_unsupported_image_format_is_kept_with_a_note() -> None:
    buffer = BytesIO()
    gradient_image(8, 8).save(buffer, format="TIFF", exif=gps_exif().tobytes())
    original = buffer.getvalue()
    result = sanitize(original, kind="document", mime_type="image/tiff", filename="a.tif")
    assert result.data == original
    assert result.reencoded is False
    assert result.note and "image/tiff" in result.note
    assert has_gps_exif(original)  # the caller is told, not lied to


def test_has_gps_exif_finds_exif_in_files_pillow_cannot_open() -> None:
    exif_item = b"\x00\x00\x00\x06" + gps_exif().tobytes()  # tobytes() starts with "Exif\0\0"
    assert exif_item.count(b"Exif\x00\x00") == 1
    heic = b"\x00\x00\x00\x18ftypheic\x00\x00\x00\x00mif1heic" + bytes(32) + exif_item
    assert has_gps_exif(heic)
    assert not has_gps_exif(b"\x00\x00\x00\x18ftypheic" + bytes(64))
    assert not has_gps_exif(b"Exif\x00\x00 but not really")


def test_heic_is_kept_with_a_note() -> None:
    heic = b"\x00\x00\x00\x18ftypheic\x00\x00\x00\x00mif1heic" + bytes(64)
    result = sanitize(heic, kind="document", mime_type=None, filename="IMG_1.HEIC")
    assert result.data == heic
    assert result.reencoded is False
    assert result.mime_type == "image/heic"
    assert result.note and "HEIC" in result.note


def test_unknown_kind_is_refused() -> None:
    with pytest.raises(ValueError):
        sanitize(b"", kind="sticker", mime_type=None, filename=None)


# --- bombs -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("width", "height"),
    [
        (20_000, 20_000),  # beyond Pillow's own DecompressionBombError threshold
        (8_000, 6_000),  # 48 MP: below Pillow's threshold, above ours
    ],
)
def test_decompression_bomb_is_rejected(width: int, height: int) -> None:
    bomb = png_header_only(width, height)
    assert len(bomb) < 200
    with pytest.raises(MediaRejected) as caught:
        sanitize(bomb, kind="document", mime_type="image/png", filename="bomb.png")
    assert "too large" in caught.value.reason


def test_limit_is_forty_megapixels() -> None:
    assert MAX_PIXELS == 40_000_000


def test_animation_frames_count_towards_the_limit() -> None:
    frames = [Image.new("L", (2000, 2000), shade) for shade in range(0, 250, 20)]
    buffer = BytesIO()
    frames[0].save(buffer, format="GIF", save_all=True, append_images=frames[1:])
    with pytest.raises(MediaRejected):
        sanitize(buffer.getvalue(), kind="animation", mime_type="image/gif", filename=None)
