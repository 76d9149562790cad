"""Keys, encrypted routes and receipt codes (design principle 4)."""

from __future__ import annotations

import math
import re
from pathlib import Path

import pytest

from bot.services.anonymity import (
    CROCKFORD_ALPHABET,
    RECEIPT_CODE_BITS,
    RECEIPT_CODE_LENGTH,
    Keyring,
    RouteError,
    RoutePurpose,
    format_receipt_code,
    new_receipt_code,
    new_short_id,
    normalize_receipt_code,
    parse_secret_list,
)
from tinbao.settings import Settings

SECRET = "test-secret-with-enough-entropy-0123456789"
P = RoutePurpose.TIP  # the purpose of routes in tests about one route
CODE_RE = re.compile(r"^[0-9A-HJKMNP-TV-Z]{4}-[0-9A-HJKMNP-TV-Z]{4}-[0-9A-HJKMNP-TV-Z]{4}$")


@pytest.fixture
def keyring() -> Keyring:
    return Keyring(SECRET)


# --- keyring -----------------------------------------------------------------------------


def test_empty_secret_is_refused() -> None:
    with pytest.raises(ValueError):
        Keyring("")


def test_repr_hides_key_material(keyring: Keyring) -> None:
    assert SECRET not in repr(keyring)
    assert "redacted" in repr(keyring)


def test_user_key_is_stable_hex_and_not_the_id(keyring: Keyring) -> None:
    key = keyring.user_key("telegram", 123456789)
    assert re.fullmatch(r"[0-9a-f]{64}", key)
    assert key == keyring.user_key("telegram", "123456789")  # int and str ids agree
    assert key == Keyring(SECRET).user_key("telegram", 123456789)  # survives restarts
    assert "123456789" not in key


def test_user_key_separates_channels_and_users(keyring: Keyring) -> None:
    keys = {
        keyring.user_key("telegram", 1),
        keyring.user_key("telegram", 2),
        keyring.user_key("zalo", 1),
    }
    assert len(keys) == 3


def test_different_secrets_give_different_keys(keyring: Keyring) -> None:
    other = Keyring(SECRET + "x")
    assert keyring.user_key("telegram", 42) != other.user_key("telegram", 42)
    assert keyring.receipt_hash("7K3Q-XW2M-9TDA") != other.receipt_hash("7K3Q-XW2M-9TDA")
    with pytest.raises(RouteError):
        other.decrypt_route(keyring.encrypt_route("telegram", 42, purpose=P))


def test_subkeys_are_independent(keyring: Keyring) -> None:
    # Distinct HKDF labels: none of the purpose keys equals another or the secret itself.
    flood, receipt = keyring._current.flood_key, keyring._current.receipt_key
    key_id = keyring._current.key_id
    assert flood != receipt
    assert len(flood) == len(receipt) == 32
    assert SECRET.encode() not in (flood, receipt)
    assert key_id not in (flood[:4], receipt[:4])  # the public key id is its own derivation


# --- routes ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("channel", "chat_id", "expected"),
    [
        ("telegram", 123456789, "123456789"),
        ("telegram", -1001234567890, "-1001234567890"),
        ("zalo", "abc:def\x1fxyz", "abc:def\x1fxyz"),
    ],
)
def test_route_round_trip(
    keyring: Keyring, channel: str, chat_id: int | str, expected: str
) -> None:
    token = keyring.encrypt_route(channel, chat_id, purpose=P)
    assert isinstance(token, bytes)
    assert keyring.decrypt_route(token) == (channel, expected)
    assert Keyring(SECRET).decrypt_route(token) == (channel, expected)


def test_route_accepts_memoryview(keyring: Keyring) -> None:
    token = keyring.encrypt_route("telegram", 7, purpose=P)
    assert keyring.decrypt_route(memoryview(token)) == ("telegram", "7")  # type: ignore[arg-type]


def test_route_encryption_is_randomized_and_opaque(keyring: Keyring) -> None:
    first = keyring.encrypt_route("telegram", 123456789, purpose=P)
    second = keyring.encrypt_route("telegram", 123456789, purpose=P)
    assert first != second
    assert b"123456789" not in first
    assert b"telegram" not in first


def test_route_tamper_is_detected(keyring: Keyring) -> None:
    token = keyring.encrypt_route("telegram", 123456789, purpose=P)
    for position in range(len(token)):
        tampered = bytearray(token)
        tampered[position] ^= 0x01
        with pytest.raises(RouteError):
            keyring.decrypt_route(bytes(tampered))


@pytest.mark.parametrize("token", [b"", b"\x01", b"\x01" + bytes(27), b"\x02" + bytes(40)])
def test_route_garbage_is_rejected(keyring: Keyring, token: bytes) -> None:
    with pytest.raises(RouteError):
        keyring.decrypt_route(token)


def test_route_truncation_is_detected(keyring: Keyring) -> None:
    token = keyring.encrypt_route("telegram", 123456789, purpose=P)
    with pytest.raises(RouteError):
        keyring.decrypt_route(token[:-1])


def test_route_error_is_a_value_error() -> None:
    assert issubclass(RouteError, ValueError)


@pytest.mark.parametrize("channel", ["", "tele\x1fgram"])
def test_route_refuses_bad_channel(keyring: Keyring, channel: str) -> None:
    with pytest.raises(ValueError):
        keyring.encrypt_route(channel, 1, purpose=P)


# --- key rotation ------------------------------------------------------------------------

OLD = "previous-secret-with-enough-entropy-9876543210"
# Written by the keyring before key ids existed (version 1), with SECRET: databases hold these.
V1_TOKEN = bytes.fromhex(
    "011d73b42b036c22c81b650a48084401594ce671866bc6747240755263fd06fd4792aef6167afd53d4e3312ddf30ef"
)
# The same secret's hash of receipt 7K3Q-XW2M-9TDA and user key of telegram:42, back then.
V1_RECEIPT_HASH = "c83725e4363c1be74b48b0f48b38f931d18b814f9082413340ca239805a21a6f"
V1_USER_KEY = "c7bbf016a5a93b073a7ca06a99192fa45f53268e79f5725cf51c341536d08382"


def test_hashes_did_not_change_with_key_ids(keyring: Keyring) -> None:
    # Stored keys and receipt hashes stay valid: only route tokens got a new format.
    assert keyring.receipt_hash("7K3Q-XW2M-9TDA") == V1_RECEIPT_HASH
    assert keyring.user_key("telegram", 42) == V1_USER_KEY


def test_version_1_tokens_still_decrypt(keyring: Keyring) -> None:
    assert keyring.decrypt_route(V1_TOKEN) == ("telegram", "123456789")
    opened = keyring.open_route(V1_TOKEN)
    assert (opened.version, opened.key_id) == (1, keyring.key_id)
    assert keyring.route_key_id(V1_TOKEN) is None


def test_version_1_tokens_decrypt_under_a_previous_key() -> None:
    rotated = Keyring(OLD, previous=[SECRET])
    opened = rotated.open_route(V1_TOKEN)
    assert (opened.channel, opened.chat_id) == ("telegram", "123456789")
    assert opened.key_id == Keyring(SECRET).key_id != rotated.key_id
    with pytest.raises(RouteError):
        Keyring(OLD).decrypt_route(V1_TOKEN)


def test_version_3_tokens_carry_the_key_id_and_the_purpose(keyring: Keyring) -> None:
    token = keyring.encrypt_route("telegram", 123456789, purpose=P)
    assert token[0] == 3 and token[5] == P
    assert token[1:5].hex() == keyring.key_id == keyring.route_key_id(token)
    assert re.fullmatch(r"[0-9a-f]{8}", keyring.key_id)
    assert keyring.key_id == Keyring(SECRET).key_id  # stable across restarts
    assert keyring.key_id != Keyring(OLD).key_id
    assert SECRET.encode()[:4].hex() != keyring.key_id


def test_a_previous_key_decrypts_and_the_current_one_encrypts() -> None:
    old = Keyring(OLD)
    token = old.encrypt_route("zalo", "u-1", purpose=P)
    rotated = Keyring(SECRET, previous=[OLD])
    assert rotated.decrypt_route(token) == ("zalo", "u-1")
    assert rotated.open_route(token).key_id == old.key_id
    assert rotated.route_key_id(rotated.encrypt_route("zalo", "u-1", purpose=P)) == rotated.key_id
    assert rotated.previous_key_ids == [old.key_id]
    fresh = rotated.reencrypt_route(token, purpose=P)
    assert fresh is not None and Keyring(SECRET).decrypt_route(fresh) == ("zalo", "u-1")
    assert rotated.reencrypt_route(fresh, purpose=P) is None  # already current
    assert rotated.reencrypt_route(V1_TOKEN, purpose=P) is not None  # version 1 is never current


def test_an_unknown_key_id_raises_route_error(keyring: Keyring) -> None:
    token = Keyring(OLD).encrypt_route("telegram", 1, purpose=P)
    with pytest.raises(RouteError, match="not configured"):
        keyring.decrypt_route(token)
    # Dropping the previous key makes its tokens unreadable, as it should.
    with pytest.raises(RouteError):
        Keyring(SECRET, previous=[]).decrypt_route(token)


def test_the_key_id_is_authenticated() -> None:
    # Swapping the key id for another configured key's must not pass as a valid token.
    rotated = Keyring(SECRET, previous=[OLD])
    token = bytearray(rotated.encrypt_route("telegram", 1, purpose=P))
    token[1:5] = bytes.fromhex(Keyring(OLD).key_id)
    with pytest.raises(RouteError):
        rotated.decrypt_route(bytes(token))


def test_receipt_found_under_a_previous_key() -> None:
    rotated = Keyring(OLD, previous=[SECRET])
    hashes = rotated.receipt_hashes("7k3q xw2m 9tda")
    assert hashes == [rotated.receipt_hash("7K3Q-XW2M-9TDA"), V1_RECEIPT_HASH]
    assert Keyring(OLD).receipt_hashes("7K3Q-XW2M-9TDA") == hashes[:1]
    with pytest.raises(ValueError):
        rotated.receipt_hashes("not a code")


def test_user_keys_under_previous_secrets() -> None:
    rotated = Keyring(OLD, previous=[SECRET])
    assert rotated.previous_user_keys("telegram", 42) == [V1_USER_KEY]
    assert rotated.user_key_id(V1_USER_KEY, "telegram", 42) == Keyring(SECRET).key_id
    assert rotated.user_key_id(rotated.user_key("telegram", 42), "telegram", 42) == rotated.key_id
    assert rotated.user_key_id(V1_USER_KEY, "telegram", 43) is None
    assert not Keyring(OLD).has_previous and rotated.has_previous


def test_previous_secrets_are_parsed_and_deduplicated() -> None:
    assert parse_secret_list(" a , ,b,") == ["a", "b"]
    assert parse_secret_list("") == []
    # The current secret listed as previous too (mid-rotation typo) is ignored, not refused.
    assert Keyring(SECRET, previous=[SECRET, OLD, OLD]).previous_key_ids == [Keyring(OLD).key_id]


def test_keyring_from_settings(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.chdir(tmp_path)  # no stray .env
    monkeypatch.setenv("TINBAO_SECRET_KEY", OLD)
    monkeypatch.setenv("TINBAO_PREVIOUS_SECRET_KEYS", f"{SECRET}, another-old-secret-0123456789")
    built = Keyring.from_settings(Settings())
    assert built.key_id == Keyring(OLD).key_id
    assert built.previous_key_ids == [
        Keyring(SECRET).key_id,
        Keyring("another-old-secret-0123456789").key_id,
    ]
    assert built.decrypt_route(V1_TOKEN) == ("telegram", "123456789")


# --- receipt codes -----------------------------------------------------------------------


def test_new_receipt_code_shape() -> None:
    code = new_receipt_code()
    assert CODE_RE.fullmatch(code), code
    assert normalize_receipt_code(code) == code.replace("-", "")


def test_receipt_codes_are_unique() -> None:
    codes = {new_receipt_code() for _ in range(1000)}
    assert len(codes) == 1000


def test_receipt_code_entropy_by_construction() -> None:
    assert len(set(CROCKFORD_ALPHABET)) == 32
    bits = RECEIPT_CODE_LENGTH * math.log2(len(CROCKFORD_ALPHABET))
    assert bits == RECEIPT_CODE_BITS
    assert bits >= 50


def test_receipt_codes_use_the_whole_alphabet_in_every_position() -> None:
    # A cheap sanity check that symbols are drawn uniformly, not from a biased subset.
    codes = [normalize_receipt_code(new_receipt_code()) for _ in range(2000)]
    for position in range(RECEIPT_CODE_LENGTH):
        seen = {code[position] for code in codes if code}
        assert seen == set(CROCKFORD_ALPHABET)


@pytest.mark.parametrize(
    "typed",
    [
        "7K3Q-XW2M-9TDA",
        "7K3QXW2M9TDA",
        "7k3q xw2m 9tda",
        "  7k3q-xw2m-9tda\n",
        "7K3Q – XW2M — 9TDA",  # dashes from autocorrect
        "７Ｋ３Ｑ－ＸＷ２Ｍ－９ＴＤＡ",  # full-width keyboard
        "7k3q\txw2m\u00a09tda",
    ],
)
def test_normalize_messy_input(typed: str) -> None:
    assert normalize_receipt_code(typed) == "7K3QXW2M9TDA"


@pytest.mark.parametrize(
    ("typed", "expected"),
    [
        ("O0I1-L1o0-il00", "001111001100"),
        ("7K3Q-XW2M-9TDO", "7K3QXW2M9TD0"),
        ("1LIi-0Oo0-AAAA", "11110000AAAA"),
    ],
)
def test_normalize_confusables(typed: str, expected: str) -> None:
    assert normalize_receipt_code(typed) == expected


@pytest.mark.parametrize(
    "typed",
    [
        "",
        "7K3Q-XW2M",  # too short
        "7K3Q-XW2M-9TDA-1",  # too long
        "7K3Q-XW2M-9TDU",  # U is not in the alphabet
        "7K3Q-XW2M-9TD!",
        "7K3Q.XW2M.9TDA",  # only spaces and dashes separate groups
        "7K3Q-XW2M-9TĐA",  # Vietnamese Đ is not a Latin D
        "mã 7K3Q-XW2M-9TDA",
    ],
)
def test_normalize_rejects_non_codes(typed: str) -> None:
    assert normalize_receipt_code(typed) is None


def test_format_receipt_code_round_trip() -> None:
    assert format_receipt_code("7K3QXW2M9TDA") == "7K3Q-XW2M-9TDA"
    code = new_receipt_code()
    normalized = normalize_receipt_code(code)
    assert normalized is not None
    assert format_receipt_code(normalized) == code


@pytest.mark.parametrize("bad", ["7K3Q-XW2M-9TDA", "7K3QXW2M9TD", "7k3qxw2m9tda"])
def test_format_receipt_code_requires_normalized_input(bad: str) -> None:
    with pytest.raises(ValueError):
        format_receipt_code(bad)


def test_receipt_hash_ignores_spelling(keyring: Keyring) -> None:
    digest = keyring.receipt_hash("7K3Q-XW2M-9TDA")
    assert re.fullmatch(r"[0-9a-f]{64}", digest)
    assert keyring.receipt_hash("7k3q xw2m 9tda") == digest
    assert keyring.receipt_hash("7K3QXW2M9TDA") == digest
    assert keyring.receipt_hash("7K3Q-XW2M-9TDB") != digest
    assert "7K3Q" not in digest.upper()


def test_receipt_hash_refuses_non_codes(keyring: Keyring) -> None:
    with pytest.raises(ValueError):
        keyring.receipt_hash("hello")


# --- short ids ---------------------------------------------------------------------------


def test_short_id_shape() -> None:
    short = new_short_id()
    assert re.fullmatch(r"T-[0-9A-HJKMNP-TV-Z]{6}", short), short


def test_short_id_is_random_and_not_the_receipt_code() -> None:
    ids = {new_short_id() for _ in range(1000)}
    assert len(ids) >= 999  # 30 random bits: a clash in 1000 draws is ~1 in 2000
    code = new_receipt_code().replace("-", "")
    assert new_short_id()[2:] not in code


# --- one subkey per table ------------------------------------------------------------------


def _version_2(keyring: Keyring, channel: str, chat_id: str) -> bytes:
    """A token as tinbao wrote them before route purposes (one route key for every table)."""
    header = bytes([2]) + keyring._current.key_id
    nonce = bytes(12)
    plaintext = f"{channel}\x1f{chat_id}".encode()
    return (
        header + nonce + keyring._current.route.encrypt(nonce, plaintext, b"tinbao-route" + header)
    )


def test_each_table_has_its_own_subkey(keyring: Keyring) -> None:
    subkeys = {purpose: keyring._current.routes[purpose] for purpose in RoutePurpose}
    tokens = {p: keyring.encrypt_route("zalo_oa", "u-9", purpose=p) for p in RoutePurpose}
    for purpose, token in tokens.items():
        assert keyring.open_route(token).purpose == purpose
        assert keyring.decrypt_route(token, purpose) == ("zalo_oa", "u-9")
        for other in set(RoutePurpose) - {purpose}:
            with pytest.raises(RouteError, match="made for"):
                keyring.open_route(token, other)
            # Relabelled as another table's: the header is authenticated, the subkey differs.
            relabelled = bytearray(token)
            relabelled[5] = other
            with pytest.raises(RouteError):
                keyring.open_route(bytes(relabelled))
    assert len({id(key) for key in subkeys.values()}) == len(RoutePurpose)


def test_a_subscription_never_copies_the_drafts_bytes(keyring: Keyring) -> None:
    draft = keyring.encrypt_route("telegram", 42, purpose=RoutePurpose.DRAFT)
    subscriber = keyring.encrypt_route(
        *keyring.decrypt_route(draft, RoutePurpose.DRAFT), purpose=RoutePurpose.SUBSCRIBER
    )
    assert subscriber != draft and subscriber[5] == RoutePurpose.SUBSCRIBER
    assert draft[6:18] != subscriber[6:18], "fresh nonce"


def test_version_2_tokens_still_open_and_rotate_into_their_tables_subkey(
    keyring: Keyring,
) -> None:
    legacy = _version_2(keyring, "telegram", "77")
    for purpose in RoutePurpose:
        assert keyring.decrypt_route(legacy, purpose) == ("telegram", "77")
    assert keyring.open_route(legacy).purpose is None
    fresh = keyring.reencrypt_route(legacy, RoutePurpose.SUBSCRIBER)
    assert fresh is not None and keyring.open_route(fresh).purpose == RoutePurpose.SUBSCRIBER
    assert keyring.reencrypt_route(fresh, RoutePurpose.SUBSCRIBER) is None
    assert keyring.reencrypt_route(fresh, RoutePurpose.TIP) is not None
