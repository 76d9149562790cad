"""Build in-memory images carrying the metadata the bot must strip (test helper)."""

from __future__ import annotations

from io import BytesIO

from PIL import Image, ImageCms
from PIL.TiffImagePlugin import IFDRational
from pypdf import PdfWriter
from pypdf.generic import DecodedStreamObject, IndirectObject, NameObject

GPS_IFD = 0x8825
# An XMP packet that repeats the position, as phone galleries and editors write it.
XMP_WITH_GPS = (
    b'<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF '
    b'xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">'
    b'<rdf:Description xmlns:exif="http://ns.adobe.com/exif/1.0/" '
    b'exif:GPSLatitude="21,1.5N" exif:GPSLongitude="105,51.2E"/>'
    b"</rdf:RDF></x:xmpmeta>"
)
JPEG_COMMENT = b"Nguyen Van A, 0912345678"


def gradient_image(width: int, height: int, mode: str = "RGB") -> Image.Image:
    """Return a non-uniform image, so rotations and re-encoding are observable."""
    image = Image.new("RGB", (width, height))
    image.putdata(
        [
            (x * 255 // max(width - 1, 1), y * 255 // max(height - 1, 1), 80)
            for y in range(height)
            for x in range(width)
        ]
    )
    return image.convert(mode)


def gps_exif(orientation: int = 1) -> Image.Exif:
    """Return EXIF with a GPS position in Hanoi, a camera make/model and an orientation."""
    exif = Image.Exif()
    exif[0x010F] = "Apple"  # Make
    exif[0x0110] = "iPhone 15 Pro"  # Model
    exif[0x0112] = orientation  # Orientation
    exif[0x0131] = "17.5.1"  # Software
    gps = exif.get_ifd(GPS_IFD)
    gps[1] = "N"  # GPSLatitudeRef
    gps[2] = (IFDRational(21, 1), IFDRational(1, 1), IFDRational(3075, 100))  # GPSLatitude
    gps[3] = "E"  # GPSLongitudeRef
    gps[4] = (IFDRational(105, 1), IFDRational(51, 1), IFDRational(1234, 100))  # GPSLongitude
    gps[6] = IFDRational(1200, 100)  # GPSAltitude
    return exif


def make_test_jpeg_with_gps(
    width: int = 64,
    height: int = 48,
    *,
    orientation: int = 1,
    xmp: bool = True,
    comment: bool = True,
    icc: bool = True,
) -> bytes:
    """Return a JPEG with EXIF GPS, make/model and orientation, plus XMP, comment and ICC."""
    options: dict[str, object] = {"exif": gps_exif(orientation).tobytes(), "quality": 95}
    if xmp:
        options["xmp"] = XMP_WITH_GPS
    if comment:
        options["comment"] = JPEG_COMMENT
    if icc:
        options["icc_profile"] = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    buffer = BytesIO()
    gradient_image(width, height).save(buffer, format="JPEG", **options)
    return buffer.getvalue()


# --- PDFs -------------------------------------------------------------------------------

AUTHOR = "Nguyen Van A"
XMP = (
    b'<?xpacket begin="" id="W5M0MpCehiHzreSzNTczkc9d"?>'
    b'<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF '
    b'xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">'
    b'<rdf:Description xmlns:dc="http://purl.org/dc/elements/1.1/" '
    b'xmlns:xmp="http://ns.adobe.com/xap/1.0/">'
    b"<dc:creator><rdf:Seq><rdf:li>Nguyen Van A</rdf:li></rdf:Seq></dc:creator>"
    b"<xmp:CreatorTool>Microsoft Word for Phone</xmp:CreatorTool>"
    b'</rdf:Description></rdf:RDF></x:xmpmeta><?xpacket end="w"?>'
)
PAGE_TEXT = b"BT /F1 12 Tf 20 20 Td (Bien so 29A-12345) Tj ET"


def _xmp_stream(writer: PdfWriter) -> IndirectObject:
    """An XMP metadata stream added to the writer (indirect reference)."""
    stream = DecodedStreamObject()
    stream.set_data(XMP)
    stream[NameObject("/Type")] = NameObject("/Metadata")
    stream[NameObject("/Subtype")] = NameObject("/XML")
    return writer._add_object(stream)


def make_pdf(pages: int = 3, *, password: str | None = None) -> bytes:
    """A real PDF with an info dictionary, document and page XMP, and text on each page."""
    writer = PdfWriter()
    for _ in range(pages):
        page = writer.add_blank_page(300, 200)
        content = DecodedStreamObject()
        content.set_data(PAGE_TEXT)
        page[NameObject("/Contents")] = writer._add_object(content)
        page[NameObject("/Metadata")] = _xmp_stream(writer)
    writer.add_metadata(
        {
            "/Author": AUTHOR,
            "/Creator": "Microsoft Word for Phone",
            "/Producer": "Samsung Galaxy S24 Print",
            "/Title": "Bao cao",
        }
    )
    writer.root_object[NameObject("/Metadata")] = _xmp_stream(writer)
    if password is not None:
        writer.encrypt(password)
    buffer = BytesIO()
    writer.write(buffer)
    return buffer.getvalue()
