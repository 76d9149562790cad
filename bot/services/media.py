"""Strip identifying metadata from files the bot keeps or re-sends to police.

Principle 4 of the design: a tipster's photo must not reveal where or with which phone it was
taken. Images are decoded and re-encoded from pixels only, so EXIF (GPS, camera make/model,
serial numbers), XMP, ICC profiles, comments and PNG text chunks cannot survive; HEIC/HEIF
(with pillow-heif) and AVIF (when Pillow has libavif) become JPEGs the same way. PDFs are
rewritten with pypdf without their document information and XMP. Formats we cannot clean
without extra tooling (video, voice, audio, animations: ffmpeg is not shipped) and any other
document are kept as received and the result says so in ``note``: a stable code (see
``note_code``) then an English explanation for logs. Callers warn the citizen and the police
from the code instead of pretending the file is clean.

``sanitize`` is CPU-bound (decode + encode): async handlers should call it through
``asyncio.to_thread`` so one large photo does not stall the event loop.
"""

from __future__ import annotations

import mimetypes
import re
import unicodedata
from dataclasses import dataclass
from io import BytesIO
from typing import Any

from PIL import Image, ImageCms, ImageOps, ImageSequence, UnidentifiedImageError, features
from pypdf import PdfReader, PdfWriter
from pypdf.generic import DictionaryObject

try:
    import pillow_heif
except ImportError:  # optional: without it HEIC is kept as sent, with a note
    HEIF_SUPPORTED = False
else:
    # Registers the "HEIF" format with Pillow; we still only ever open it by name (below), so
    # other image reads in the process are unaffected unless they opt in.
    pillow_heif.register_heif_opener()
    HEIF_SUPPORTED = True

__all__ = [
    "HEIF_SUPPORTED",
    "KINDS",
    "MAX_PIXELS",
    "NOTE_CODES",
    "MediaRejected",
    "SanitizedFile",
    "has_gps_exif",
    "note_code",
    "sanitize",
]

KINDS = frozenset({"photo", "document", "video", "voice", "audio", "animation"})

# 40 megapixels covers every phone camera (the largest common sensors bin to ~12-50 MP and
# send at most 48 MP only in "pro" modes) while bounding decode memory to ~160 MB (RGBA).
# Checked ourselves from the header, before any pixel is decoded. We leave the process-wide
# Image.MAX_IMAGE_PIXELS alone (other code may legitimately need its default) and only rely on
# the DecompressionBombError it raises at open time for absurd sizes.
MAX_PIXELS = 40_000_000

# Only formats we know how to re-encode are handed to Pillow: every other parser is attack
# surface we do not need. MPO (multi-picture JPEG written by many phones) comes in via JPEG.
_OPEN_FORMATS = ("JPEG", "PNG", "WEBP", "GIF")
_JPEG_QUALITY = 90


@dataclass(frozen=True)
class _OutputFormat:
    pillow: str
    mime: str
    extension: str
    accepted_extensions: frozenset[str]


_OUTPUTS = {
    "JPEG": _OutputFormat("JPEG", "image/jpeg", ".jpg", frozenset({".jpg", ".jpeg", ".jpe"})),
    "PNG": _OutputFormat("PNG", "image/png", ".png", frozenset({".png"})),
    "WEBP": _OutputFormat("WEBP", "image/webp", ".webp", frozenset({".webp"})),
    "GIF": _OutputFormat("GIF", "image/gif", ".gif", frozenset({".gif"})),
}

_SUPPORTED_MIMES = frozenset(output.mime for output in _OUTPUTS.values()) | {"image/jpg"}

# ISO-BMFF major brands of HEIF/HEIC/AVIF stills (iPhone default format). HEIC is decoded by
# pillow-heif when it is installed, AVIF by Pillow itself when built with libavif.
_HEIF_BRANDS = {
    b"heic": "image/heic",
    b"heix": "image/heic",
    b"heim": "image/heic",
    b"heis": "image/heic",
    b"hevc": "image/heic-sequence",
    b"hevx": "image/heic-sequence",
    b"mif1": "image/heif",
    b"msf1": "image/heif-sequence",
    b"avif": "image/avif",
    b"avis": "image/avif",
}

# A note is "<code>: <English explanation>". The code is what callers show, through gettext
# (bot/services/cards.py for the police, intake_steps.py for the citizen); the explanation is
# for logs and operators. Notes stored before codes existed start with "metadata not
# stripped:" and have no code: they are shown with a generic text.
NOTE_CODES = frozenset(
    {"video", "animation", "voice", "audio", "document", "pdf_unreadable", "heic", "image"}
)
_NOT_STRIPPED = {
    "video": "video: metadata not stripped, video (GPS, device, time in MP4/MOV) needs ffmpeg",
    "animation": "animation: metadata not stripped, animations (MP4) need ffmpeg",
    "voice": "voice: metadata not stripped, voice messages need ffmpeg",
    "audio": "audio: metadata not stripped, audio tags need ffmpeg",
    "document": "document: metadata not stripped, documents other than PDF are kept as sent",
    "photo": "image: metadata not stripped, not a supported image",
}
_PDF_MAGIC = b"%PDF-"
# Keys that carry who made a PDF and with what, on the catalog, pages and XObjects:
# XMP packets and application private data (e.g. Illustrator's, Word's PieceInfo).
_PDF_METADATA_KEYS = ("/Metadata", "/PieceInfo")

_GPS_IFD = 0x8825
_EXIF_HEADER = b"Exif\x00\x00"
# XMP can carry the same coordinates as EXIF (exif:GPSLatitude, drone-dji:GpsLatitude...).
_XMP_GPS = re.compile(rb"GPS(Latitude|Longitude)|GpsLatitude|GpsLongitude", re.IGNORECASE)
_MAX_FILENAME_CHARS = 120


class MediaRejected(Exception):  # noqa: N818 -- the name is part of the agreed API
    """The file must not be kept at all (e.g. a decompression bomb)."""

    def __init__(self, reason: str) -> None:
        """Keep the reason for logs and for the message shown to the sender."""
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class SanitizedFile:
    """The copy of a file that the bot may store or re-send."""

    data: bytes
    mime_type: str
    filename: str
    kind: str
    reencoded: bool
    note: str | None


def sanitize(
    data: bytes, *, kind: str, mime_type: str | None, filename: str | None
) -> SanitizedFile:
    """Return a metadata-free copy of an image, or the file unchanged with a note saying why."""
    if kind not in KINDS:
        raise ValueError(f"unknown media kind {kind!r}")
    name = _clean_filename(filename)

    heif_mime = _heif_mime(data)
    if heif_mime is not None:
        formats = _heif_formats(heif_mime)
        if formats:
            return _sanitize_image(data, kind, mime_type or heif_mime, name, formats, heif=True)
        return _unchanged(
            data,
            kind,
            mime_type or heif_mime,
            name,
            "heic: metadata not stripped, no HEIC/HEIF/AVIF decoder is installed",
        )

    # The bytes decide, never the declared mime type or filename: a "scan.pdf" that is really
    # a JPEG still carries the camera's GPS, and a "photo.jpg" that is a PDF is cleaned as one.
    if _PDF_MAGIC in data[:1024]:
        pdf = _sanitize_pdf(data, kind, name)
        if pdf.reencoded:
            return pdf
        # "%PDF-" may also sit in an image's header (an EXIF comment): a JPEG must never
        # escape re-encoding because it merely mentions PDF.
        image = _sanitize_image(data, kind, mime_type, name, _OPEN_FORMATS, heif=False)
        return image if image.reencoded else pdf
    return _sanitize_image(data, kind, mime_type, name, _OPEN_FORMATS, heif=False)


def note_code(note: str | None) -> str | None:
    """The stable code of a note ("video", "pdf_unreadable"...), None if it has none."""
    if not note:
        return None
    code = note.split(":", 1)[0].strip()
    return code if code in NOTE_CODES else None


def _sanitize_image(
    data: bytes,
    kind: str,
    mime_type: str | None,
    name: str | None,
    formats: tuple[str, ...],
    *,
    heif: bool,
) -> SanitizedFile:
    """Re-encode an image from its pixels, or keep it with a note when it cannot be decoded."""
    try:
        with Image.open(BytesIO(data), formats=formats) as image:
            _check_dimensions(image)
            # HEIC/AVIF are re-encoded as JPEG: every viewer and Telegram show it inline.
            jpeg = heif or image.format == "MPO"
            output = _OUTPUTS["JPEG" if jpeg else str(image.format)]
            encoded = _reencode(image, output, data)
    except Image.DecompressionBombError as exc:
        raise MediaRejected(f"image is too large to process safely: {exc}") from exc
    except UnidentifiedImageError:
        if heif:
            note = "heic: metadata not stripped, this HEIC/HEIF/AVIF could not be decoded"
        else:
            note = _not_stripped_note(kind, mime_type)
        return _unchanged(data, kind, mime_type, name, note)
    except (OSError, SyntaxError, ValueError, EOFError, IndexError, KeyError, RuntimeError) as exc:
        # Recognised as an image but undecodable (truncated, corrupt): keeping the original is
        # better than losing evidence, and the note tells the caller it is not clean.
        code = "heic" if heif else "image"
        return _unchanged(
            data,
            kind,
            mime_type,
            name,
            f"{code}: metadata not stripped, image could not be decoded ({type(exc).__name__})",
        )

    return SanitizedFile(
        data=encoded,
        mime_type=output.mime,
        filename=_with_extension(name, kind, output),
        kind=kind,
        reencoded=True,
        note=None,
    )


def has_gps_exif(data: bytes) -> bool:
    """Return True if the bytes carry GPS coordinates in EXIF (or XMP) that we can find."""
    if b"<x:xmpmeta" in data and _XMP_GPS.search(data):
        return True
    try:
        with Image.open(BytesIO(data)) as image:
            if image.getexif().get_ifd(_GPS_IFD):
                return True
    except Exception:
        pass  # unreadable as an image: the raw scan below still looks for an EXIF block
    # Raw scan for an EXIF block, so formats Pillow cannot open (HEIC, truncated JPEG) are not
    # reported clean by mistake.
    start = data.find(_EXIF_HEADER)
    while start != -1:
        exif = Image.Exif()
        try:
            # A JPEG APP1 segment is at most 64 KiB; HEIC EXIF items are similar in size.
            exif.load(data[start : start + (1 << 20)])
            if exif.get_ifd(_GPS_IFD):
                return True
        except Exception:
            pass  # the header bytes matched by chance, keep scanning
        start = data.find(_EXIF_HEADER, start + 1)
    return False


def _sanitize_pdf(data: bytes, kind: str, name: str | None) -> SanitizedFile:
    """Rewrite a PDF without its document information and XMP, or keep it with a note."""
    try:
        cleaned, pages = _strip_pdf(data)
        # Read the result back: a rewrite that lost a page must never replace the evidence.
        if len(PdfReader(BytesIO(cleaned)).pages) != pages:
            raise ValueError("page count changed")
    except _PdfEncryptedError:
        return _unchanged(
            data,
            kind,
            "application/pdf",
            name,
            "pdf_unreadable: metadata not stripped, the PDF is encrypted",
        )
    except Exception as exc:  # pypdf raises many exception types on broken files
        # A damaged PDF is still evidence: keep it as sent and say that it was not cleaned.
        return _unchanged(
            data,
            kind,
            "application/pdf",
            name,
            f"pdf_unreadable: metadata not stripped, the PDF could not be read "
            f"({type(exc).__name__})",
        )
    filename = name or f"{kind}.pdf"
    return SanitizedFile(
        data=cleaned,
        mime_type="application/pdf",
        filename=filename,
        kind=kind,
        reencoded=True,
        note=None,
    )


class _PdfEncryptedError(Exception):
    """The PDF is encrypted: rewriting it would need its password."""


def _strip_pdf(data: bytes) -> tuple[bytes, int]:
    """Return the PDF rewritten without Info, XMP and PieceInfo, and its page count."""
    reader = PdfReader(BytesIO(data), strict=False)
    if reader.is_encrypted:
        raise _PdfEncryptedError
    pages = len(reader.pages)
    writer = PdfWriter(clone_from=reader)
    writer.metadata = None  # the /Info dictionary: author, creator, producer, dates, title
    holders: list[DictionaryObject] = [writer.root_object]
    for page in writer.pages:
        holders.append(page)
        resources = page.get("/Resources")
        xobjects = resources.get_object().get("/XObject") if resources is not None else None
        if xobjects is not None:
            holders.extend(
                xobject.get_object()
                for xobject in xobjects.get_object().values()
                if isinstance(xobject.get_object(), DictionaryObject)
            )
    for holder in holders:
        for key in _PDF_METADATA_KEYS:
            if key in holder:
                del holder[key]
    # The cloned objects are all written unless dropped: the XMP streams we unlinked would
    # otherwise still sit in the file (and so would objects of earlier incremental saves).
    writer.compress_identical_objects()
    buffer = BytesIO()
    writer.write(buffer)
    return buffer.getvalue(), pages


def _check_dimensions(image: Image.Image) -> None:
    """Reject images whose decoded pixels would not fit the memory budget."""
    width, height = image.size
    frames = getattr(image, "n_frames", 1) if getattr(image, "is_animated", False) else 1
    if image.format in ("MPO", "HEIF", "AVIF"):
        frames = 1  # only the primary picture is decoded and kept (re-encoded as one JPEG)
    if width * height * frames > MAX_PIXELS:
        raise MediaRejected(
            f"image is too large to process safely: {width}x{height} px"
            + (f" x {frames} frames" if frames > 1 else "")
            + f" exceeds {MAX_PIXELS // 1_000_000} megapixels"
        )


def _reencode(image: Image.Image, output: _OutputFormat, source: bytes) -> bytes:
    """Encode the pixels of ``image`` (all frames if animated) without any metadata."""
    buffer = BytesIO()
    animated = getattr(image, "is_animated", False) and output.pillow != "JPEG"
    if not animated:
        frame = _clean_frame(image, output)
        frame.save(buffer, format=output.pillow, **_save_options(output, source))
        return buffer.getvalue()

    loop = image.info.get("loop")
    frames: list[Image.Image] = []
    durations: list[int] = []
    for frame in ImageSequence.Iterator(image):
        durations.append(int(frame.info.get("duration", 100)))
        frames.append(_clean_frame(frame, output))
    options = _save_options(output, source)
    options.update(save_all=True, append_images=frames[1:], duration=durations)
    if loop is not None:
        options["loop"] = loop
    frames[0].save(buffer, format=output.pillow, **options)
    return buffer.getvalue()


def _clean_frame(frame: Image.Image, output: _OutputFormat) -> Image.Image:
    """Return an upright copy of the current frame with pixel data and nothing else."""
    frame.load()  # decode errors surface here, before any fallback below can hide them
    source_info = dict(frame.info)
    try:
        upright = ImageOps.exif_transpose(frame)
    except Exception:
        # Malformed EXIF must never stop us from dropping it: keep the pixels as stored.
        upright = frame.copy()
    upright = _to_srgb(upright, source_info.get("icc_profile"))
    if output.pillow == "JPEG" and upright.mode not in ("L", "RGB"):
        upright = upright.convert("RGB")
    # Dropping the whole info dict is what removes EXIF, XMP, comments, text chunks and ICC:
    # Pillow's encoders copy some of these from ``info`` (e.g. JPEG comments, PNG ICC).
    # Transparency is pixel semantics, not metadata, so it is the one key carried over.
    kept: dict[str | tuple[int, int], Any] = {}
    if "transparency" in source_info and upright.mode == frame.mode:
        kept["transparency"] = source_info["transparency"]
    upright.info = kept
    return upright


def _to_srgb(image: Image.Image, icc_profile: object) -> Image.Image:
    """Convert pixels from an embedded ICC profile to sRGB, so dropping it keeps the colours."""
    # Phones tag photos with wide-gamut profiles (e.g. Display P3); stripping the profile
    # without converting would make them look washed out.
    if not isinstance(icc_profile, bytes) or not icc_profile:
        return image
    if image.mode not in ("RGB", "RGBA", "CMYK"):
        return image
    try:
        converted = ImageCms.profileToProfile(
            image,
            ImageCms.ImageCmsProfile(BytesIO(icc_profile)),
            ImageCms.createProfile("sRGB"),
            outputMode="RGBA" if image.mode == "RGBA" else "RGB",
        )
    except (ImageCms.PyCMSError, OSError, ValueError, TypeError):
        # A broken or unusual profile only costs colour accuracy, the profile is dropped anyway.
        return image
    return converted if converted is not None else image


def _save_options(output: _OutputFormat, source: bytes) -> dict[str, Any]:
    """Return encoder options for the output format."""
    if output.pillow == "JPEG":
        return {"quality": _JPEG_QUALITY, "optimize": True}
    if output.pillow == "PNG":
        return {"optimize": True}
    if output.pillow == "WEBP":
        lossless = _webp_is_lossless(source)
        return {"lossless": lossless, "quality": 100 if lossless else _JPEG_QUALITY}
    return {}


def _webp_is_lossless(data: bytes) -> bool:
    """Tell whether a WebP source was lossless, so screenshots are not degraded."""
    header = data[: 64 * 1024]
    # Walk the RIFF chunks: the first bitstream chunk is VP8L (lossless) or "VP8 " (lossy).
    offset = 12
    while offset + 8 <= len(header):
        fourcc = header[offset : offset + 4]
        size = int.from_bytes(header[offset + 4 : offset + 8], "little")
        if fourcc == b"VP8L":
            return True
        if fourcc == b"VP8 ":
            return False
        if fourcc == b"ANMF":
            offset += 8 + 16  # descend into the first animation frame's sub-chunks
            continue
        offset += 8 + size + (size & 1)
    return False


def _heif_mime(data: bytes) -> str | None:
    """Return the mime type if the bytes are an HEIF-family still image (HEIC, AVIF)."""
    if len(data) < 12 or data[4:8] != b"ftyp":
        return None
    return _HEIF_BRANDS.get(data[8:12])


def _heif_formats(heif_mime: str) -> tuple[str, ...]:
    """The Pillow format able to decode this HEIF-family image here, if any."""
    if heif_mime == "image/avif":
        return ("AVIF",) if features.check("avif") else ()
    return ("HEIF",) if HEIF_SUPPORTED else ()


def _not_stripped_note(kind: str, mime_type: str | None) -> str:
    """Explain why a non-image file was kept as received."""
    if mime_type in _SUPPORTED_MIMES:
        return f"image: metadata not stripped, the bytes are not a valid {mime_type} image"
    if mime_type and mime_type.startswith("image/"):
        return f"image: metadata not stripped, image type {mime_type} is not supported"
    return _NOT_STRIPPED[kind]


def _unchanged(
    data: bytes, kind: str, mime_type: str | None, name: str | None, note: str
) -> SanitizedFile:
    """Wrap the original bytes with the reason they were not cleaned."""
    mime = mime_type or (mimetypes.guess_type(name)[0] if name else None)
    mime = mime or "application/octet-stream"
    if name is None:
        name = kind + (mimetypes.guess_extension(mime) or "")
    return SanitizedFile(
        data=data, mime_type=mime, filename=name, kind=kind, reencoded=False, note=note
    )


def _clean_filename(filename: str | None) -> str | None:
    """Keep the sender's file name but without paths, control or direction-override chars."""
    if not filename:
        return None
    base = re.split(r"[\\/]", unicodedata.normalize("NFC", filename))[-1]
    # Cc/Cf include RTL overrides used to disguise extensions ("gpj.exe" shown as "exe.jpg").
    base = "".join(ch for ch in base if unicodedata.category(ch) not in ("Cc", "Cf")).strip()
    if not base or base in (".", ".."):
        return None
    if len(base) > _MAX_FILENAME_CHARS:
        stem, dot, ext = base.rpartition(".")
        if dot and 0 < len(ext) <= 10:
            base = stem[: _MAX_FILENAME_CHARS - len(ext) - 1] + "." + ext
        else:
            base = base[:_MAX_FILENAME_CHARS]
    return base


def _with_extension(name: str | None, kind: str, output: _OutputFormat) -> str:
    """Make the file name's extension match the re-encoded format."""
    if name is None:
        return kind + output.extension
    stem, dot, ext = name.rpartition(".")
    if not dot or not stem:
        return name + output.extension
    if "." + ext.lower() in output.accepted_extensions:
        return name
    return stem + output.extension
