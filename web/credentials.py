"""Passwords (argon2id) and TOTP codes (RFC 6238) of console accounts, and the enrolment QR."""

from __future__ import annotations

import hmac
from datetime import datetime

import pyotp
import segno
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

ISSUER = "tinbao"
TOTP_STEP_SECONDS = 30
# One step either side: a phone clock 30 s off still works; a code is accepted only once anyway.
TOTP_DRIFT_STEPS = 1

# argon2-cffi's defaults are argon2id with RFC 9106's low-memory profile (64 MiB, 3 passes).
_hasher = PasswordHasher()
# Verified when the username is unknown, so an unknown name costs the same time as a known one.
_DUMMY_HASH = _hasher.hash("tinbao: no such account")


def hash_password(password: str) -> str:
    """The argon2id hash to store for a password."""
    return _hasher.hash(password)


def password_matches(stored_hash: str | None, password: str) -> bool:
    """Whether `password` matches the stored hash (None: no account, still spends the time)."""
    try:
        return _hasher.verify(stored_hash or _DUMMY_HASH, password) and stored_hash is not None
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False


def needs_rehash(stored_hash: str) -> bool:
    """Whether a hash was made with weaker parameters than today's (rehash at the next login)."""
    return _hasher.check_needs_rehash(stored_hash)


def new_totp_secret() -> str:
    """A fresh base32 TOTP secret (160 bits)."""
    return pyotp.random_base32(length=32)


def provisioning_uri(secret: str, username: str) -> str:
    """The otpauth:// URI an authenticator app scans."""
    return pyotp.TOTP(secret).provisioning_uri(name=username, issuer_name=ISSUER)


def qr_svg(uri: str) -> str:
    """The URI as an inline SVG QR code (no image files, nothing leaves the server)."""
    return str(segno.make(uri, error="m").svg_inline(scale=5, border=2))


def accepted_step(secret: str, code: str, now: datetime, *, after_step: int) -> int | None:
    """The time step `code` is valid for (near `now`, newer than `after_step`), or None."""
    digits = "".join(ch for ch in code if ch.isdigit())
    if len(digits) != 6:
        return None
    totp = pyotp.TOTP(secret)
    current = totp.timecode(now)
    for step in range(current - TOTP_DRIFT_STEPS, current + TOTP_DRIFT_STEPS + 1):
        if step <= after_step:
            continue  # used already: a code seen once (over a shoulder, in a log) is dead
        if hmac.compare_digest(totp.generate_otp(step), digits):
            return step
    return None
