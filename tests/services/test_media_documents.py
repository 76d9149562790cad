"""PDF and HEIC metadata stripping, and how kept-as-sent notes are shown (design principle 4)."""

from __future__ import annotations

import sys
from io import BytesIO
from pathlib import Path

import pytest
from PIL import Image
from pypdf import PdfReader, PdfWriter

from bot.i18n import translator
from bot.services import cards, intake_steps
from bot.services.media import HEIF_SUPPORTED, NOTE_CODES, has_gps_exif, note_code, sanitize

# tests/services has no __init__.py: the repository root is needed for the shared factories.
_ROOT = str(Path(__file__).resolve().parents[2])
if _ROOT not in sys.path:
    sys.path.insert(0, _ROOT)

from tests.factories_media import (  # noqa: E402
    AUTHOR,
    PAGE_TEXT,
    gps_exif,
    gradient_image,
    make_pdf,
)


def test_pdf_info_and_xmp_are_removed_and_pages_kept() -> None:
    original = make_pdf(3)
    assert AUTHOR.encode() in original and b"Samsung" in original  # the fixture is dirty
    before = PdfReader(BytesIO(original))
    assert before.metadata is not None and before.metadata.author == AUTHOR
    assert before.xmp_metadata is not None

    result = sanitize(original, kind="document", mime_type="application/pdf", filename="a.pdf")

    assert result.reencoded is True
    assert result.note is None
    assert result.mime_type == "application/pdf"
    assert result.filename == "a.pdf"
    for leaked in (AUTHOR.encode(), b"Microsoft Word", b"Samsung", b"xmpmeta", b"Bao cao"):
        assert leaked not in result.data, leaked
    after = PdfReader(BytesIO(result.data))
    assert len(after.pages) == 3
    assert not after.metadata or not any(
        key in after.metadata for key in ("/Author", "/Creator", "/Producer", "/Title")
    )
    assert after.xmp_metadata is None
    assert "/Metadata" not in after.root_object
    for page in after.pages:
        assert "/Metadata" not in page
        contents = page.get_contents()
        assert contents is not None
        assert PAGE_TEXT in contents.get_data()  # the evidence itself is intact


def test_pdf_older_revisions_do_not_survive_the_rewrite() -> None:
    # An incremental save appends the new author and leaves the old one in the file.
    updated = PdfWriter(BytesIO(make_pdf(1)), incremental=True)
    updated.add_metadata({"/Author": "Tran Thi B"})
    buffer = BytesIO()
    updated.write(buffer)
    original = buffer.getvalue()
    assert AUTHOR.encode() in original and b"Tran Thi B" in original
    result = sanitize(original, kind="document", mime_type="application/pdf", filename=None)
    assert result.reencoded is True and result.filename == "document.pdf"
    assert AUTHOR.encode() not in result.data and b"Tran Thi B" not in result.data


def test_pdf_is_recognised_by_its_bytes_not_its_name() -> None:
    result = sanitize(make_pdf(1), kind="document", mime_type=None, filename="photo.jpg")
    assert result.reencoded is True
    assert AUTHOR.encode() not in result.data


def test_a_jpeg_that_mentions_pdf_is_still_re_encoded() -> None:
    buffer = BytesIO()
    gradient_image(16, 16).save(
        buffer, format="JPEG", exif=gps_exif().tobytes(), comment=b"%PDF-1.7 scan"
    )
    original = buffer.getvalue()
    assert b"%PDF-" in original[:1024] and has_gps_exif(original)
    result = sanitize(original, kind="document", mime_type="image/jpeg", filename="s.jpg")
    assert result.reencoded is True and not has_gps_exif(result.data)


def test_encrypted_pdf_is_kept_as_sent_with_a_note() -> None:
    original = make_pdf(2, password="matkhau")
    result = sanitize(original, kind="document", mime_type="application/pdf", filename="k.pdf")
    assert result.data == original
    assert result.reencoded is False
    assert note_code(result.note) == "pdf_unreadable"
    assert result.note is not None and "encrypted" in result.note


def test_broken_pdf_is_kept_as_sent_with_a_note() -> None:
    original = make_pdf(2)[:300]
    result = sanitize(original, kind="document", mime_type="application/pdf", filename="b.pdf")
    assert result.data == original
    assert result.reencoded is False
    assert note_code(result.note) == "pdf_unreadable"


@pytest.mark.skipif(not HEIF_SUPPORTED, reason="pillow-heif is not installed")
def test_heic_becomes_a_jpeg_without_gps() -> None:
    import pillow_heif

    buffer = BytesIO()
    heif = pillow_heif.from_pillow(gradient_image(64, 48))
    heif.save(buffer, format="HEIF", quality=90, exif=gps_exif().tobytes())
    original = buffer.getvalue()
    assert original[4:12] == b"ftypheic"
    assert has_gps_exif(original)

    result = sanitize(original, kind="document", mime_type="image/heic", filename="IMG_0042.HEIC")

    assert result.reencoded is True
    assert result.note is None
    assert result.mime_type == "image/jpeg"
    assert result.filename == "IMG_0042.jpg"
    assert result.data[:2] == b"\xff\xd8"
    assert not has_gps_exif(result.data)
    assert b"iPhone" not in result.data and b"Apple" not in result.data
    with Image.open(BytesIO(result.data)) as image:
        assert image.size == (64, 48)
        assert not image.getexif()


def test_every_note_has_a_code_shown_to_police_and_citizen() -> None:
    en = translator("en")
    notes = [
        sanitize(
            b"\x00\x00\x00\x18ftypmp42" + bytes(40), kind=kind, mime_type=None, filename=None
        ).note
        for kind in ("video", "animation", "voice", "audio", "document")
    ]
    assert [note_code(note) for note in notes] == [
        "video",
        "animation",
        "voice",
        "audio",
        "document",
    ]
    assert set(cards.FILE_NOTES) == NOTE_CODES
    for code in NOTE_CODES:
        assert cards.file_note(en, f"{code}: anything").startswith("⚠️")  # type: ignore[union-attr]
        assert intake_steps.kept_as_sent(en, f"{code}: anything")
    assert "(video)" in (cards.file_note(en, notes[0]) or "")
    assert "video" in (intake_steps.kept_as_sent(en, notes[0]) or "")


def test_old_free_text_notes_get_the_generic_warning() -> None:
    for t in (translator("en"), translator("vi")):
        legacy = "metadata not stripped: video (e.g. GPS, device in MP4/MOV) needs ffmpeg"
        assert note_code(legacy) is None
        assert cards.file_note(t, legacy) == t.gettext(cards.FILE_NOTE_GENERIC)
        assert intake_steps.kept_as_sent(t, legacy) == t.gettext(intake_steps.KEPT_AS_SENT_FILE)
        assert cards.file_note(t, None) is None
        assert intake_steps.kept_as_sent(t, None) is None


def test_caption_keeps_the_warning_within_telegram_limit() -> None:
    vi = translator("vi")
    caption = cards.file_caption(vi, "ABC123: " + "x" * 5000, "video: needs ffmpeg")
    assert len(caption) <= 1024
    assert caption.endswith(cards.file_note(vi, "video: needs ffmpeg") or "?")
    assert cards.file_caption(vi, "ABC123 (1/2)", None) == "ABC123 (1/2)"
