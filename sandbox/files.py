"""Files known to one bot: uploads by the bot or by users, with Telegram-style ids."""

from __future__ import annotations

import io
import itertools
import mimetypes
import secrets
from dataclasses import dataclass
from typing import Any

from PIL import Image, UnidentifiedImageError

from sandbox.errors import bad_request

MAX_DOWNLOAD = 20 * 1024 * 1024  # getFile refuses bigger files
MAX_UPLOAD = 50 * 1024 * 1024  # bots may not upload bigger files

# Where getFile puts each kind, and the extension a nameless file gets.
_FOLDERS = {
    "photo": ("photos", ".jpg"),
    "document": ("documents", ""),
    "video": ("videos", ".mp4"),
    "voice": ("voice", ".oga"),
    "audio": ("music", ".mp3"),
    "animation": ("animations", ".mp4"),
    "sticker": ("stickers", ".webp"),
    "video_note": ("video_notes", ".mp4"),
}
MEDIA_KINDS = frozenset(_FOLDERS)


@dataclass(slots=True)
class StoredFile:
    """One file and the metadata its Bot API object is built from."""

    file_id: str
    file_unique_id: str
    kind: str
    size: int
    data: bytes | None  # None for a file declared by size only
    file_name: str | None = None
    mime_type: str | None = None
    width: int = 0
    height: int = 0
    duration: int = 0
    file_path: str = ""

    def content(self) -> bytes:
        """Return the bytes (zeros for a declared file, so downloads still work)."""
        return self.data if self.data is not None else bytes(self.size)


class FileStore:
    """Files by file_id and by file_path."""

    def __init__(self) -> None:
        self._by_id: dict[str, StoredFile] = {}
        self._by_path: dict[str, StoredFile] = {}
        self._serial = itertools.count(1)

    def clear(self) -> None:
        """Forget every file."""
        self._by_id.clear()
        self._by_path.clear()

    def add(
        self,
        kind: str,
        data: bytes | None,
        *,
        size: int | None = None,
        file_name: str | None = None,
        mime_type: str | None = None,
        width: int | None = None,
        height: int | None = None,
        duration: int = 0,
    ) -> StoredFile:
        """Store a new file and give it a fresh file_id and file_unique_id."""
        serial = next(self._serial)
        folder, default_ext = _FOLDERS.get(kind, ("documents", ""))
        if mime_type is None and file_name:
            mime_type = mimetypes.guess_type(file_name)[0]
        ext = _extension(file_name, mime_type, default_ext)
        if kind == "photo" and (width is None or height is None) and data:
            width, height = image_size(data)
        stored = StoredFile(
            # A serial keeps ids unique; the random tail keeps them unguessable like Telegram's.
            file_id=f"{kind[:2].upper()}{serial:x}-{secrets.token_urlsafe(24)}",
            file_unique_id=f"U{serial:x}{secrets.token_urlsafe(6)}",
            kind=kind,
            size=size if size is not None else len(data or b""),
            data=data,
            file_name=file_name,
            mime_type=mime_type,
            width=width or 0,
            height=height or 0,
            duration=duration,
            file_path=f"{folder}/file_{serial}{ext}",
        )
        self._by_id[stored.file_id] = stored
        self._by_path[stored.file_path] = stored
        return stored

    def get(self, file_id: str) -> StoredFile | None:
        """Return the file with this file_id, if any."""
        return self._by_id.get(file_id)

    def by_path(self, file_path: str) -> StoredFile | None:
        """Return the file served at this file_path, if any."""
        return self._by_path.get(file_path)

    def require(self, file_id: str) -> StoredFile:
        """Return the file or fail the way Telegram does for an unknown file_id."""
        stored = self._by_id.get(file_id)
        if stored is None:
            raise bad_request("wrong file identifier/HTTP URL specified")
        return stored


def _extension(file_name: str | None, mime_type: str | None, default: str) -> str:
    if file_name and "." in file_name:
        return "." + file_name.rsplit(".", 1)[1][:8]
    if mime_type:
        guessed = mimetypes.guess_extension(mime_type)
        if guessed:
            return guessed
    return default


def image_size(data: bytes) -> tuple[int, int]:
    """Return (width, height) of an image, or (0, 0) when Pillow cannot read it."""
    try:
        # Image.open only reads the header, so this stays cheap for big photos.
        with Image.open(io.BytesIO(data)) as image:
            width, height = image.size
            return int(width), int(height)
    except (UnidentifiedImageError, OSError, ValueError):
        return 0, 0


def file_object(stored: StoredFile, kind: str | None = None) -> Any:
    """Return the Bot API object for a file: a PhotoSize list for photos, else one object."""
    base: dict[str, Any] = {
        "file_id": stored.file_id,
        "file_unique_id": stored.file_unique_id,
        "file_size": stored.size,
    }
    kind = kind or stored.kind
    if kind == "photo":
        return [{**base, "width": stored.width, "height": stored.height}]
    if stored.mime_type:
        base["mime_type"] = stored.mime_type
    if kind in ("document", "audio", "video", "animation") and stored.file_name:
        base["file_name"] = stored.file_name
    if kind in ("video", "animation", "video_note", "sticker"):
        base["width"] = stored.width
        base["height"] = stored.height
    if kind in ("video", "animation", "voice", "audio", "video_note"):
        base["duration"] = stored.duration
    if kind == "video_note":
        base["length"] = stored.width
    if kind == "sticker":
        base.update(type="regular", is_animated=False, is_video=False)
    return base


def file_info(stored: StoredFile) -> dict[str, Any]:
    """Return getFile's File object; files over 20 MB are refused as Telegram does."""
    info: dict[str, Any] = {
        "file_id": stored.file_id,
        "file_unique_id": stored.file_unique_id,
        "file_size": stored.size,
    }
    if stored.size > MAX_DOWNLOAD:
        raise bad_request("file is too big")
    info["file_path"] = stored.file_path
    return info
