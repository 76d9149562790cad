"""Bot API request parameters: JSON, urlencoded or multipart bodies, typed access."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl

from sandbox.errors import ApiError, bad_request


@dataclass(frozen=True, slots=True)
class Upload:
    """One file part of a multipart request."""

    data: bytes
    filename: str | None
    content_type: str | None


class Params:
    """A Bot API call's parameters with Telegram's lenient typing.

    Clients such as python-telegram-bot send every non-string value JSON-encoded inside
    form fields, so each getter accepts both the native JSON value and its string form.
    """

    __slots__ = ("files", "values")

    def __init__(self, values: dict[str, Any], files: dict[str, Upload] | None = None) -> None:
        self.values = values
        self.files = files or {}

    def has(self, name: str) -> bool:
        """Tell whether the parameter was sent."""
        return name in self.values or name in self.files

    def text(self, name: str, default: str | None = None) -> str | None:
        """Return a string parameter."""
        value = self.values.get(name)
        if value is None:
            return default
        return value if isinstance(value, str) else json.dumps(value)

    def integer(self, name: str, default: int | None = None) -> int | None:
        """Return an integer parameter (400 when it is not a number)."""
        value = self.values.get(name)
        if value is None or value == "":
            return default
        if isinstance(value, bool):
            raise bad_request(f"invalid {name} specified")
        if isinstance(value, int):
            return value
        try:
            return int(value)
        except (TypeError, ValueError):
            raise bad_request(f"invalid {name} specified") from None

    def number(self, name: str) -> float | None:
        """Return a floating point parameter."""
        value = self.values.get(name)
        if value is None:
            return None
        try:
            return float(value)
        except (TypeError, ValueError):
            raise bad_request(f"invalid {name} specified") from None

    def flag(self, name: str, default: bool = False) -> bool:
        """Return a boolean parameter ("true"/"false" strings included)."""
        value = self.values.get(name)
        if value is None:
            return default
        if isinstance(value, bool):
            return value
        if isinstance(value, str):
            return value.strip().lower() in ("true", "1", "yes")
        return bool(value)

    def obj(self, name: str, what: str | None = None) -> Any:
        """Return an object parameter, decoding it when it arrived as a JSON string."""
        value = self.values.get(name)
        if isinstance(value, str):
            try:
                return json.loads(value)
            except ValueError:
                raise bad_request(f"can't parse {what or name} JSON object") from None
        return value

    def chat_id(self, name: str = "chat_id") -> int | str:
        """Return a chat identifier: an integer or an "@username" string."""
        value = self.values.get(name)
        if value is None or value == "":
            raise bad_request(f"{name} is empty")
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        text = str(value).strip()
        if text.startswith("@"):
            return text
        try:
            return int(text)
        except ValueError:
            raise bad_request("chat not found") from None

    def required_int(self, name: str) -> int:
        """Return an integer parameter that must be present."""
        value = self.integer(name)
        if value is None:
            raise bad_request(f"{name} is empty")
        return value


def parse_body(content_type: str, body: bytes, query: dict[str, str]) -> Params:
    """Parse a Bot API request body of any of the three encodings Telegram accepts."""
    values: dict[str, Any] = dict(query)
    files: dict[str, Upload] = {}
    kind = content_type.split(";", 1)[0].strip().lower()
    if not body:
        return Params(values)
    if kind == "application/json":
        try:
            decoded = json.loads(body)
        except ValueError:
            raise bad_request("can't parse JSON encoded request") from None
        if not isinstance(decoded, dict):
            raise bad_request("can't parse JSON encoded request")
        values.update(decoded)
    elif kind == "multipart/form-data":
        boundary = _boundary(content_type)
        for name, upload in _multipart(body, boundary):
            if upload.filename is None:
                values[name] = upload.data.decode("utf-8", errors="replace")
            else:
                files[name] = upload
    else:
        # application/x-www-form-urlencoded, also the fallback for an unlabelled body.
        values.update(parse_qsl(body.decode("utf-8", errors="replace"), keep_blank_values=True))
    return Params(values, files)


def _boundary(content_type: str) -> bytes:
    for part in content_type.split(";")[1:]:
        key, _, value = part.strip().partition("=")
        if key.lower() == "boundary" and value:
            return value.strip('"').encode("latin-1")
    raise ApiError(400, "Bad Request: multipart boundary is missing")


def _multipart(body: bytes, boundary: bytes) -> list[tuple[str, Upload]]:
    """Split a multipart/form-data body into named parts (RFC 7578)."""
    delimiter = b"--" + boundary
    parts: list[tuple[str, Upload]] = []
    for chunk in body.split(delimiter)[1:]:
        if chunk.startswith(b"--"):
            break  # the closing delimiter
        chunk = chunk.removeprefix(b"\r\n")
        head, sep, data = chunk.partition(b"\r\n\r\n")
        if not sep:
            continue
        data = data.removesuffix(b"\r\n")
        name, filename, content_type = _part_headers(head.decode("utf-8", errors="replace"))
        if name is not None:
            parts.append((name, Upload(data, filename, content_type)))
    return parts


def _part_headers(head: str) -> tuple[str | None, str | None, str | None]:
    name: str | None = None
    filename: str | None = None
    content_type: str | None = None
    for line in head.split("\r\n"):
        key, _, value = line.partition(":")
        key = key.strip().lower()
        if key == "content-type":
            content_type = value.strip()
        elif key == "content-disposition":
            for field in _split_params(value)[1:]:
                attr, _, raw = field.partition("=")
                attr = attr.strip().lower()
                raw = raw.strip()
                if raw.startswith('"') and raw.endswith('"') and len(raw) >= 2:
                    raw = raw[1:-1].replace('\\"', '"').replace("%22", '"')
                if attr == "name":
                    name = raw
                elif attr == "filename":
                    filename = raw
    return name, filename, content_type


def _split_params(value: str) -> list[str]:
    """Split a header value on semicolons that are outside quotes."""
    fields: list[str] = []
    current: list[str] = []
    quoted = False
    for char in value:
        if char == '"':
            quoted = not quoted
        if char == ";" and not quoted:
            fields.append("".join(current))
            current = []
        else:
            current.append(char)
    fields.append("".join(current))
    return fields
