"""Keys, keyed hashes, encrypted reply routes and receipt codes.

Principle 4 of the design ("anonymity by construction"): tip rows never hold a platform
identity. What the bot needs instead is derived here from the server secret:

* a keyed hash of the sender for drafts and flood counters (cannot be reversed or joined
  with platform data without the secret),
* an encrypted route (channel + chat id) so a tipster can be answered until retention deletes it,
* receipt codes the citizen keeps; the database stores only their keyed hash.

The secret can be rotated (docs/key-rotation.md): the keyring holds the current secret, used for
everything new, and previous secrets, kept for reading only. Each secret has a short public key
id; route tokens carry it, so a route decrypts under the key that made it.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass
from enum import IntEnum
from typing import Protocol

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

__all__ = [
    "CROCKFORD_ALPHABET",
    "KEY_ID_BYTES",
    "RECEIPT_CODE_BITS",
    "RECEIPT_CODE_LENGTH",
    "SHORT_ID_LENGTH",
    "Keyring",
    "OpenedRoute",
    "RouteError",
    "RoutePurpose",
    "format_receipt_code",
    "new_receipt_code",
    "new_short_id",
    "normalize_receipt_code",
    "parse_secret_list",
]

# Crockford base32: digits and upper-case letters minus I, L, O (confusable with 1 and 0)
# and U (avoids accidental obscenity). 32 symbols, so each one carries exactly 5 bits.
CROCKFORD_ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
_SYMBOL_BITS = 5
RECEIPT_CODE_LENGTH = 12
RECEIPT_CODE_BITS = RECEIPT_CODE_LENGTH * _SYMBOL_BITS  # 60 bits: unguessable by brute force
_RECEIPT_GROUP = 4
SHORT_ID_LENGTH = 6
_SHORT_ID_PREFIX = "T-"

# Letters people type for digits when copying a code; Crockford decodes them leniently.
_CONFUSABLES = str.maketrans({"O": "0", "I": "1", "L": "1"})
# Separators people (and phone keyboards, autocorrect) put between groups.
_SEPARATORS = frozenset(" -_\u2010\u2011\u2012\u2013\u2014\u2015\u2212")
_ALPHABET_SET = frozenset(CROCKFORD_ALPHABET)

# HKDF info labels: distinct labels give cryptographically independent subkeys, so a leak or
# misuse of one (e.g. flood keys exposed in logs) says nothing about the others.
_INFO_ROUTE = b"tinbao/v1/route-encryption"
_INFO_FLOOD = b"tinbao/v1/flood-user-key"
_INFO_RECEIPT = b"tinbao/v1/receipt-code-hash"
# Platform message ids of webhook deliveries, hashed to spot a repeat (Zalo retries after 2 s):
# their own key, so the short-lived dedupe rows join nothing else.
_INFO_INBOUND = b"tinbao/v1/inbound-message-id"
# Platform credentials at rest (Zalo OA's access and refresh tokens): a database dump alone
# must not let anyone speak as the police's Official Account.
_INFO_CREDENTIALS = b"tinbao/v1/platform-credentials"
_CREDENTIALS_AAD = b"tinbao-credentials"
# Network addresses of console logins, hashed for the per-address throttle: police addresses,
# never a citizen's, and their own key so the counters join nothing else.
_INFO_ADDRESS = b"tinbao/v1/console-login-address"
# The key id is published (in every route token, in `tip.receipt_key_id`, in CLI output): its own
# label keeps it independent of the three secret subkeys, so showing it reveals none of them.
_INFO_KEY_ID = b"tinbao/v1/key-id"
# Fixed salt: the secret is the only entropy source, the salt just domain-separates tinbao.
_HKDF_SALT = b"tinbao-keyring"

# Route token layouts:
#   version 1: 0x01 | 12-byte nonce | AES-GCM ciphertext+tag (before key rotation existed; no
#              key id, so it is tried under every known key; still read, never written)
#   version 2: 0x02 | 4-byte key id | 12-byte nonce | AES-GCM ciphertext+tag (one route key
#              for every table; still read, never written)
#   version 3: 0x03 | 4-byte key id | 1-byte purpose | 12-byte nonce | AES-GCM ciphertext+tag,
#              under the purpose's own subkey: the table that keeps the route
_ROUTE_V1 = 1
_ROUTE_V2 = 2
_ROUTE_V3 = 3
# 32 bits tell a handful of configured secrets apart; a clash is refused at start-up.
KEY_ID_BYTES = 4
_NONCE_BYTES = 12
_TAG_BYTES = 16
# Bound into the tag so a token cannot be replayed as some other AES-GCM payload. Version 2
# also binds its header (version and key id), so the key id cannot be swapped undetected.
_ROUTE_AAD = b"tinbao-route"
# Unit separator: cannot appear in a channel name, so splitting is unambiguous.
_ROUTE_SEP = "\x1f"


class RouteError(ValueError):
    """An encrypted route could not be decrypted (tampered, truncated or foreign key)."""


class RoutePurpose(IntEnum):
    """Which table keeps a route: each has its own subkey, so no two tables share a key or a
    ciphertext, and a leaked subkey opens one table's routes only (DESIGN principle 4)."""

    DRAFT = 1  # conversationdraft.route
    TIP = 2  # tip.reply_route (and the outbox rows that answer the tipster, see docs)
    SUBSCRIBER = 3  # subscriber.route
    OUTBOX = 4  # outbox rows written with a route of their own (receipts, expiry notices)


_INFO_ROUTE_PURPOSE = {
    RoutePurpose.DRAFT: b"tinbao/v3/route/draft",
    RoutePurpose.TIP: b"tinbao/v3/route/tip",
    RoutePurpose.SUBSCRIBER: b"tinbao/v3/route/subscriber",
    RoutePurpose.OUTBOX: b"tinbao/v3/route/outbox",
}


class _Secret(Protocol):
    """What a pydantic SecretStr offers: the value only on request."""

    def get_secret_value(self) -> str:
        """Return the secret itself."""
        ...


class _KeySettings(Protocol):
    """The two settings a keyring is built from."""

    @property
    def secret_key(self) -> _Secret:
        """TINBAO_SECRET_KEY."""
        ...

    @property
    def previous_secret_keys(self) -> _Secret:
        """TINBAO_PREVIOUS_SECRET_KEYS."""
        ...


@dataclass(frozen=True)
class OpenedRoute:
    """A decrypted route and what it was encrypted with."""

    channel: str
    chat_id: str
    key_id: str  # hex id of the secret that opened the token
    version: int
    purpose: RoutePurpose | None = None  # None: a version 1 or 2 token (one key for all)


def _derive(secret: bytes, info: bytes) -> bytes:
    """Derive one 32-byte subkey from the server secret."""
    hkdf = HKDF(algorithm=hashes.SHA256(), length=32, salt=_HKDF_SALT, info=info)
    return hkdf.derive(secret)


def parse_secret_list(text: str) -> list[str]:
    """Split a comma-separated list of secrets, dropping blanks (TINBAO_PREVIOUS_SECRET_KEYS)."""
    return [part.strip() for part in text.split(",") if part.strip()]


class _Key:
    """The subkeys of one secret."""

    def __init__(self, secret: str) -> None:
        """Derive the key id and the route, flood and receipt subkeys from ``secret``."""
        if not secret:
            raise ValueError("the server secret must not be empty")
        raw = secret.encode("utf-8")
        self.key_id = _derive(raw, _INFO_KEY_ID)[:KEY_ID_BYTES]
        self.route = AESGCM(_derive(raw, _INFO_ROUTE))  # versions 1 and 2: read only
        self.routes = {
            purpose: AESGCM(_derive(raw, info)) for purpose, info in _INFO_ROUTE_PURPOSE.items()
        }
        self.flood_key = _derive(raw, _INFO_FLOOD)
        self.receipt_key = _derive(raw, _INFO_RECEIPT)
        self.inbound_key = _derive(raw, _INFO_INBOUND)
        self.credentials = AESGCM(_derive(raw, _INFO_CREDENTIALS))
        self.address_key = _derive(raw, _INFO_ADDRESS)

    def user_key(self, channel: str, user_id: int | str) -> str:
        """HMAC of channel:user id under this secret."""
        message = f"{channel}:{user_id}".encode()
        return hmac.new(self.flood_key, message, hashlib.sha256).hexdigest()

    def receipt_hash(self, normalized: str) -> str:
        """HMAC of a normalized receipt code under this secret."""
        return hmac.new(self.receipt_key, normalized.encode("ascii"), hashlib.sha256).hexdigest()


class Keyring:
    """Subkeys derived from the server secret, one per purpose; previous secrets for reading."""

    def __init__(self, secret: str, previous: Iterable[str] = ()) -> None:
        """Derive the subkeys of ``secret`` (used for everything new) and of ``previous`` ones."""
        self._current = _Key(secret)
        # A previous secret equal to the current one adds nothing: an operator who set both
        # during a rotation should not be refused for it.
        olds = [_Key(old) for old in dict.fromkeys(previous) if old and old != secret]
        self._previous = tuple(olds)
        self._by_id: dict[bytes, _Key] = {}
        for key in (self._current, *self._previous):
            if key.key_id in self._by_id:
                raise ValueError(
                    f"two configured secrets share the key id {key.key_id.hex()}; "
                    "generate another new secret"
                )
            self._by_id[key.key_id] = key

    @classmethod
    def from_settings(cls, settings: _KeySettings) -> Keyring:
        """Build the keyring from TINBAO_SECRET_KEY and TINBAO_PREVIOUS_SECRET_KEYS."""
        return cls(
            settings.secret_key.get_secret_value(),
            parse_secret_list(settings.previous_secret_keys.get_secret_value()),
        )

    def __repr__(self) -> str:
        """Never show key material, even in debug logs or tracebacks."""
        return "Keyring(<redacted>)"

    @property
    def key_id(self) -> str:
        """Hex id of the current secret (public: it identifies the key, reveals nothing)."""
        return self._current.key_id.hex()

    @property
    def previous_key_ids(self) -> list[str]:
        """Hex ids of the previous secrets, in the order they were configured."""
        return [key.key_id.hex() for key in self._previous]

    @property
    def has_previous(self) -> bool:
        """Whether previous secrets are configured (lookups then also try them)."""
        return bool(self._previous)

    def user_key(self, channel: str, user_id: int | str) -> str:
        """Return the keyed, irreversible hash identifying a sender for drafts and flood limits."""
        return self._current.user_key(channel, user_id)

    def previous_user_keys(self, channel: str, user_id: int | str) -> list[str]:
        """The same sender's hash under each previous secret (rows written before a rotation)."""
        return [key.user_key(channel, user_id) for key in self._previous]

    def user_key_id(self, stored: str, channel: str, user_id: int | str) -> str | None:
        """The id of the secret under which ``stored`` is this sender's hash, or None."""
        for key in (self._current, *self._previous):
            if hmac.compare_digest(stored, key.user_key(channel, user_id)):
                return key.key_id.hex()
        return None

    def encrypt_route(self, channel: str, chat_id: int | str, *, purpose: RoutePurpose) -> bytes:
        """Encrypt a route (channel, chat id) for one table: the current key's subkey for that
        purpose, a fresh nonce, so the same chat never gives the same bytes twice."""
        if not channel or _ROUTE_SEP in channel:
            raise ValueError(f"invalid channel name: {channel!r}")
        plaintext = f"{channel}{_ROUTE_SEP}{chat_id}".encode()
        header = bytes([_ROUTE_V3]) + self._current.key_id + bytes([purpose])
        nonce = os.urandom(_NONCE_BYTES)
        sealed = self._current.routes[purpose].encrypt(nonce, plaintext, _ROUTE_AAD + header)
        return header + nonce + sealed

    def decrypt_route(self, token: bytes, purpose: RoutePurpose | None = None) -> tuple[str, str]:
        """Decrypt a route token into (channel, chat_id); raise RouteError if it is not genuine
        (or, with `purpose`, was made for another table)."""
        opened = self.open_route(token, purpose)
        return opened.channel, opened.chat_id

    def open_route(self, token: bytes, purpose: RoutePurpose | None = None) -> OpenedRoute:
        """Decrypt a route token and say which key opened it; raise RouteError if none can.

        With `purpose`, a version 3 token made for another table is refused: a subscriber's
        route cannot be passed off as a tip's. Version 1 and 2 tokens predate purposes.
        """
        token = bytes(token)  # the database driver may hand back memoryview
        if not token:
            raise RouteError("route token is too short")
        if token[0] == _ROUTE_V3:
            opened = self._open_v3(token)
            if purpose is not None and opened.purpose != purpose:
                raise RouteError(f"route token made for {opened.purpose!r}, not {purpose!r}")
            return opened
        if token[0] == _ROUTE_V2:
            return self._open_v2(token)
        if token[0] == _ROUTE_V1:
            return self._open_v1(token)
        raise RouteError(f"unknown route token version {token[0]}")

    def route_is_current(self, token: bytes, purpose: RoutePurpose) -> bool:
        """Whether a token is already what `encrypt_route` makes now for `purpose` (version 3,
        current key, that purpose), judged from its header alone."""
        token = bytes(token)
        header = bytes([_ROUTE_V3]) + self._current.key_id + bytes([purpose])
        return token.startswith(header)

    def route_key_id(self, token: bytes) -> str | None:
        """The key id a version 2 or 3 token names, without decrypting it (None for version 1)."""
        token = bytes(token)
        if len(token) > KEY_ID_BYTES and token[0] in (_ROUTE_V2, _ROUTE_V3):
            return token[1 : 1 + KEY_ID_BYTES].hex()
        return None

    def reencrypt_route(self, token: bytes, purpose: RoutePurpose) -> bytes | None:
        """A fresh token for `purpose` under the current key, or None if ``token`` already is
        one; may raise RouteError."""
        if self.route_is_current(token, purpose):
            self.open_route(token, purpose)  # genuine, not merely a plausible header
            return None
        opened = self.open_route(token)
        return self.encrypt_route(opened.channel, opened.chat_id, purpose=purpose)

    def _open_v3(self, token: bytes) -> OpenedRoute:
        """Open a version 3 token with the key and the purpose subkey its header names."""
        size = 1 + KEY_ID_BYTES + 1
        if len(token) < size + _NONCE_BYTES + _TAG_BYTES:
            raise RouteError("route token is too short")
        header = token[:size]
        key = self._by_id.get(header[1 : 1 + KEY_ID_BYTES])
        if key is None:
            raise RouteError(
                f"route token made with key id {header[1:-1].hex()}, which is not configured"
            )
        try:
            purpose = RoutePurpose(header[-1])
        except ValueError as exc:
            raise RouteError(f"unknown route purpose {header[-1]}") from exc
        nonce = token[size : size + _NONCE_BYTES]
        try:
            plaintext = key.routes[purpose].decrypt(
                nonce, token[size + _NONCE_BYTES :], _ROUTE_AAD + header
            )
        except InvalidTag as exc:
            raise RouteError("route token failed authentication (tampered or wrong key)") from exc
        return _opened(plaintext, key, _ROUTE_V3, purpose)

    def _open_v2(self, token: bytes) -> OpenedRoute:
        """Open a version-2 token with the key its header names."""
        if len(token) < 1 + KEY_ID_BYTES + _NONCE_BYTES + _TAG_BYTES:
            raise RouteError("route token is too short")
        header = token[: 1 + KEY_ID_BYTES]
        key = self._by_id.get(header[1:])
        if key is None:
            raise RouteError(
                f"route token made with key id {header[1:].hex()}, which is not configured"
            )
        nonce = token[len(header) : len(header) + _NONCE_BYTES]
        try:
            plaintext = key.route.decrypt(
                nonce, token[len(header) + _NONCE_BYTES :], _ROUTE_AAD + header
            )
        except InvalidTag as exc:
            raise RouteError("route token failed authentication (tampered or wrong key)") from exc
        return _opened(plaintext, key, _ROUTE_V2)

    def _open_v1(self, token: bytes) -> OpenedRoute:
        """Open a version-1 token: no key id, so try the current key, then the previous ones."""
        if len(token) < 1 + _NONCE_BYTES + _TAG_BYTES:
            raise RouteError("route token is too short")
        nonce = token[1 : 1 + _NONCE_BYTES]
        for key in (self._current, *self._previous):
            try:
                plaintext = key.route.decrypt(nonce, token[1 + _NONCE_BYTES :], _ROUTE_AAD)
            except InvalidTag:
                continue  # AES-GCM authenticates: a wrong key fails here, never decrypts wrongly
            return _opened(plaintext, key, _ROUTE_V1)
        raise RouteError("route token failed authentication (tampered or wrong key)")

    def seal_credential(self, value: str) -> bytes:
        """Encrypt a platform credential: key id | nonce | ciphertext (current key)."""
        key_id = self._current.key_id
        nonce = os.urandom(_NONCE_BYTES)
        sealed = self._current.credentials.encrypt(nonce, value.encode(), _CREDENTIALS_AAD + key_id)
        return key_id + nonce + sealed

    def open_credential(self, token: bytes) -> str:
        """Decrypt a sealed credential with the key its header names; RouteError if none can."""
        token = bytes(token)
        key = self._by_id.get(token[:KEY_ID_BYTES])
        if key is None or len(token) < KEY_ID_BYTES + _NONCE_BYTES + _TAG_BYTES:
            raise RouteError("credential sealed with a key that is not configured")
        nonce = token[KEY_ID_BYTES : KEY_ID_BYTES + _NONCE_BYTES]
        aad = _CREDENTIALS_AAD + token[:KEY_ID_BYTES]
        try:
            return key.credentials.decrypt(
                nonce, token[KEY_ID_BYTES + _NONCE_BYTES :], aad
            ).decode()
        except InvalidTag as exc:
            raise RouteError("credential failed authentication (tampered or wrong key)") from exc

    def inbound_key(self, channel: str, message_id: str) -> str:
        """HMAC of a platform message id, to store a webhook delivery once (current key only)."""
        message = f"{channel}:{message_id}".encode()
        return hmac.new(self._current.inbound_key, message, hashlib.sha256).hexdigest()

    def address_key(self, address: str) -> str:
        """HMAC of a console client's network address, for the login throttle (current key)."""
        return hmac.new(self._current.address_key, address.encode(), hashlib.sha256).hexdigest()

    def receipt_hash(self, code: str) -> str:
        """Return the keyed hash of a receipt code (any accepted spelling); store only this."""
        return self._current.receipt_hash(_normalized_or_raise(code))

    def receipt_hashes(self, code: str) -> list[str]:
        """The code's hash under every known key, current first: look a tip up with all of them."""
        normalized = _normalized_or_raise(code)
        return [key.receipt_hash(normalized) for key in (self._current, *self._previous)]


def _opened(
    plaintext: bytes, key: _Key, version: int, purpose: RoutePurpose | None = None
) -> OpenedRoute:
    """Split a decrypted route payload."""
    channel, sep, chat_id = plaintext.decode("utf-8").partition(_ROUTE_SEP)
    if not sep or not channel:
        raise RouteError("route token payload is malformed")
    return OpenedRoute(channel, chat_id, key.key_id.hex(), version, purpose)


def _normalized_or_raise(code: str) -> str:
    """The canonical form of a receipt code, or ValueError."""
    normalized = normalize_receipt_code(code)
    if normalized is None:
        raise ValueError("not a receipt code")
    return normalized


def _random_symbols(count: int) -> str:
    """Return ``count`` Crockford symbols drawn from the OS CSPRNG."""
    return "".join(secrets.choice(CROCKFORD_ALPHABET) for _ in range(count))


def new_receipt_code() -> str:
    """Return a fresh receipt code with 60 random bits, formatted like "7K3Q-XW2M-9TDA"."""
    return format_receipt_code(_random_symbols(RECEIPT_CODE_LENGTH))


def normalize_receipt_code(text: str) -> str | None:
    """Return the canonical 12-symbol form of a typed receipt code, or None if it is not one."""
    # NFKC folds full-width letters and digits that some phone keyboards produce.
    folded = unicodedata.normalize("NFKC", text).strip().upper()
    compact = "".join(ch for ch in folded if ch not in _SEPARATORS and not ch.isspace())
    compact = compact.translate(_CONFUSABLES)
    if len(compact) != RECEIPT_CODE_LENGTH:
        return None
    if not all(ch in _ALPHABET_SET for ch in compact):
        return None
    return compact


def format_receipt_code(normalized: str) -> str:
    """Insert the dashes into a normalized receipt code ("7K3QXW2M9TDA" -> "7K3Q-XW2M-9TDA")."""
    if len(normalized) != RECEIPT_CODE_LENGTH or not set(normalized) <= _ALPHABET_SET:
        raise ValueError("expected a normalized 12-symbol receipt code")
    return "-".join(
        normalized[i : i + _RECEIPT_GROUP] for i in range(0, RECEIPT_CODE_LENGTH, _RECEIPT_GROUP)
    )


def new_short_id() -> str:
    """Return a short tip id for police such as "T-4KQ9ZM" (independent of the receipt code)."""
    # 30 random bits: short enough to read over the phone. Not unique by itself, so the
    # database must keep a unique constraint and the caller retry on a clash.
    return _SHORT_ID_PREFIX + _random_symbols(SHORT_ID_LENGTH)
