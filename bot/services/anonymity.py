"""Keys, keyed hashes, encrypted reply routes and receipt codes.

Principle 4 of the design ("anonymity by construction"): tip rows never hold a platform
identity. What the bot needs instead is derived here from the server secret:

* a keyed hash of the sender for drafts and flood counters (cannot be reversed or joined
  with platform data without the secret),
* an encrypted route (channel + chat id) so a tipster can be answered until retention deletes it,
* receipt codes the citizen keeps; the database stores only their keyed hash.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
import unicodedata

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

__all__ = [
    "CROCKFORD_ALPHABET",
    "RECEIPT_CODE_BITS",
    "RECEIPT_CODE_LENGTH",
    "SHORT_ID_LENGTH",
    "Keyring",
    "RouteError",
    "format_receipt_code",
    "new_receipt_code",
    "new_short_id",
    "normalize_receipt_code",
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
# Fixed salt: the secret is the only entropy source, the salt just domain-separates tinbao.
_HKDF_SALT = b"tinbao-keyring"

# Route token layout: version byte | 12-byte nonce | AES-GCM ciphertext+tag.
_ROUTE_VERSION = 1
_NONCE_BYTES = 12
_TAG_BYTES = 16
# Bound into the tag so a token cannot be replayed as some other AES-GCM payload.
_ROUTE_AAD = b"tinbao-route"
# Unit separator: cannot appear in a channel name, so splitting is unambiguous.
_ROUTE_SEP = "\x1f"


class RouteError(ValueError):
    """An encrypted route could not be decrypted (tampered, truncated or foreign key)."""


def _derive(secret: bytes, info: bytes) -> bytes:
    """Derive one 32-byte subkey from the server secret."""
    hkdf = HKDF(algorithm=hashes.SHA256(), length=32, salt=_HKDF_SALT, info=info)
    return hkdf.derive(secret)


class Keyring:
    """Subkeys derived from the server secret, one per purpose."""

    def __init__(self, secret: str) -> None:
        """Derive the route, flood and receipt subkeys from ``secret``."""
        if not secret:
            raise ValueError("the server secret must not be empty")
        raw = secret.encode("utf-8")
        self._route = AESGCM(_derive(raw, _INFO_ROUTE))
        self._flood_key = _derive(raw, _INFO_FLOOD)
        self._receipt_key = _derive(raw, _INFO_RECEIPT)

    def __repr__(self) -> str:
        """Never show key material, even in debug logs or tracebacks."""
        return "Keyring(<redacted>)"

    def user_key(self, channel: str, user_id: int | str) -> str:
        """Return the keyed, irreversible hash identifying a sender for drafts and flood limits."""
        message = f"{channel}:{user_id}".encode()
        return hmac.new(self._flood_key, message, hashlib.sha256).hexdigest()

    def encrypt_route(self, channel: str, chat_id: int | str) -> bytes:
        """Encrypt the reply route (channel, chat id) with a fresh random nonce."""
        if not channel or _ROUTE_SEP in channel:
            raise ValueError(f"invalid channel name: {channel!r}")
        plaintext = f"{channel}{_ROUTE_SEP}{chat_id}".encode()
        nonce = os.urandom(_NONCE_BYTES)
        sealed = self._route.encrypt(nonce, plaintext, _ROUTE_AAD)
        return bytes([_ROUTE_VERSION]) + nonce + sealed

    def decrypt_route(self, token: bytes) -> tuple[str, str]:
        """Decrypt a route token into (channel, chat_id); raise RouteError if it is not genuine."""
        token = bytes(token)  # the database driver may hand back memoryview
        if len(token) < 1 + _NONCE_BYTES + _TAG_BYTES:
            raise RouteError("route token is too short")
        if token[0] != _ROUTE_VERSION:
            raise RouteError(f"unknown route token version {token[0]}")
        nonce = token[1 : 1 + _NONCE_BYTES]
        try:
            plaintext = self._route.decrypt(nonce, token[1 + _NONCE_BYTES :], _ROUTE_AAD)
        except InvalidTag as exc:
            raise RouteError("route token failed authentication (tampered or wrong key)") from exc
        channel, sep, chat_id = plaintext.decode("utf-8").partition(_ROUTE_SEP)
        if not sep or not channel:
            raise RouteError("route token payload is malformed")
        return channel, chat_id

    def receipt_hash(self, code: str) -> str:
        """Return the keyed hash of a receipt code (any accepted spelling); store only this."""
        normalized = normalize_receipt_code(code)
        if normalized is None:
            raise ValueError("not a receipt code")
        return hmac.new(self._receipt_key, normalized.encode("ascii"), hashlib.sha256).hexdigest()


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
