"""The keyring: AES-256-GCM round trips, key ids, AAD binding, clear errors, blind index, content hash."""

from __future__ import annotations

import hashlib
import hmac
import pickle

import pytest
from hypothesis import given
from hypothesis import strategies as st

from daemon.crypto.keyring import FORMAT_VERSION, Keyring, ciphertext_len, key_id_of, max_overhead
from daemon.db.database import Database
from daemon.errors import CryptoError
from daemon.policy import encrypted_fields
from tests.crypto.support import INDEX_KEY, KEY_A, KEY_B, ring, sample_value

PLAIN = "6767-2293-4172-5169"
COL = "credit_card_num_enc"


def test_format_header_nonce_and_overhead() -> None:
    """A ciphertext is version byte, key id (length-prefixed), 12-byte nonce, ciphertext + 16-byte tag."""
    blob = ring(a=KEY_A).encrypt(PLAIN, column=COL, record_id=7)
    assert blob[0] == FORMAT_VERSION and blob[1] == 1 and blob[2:3] == b"a"
    assert len(blob) == ciphertext_len(len(PLAIN), "a") == 1 + 1 + 1 + 12 + len(PLAIN) + 16
    assert key_id_of(blob) == "a"
    assert max_overhead() == 46
    assert PLAIN.encode() not in blob


def test_fresh_nonce_every_time() -> None:
    """Encrypting the same value twice gives different ciphertexts (random 96-bit nonce)."""
    keyring = ring()
    blobs = {keyring.encrypt(PLAIN, column=COL, record_id=1) for _ in range(50)}
    assert len(blobs) == 50
    assert len({b[3:15] for b in blobs}) == 50


async def test_round_trip_every_encrypted_field_through_the_db(own_db: Database) -> None:
    """Every encrypted field of the policy, typical and longest values (ASCII and 4-byte UTF-8), longest key id:
    stored in the real columns and read back."""
    keyring = Keyring({"k-0123456789abcd": KEY_A}, active_key_id="k-0123456789abcd", index_key=INDEX_KEY)
    fields = encrypted_fields()
    columns = [f.enc_column for f in fields]
    rows = {}
    for record_id, longest, wide in ((1, False, False), (2, True, False), (3, True, True)):
        values = {f.enc_column: sample_value(f, longest=longest, wide=wide) for f in fields}
        rows[record_id] = values
        blobs = [keyring.encrypt(values[c], column=c, record_id=record_id) for c in columns]
        await own_db.execute(
            f"INSERT INTO customers (id, {', '.join(columns)}, content_hash) "
            f"VALUES (%s, {', '.join(['%s'] * len(columns))}, %s)",
            [record_id, *blobs, keyring.content_hash(b"x")],
        )
    stored = await own_db.fetch_all(f"SELECT id, {', '.join(columns)} FROM customers ORDER BY id")
    assert [r[0] for r in stored] == [1, 2, 3]
    for row in stored:
        record_id = row[0]
        for column, blob in zip(columns, row[1:], strict=True):
            assert keyring.decrypt(blob, column=column, record_id=record_id) == rows[record_id][column]


@pytest.mark.parametrize("text", ["", "ñandú ☃ 𝄞", "x" * 5000])
def test_round_trip_any_text(text: str) -> None:
    """Empty, non-ASCII and long text survive the round trip."""
    keyring = ring()
    assert keyring.decrypt(keyring.encrypt(text, column=COL, record_id=3), column=COL, record_id=3) == text


def test_every_key_decrypts_only_the_active_one_encrypts() -> None:
    """Values written under an older key stay readable; new writes use the active key."""
    old = ring("a", a=KEY_A)
    blob_old = old.encrypt(PLAIN, column=COL, record_id=9)
    both = ring("b", a=KEY_A, b=KEY_B)
    assert both.decrypt(blob_old, column=COL, record_id=9) == PLAIN
    blob_new = both.encrypt(PLAIN, column=COL, record_id=9)
    assert key_id_of(blob_new) == "b"
    assert key_id_of(both.reencrypt(blob_old, column=COL, record_id=9)) == "b"
    assert both.key_ids == ("a", "b") and both.active_key_id == "b"


def test_no_active_key_refuses_to_encrypt_but_decrypts() -> None:
    """An API-mode keyring (no active key) decrypts; encrypt raises CryptoError."""
    blob = ring().encrypt(PLAIN, column=COL, record_id=1)
    reader = ring(None)
    assert reader.active_key_id is None
    assert reader.decrypt(blob, column=COL, record_id=1) == PLAIN
    with pytest.raises(CryptoError, match="ENCRYPTION_ACTIVE_KEY"):
        reader.encrypt(PLAIN, column=COL, record_id=1)


def _failing(keyring: Keyring, blob: bytes, **where: object) -> str:
    place = {"column": COL, "record_id": 5, **where}
    with pytest.raises(CryptoError) as caught:
        keyring.decrypt(blob, **place)  # type: ignore[arg-type]
    message = str(caught.value)
    assert PLAIN not in message and "5169" not in message
    assert "\n" not in message
    return message


def test_wrong_key_is_a_clear_error() -> None:
    """Same key id, different key material: CryptoError naming the key id, never garbage."""
    blob = ring(a=KEY_A).encrypt(PLAIN, column=COL, record_id=5)
    message = _failing(ring(a=KEY_B), blob)
    assert "failed authentication" in message and "'a'" in message and "record 5" in message


def test_key_missing_from_the_ring() -> None:
    """A value written under a key that was removed names the missing key id."""
    blob = ring(a=KEY_A).encrypt(PLAIN, column=COL, record_id=5)
    assert "key id 'a' is not in the keyring" in _failing(ring("b", b=KEY_B), blob)


def test_every_tampered_byte_is_detected() -> None:
    """Flipping any single bit of any byte (header, nonce, ciphertext, tag) raises CryptoError."""
    keyring = ring()
    blob = keyring.encrypt(PLAIN, column=COL, record_id=5)
    for position in range(len(blob)):
        for bit in (0x01, 0x80):
            tampered = bytearray(blob)
            tampered[position] ^= bit
            _failing(keyring, bytes(tampered))
    _failing(keyring, blob[:-1])
    _failing(keyring, blob + b"\x00")
    for junk in (b"", b"\x01", b"\x02" + blob[1:], b"\x01\x10abc"):
        _failing(keyring, junk)


def test_swapped_row_column_or_table_fails() -> None:
    """A value copied to another record id, column or table fails to decrypt (AAD binding)."""
    keyring = ring()
    blob = keyring.encrypt(PLAIN, column=COL, record_id=5)
    assert "record 6" in _failing(keyring, blob, record_id=6)
    assert "cuenta_numero_enc" in _failing(keyring, blob, column="cuenta_numero_enc")
    _failing(keyring, blob, table="customers_archive")
    assert keyring.decrypt(blob, column=COL, record_id=5) == PLAIN


def test_decrypt_failures_are_counted() -> None:
    """Each failed decrypt calls the failure hook once (the decrypt_failures metric)."""
    calls: list[int] = []
    keyring = Keyring({"a": KEY_A}, active_key_id="a", index_key=INDEX_KEY, on_decrypt_failure=lambda: calls.append(1))
    blob = keyring.encrypt(PLAIN, column=COL, record_id=1)
    keyring.decrypt(blob, column=COL, record_id=1)
    for bad in (blob[:-1], b"", blob.replace(b"\x01\x01a", b"\x01\x01z", 1)):
        with pytest.raises(CryptoError):
            keyring.decrypt(bad, column=COL, record_id=1)
    with pytest.raises(CryptoError):
        keyring.decrypt(blob, column=COL, record_id=2)
    assert len(calls) == 4


def test_bad_keyrings_are_refused_without_echoing_keys() -> None:
    """Short keys, bad ids, an active id not in the ring: CryptoError without key material."""
    cases: list[tuple[dict[str, bytes], str | None, bytes]] = [
        ({}, None, INDEX_KEY),
        ({"a": b"short"}, "a", INDEX_KEY),
        ({"bad id!": KEY_A}, None, INDEX_KEY),
        ({"x" * 17: KEY_A}, None, INDEX_KEY),
        ({"a": KEY_A}, "b", INDEX_KEY),
        ({"a": KEY_A}, "a", b"short"),
    ]
    for keys, active, index in cases:
        with pytest.raises(CryptoError) as caught:
            Keyring(keys, active_key_id=active, index_key=index)
        assert "short" not in str(caught.value)


def test_repr_and_pickle_never_carry_keys() -> None:
    """repr shows key ids only; pickling a keyring is refused."""
    keyring = ring("b", a=KEY_A, b=KEY_B)
    text = repr(keyring)
    assert "a" in text and KEY_A.hex() not in text and str(KEY_A) not in text
    with pytest.raises(TypeError):
        pickle.dumps(keyring)


def test_key_id_of_rejects_non_ciphertext() -> None:
    """key_id_of reads the header only and refuses what is not a ciphertext."""
    for junk in (b"", b"\x00abc", b"\x01\x00" + b"\x00" * 40, b"\x01\x03a"):
        with pytest.raises(CryptoError):
            key_id_of(junk)


PAN_DIGITS = st.text(alphabet="0123456789", min_size=12, max_size=19)


@given(digits=PAN_DIGITS, data=st.data())
def test_blind_index_ignores_separators(digits: str, data: st.DataObject) -> None:
    """The same PAN with or without dashes/spaces anywhere gives the same 32-byte index."""
    keyring = ring()
    separators = data.draw(st.lists(st.sampled_from(["", "-", " "]), min_size=len(digits), max_size=len(digits)))
    formatted = "".join(d + s for d, s in zip(digits, separators, strict=True))
    index = keyring.blind_index(digits)
    assert len(index) == 32
    assert keyring.blind_index(formatted) == index
    assert index == hmac.new(INDEX_KEY, digits.encode(), hashlib.sha256).digest()


@given(one=PAN_DIGITS, other=PAN_DIGITS)
def test_blind_index_differs_for_different_pans(one: str, other: str) -> None:
    """Different PANs have different indexes; the index does not depend on the encryption keys."""
    keyring = ring()
    if one != other:
        assert keyring.blind_index(one) != keyring.blind_index(other)
    assert ring("b", b=KEY_B).blind_index(one) == keyring.blind_index(one)


def test_blind_index_is_keyed_and_needs_digits() -> None:
    """Another index key gives another index; a value without digits is refused."""
    other = Keyring({"a": KEY_A}, active_key_id="a", index_key=KEY_B)
    assert other.blind_index(PLAIN) != ring().blind_index(PLAIN)
    assert ring().blind_index(PLAIN) != hashlib.sha256(b"6767229341725169").digest()
    with pytest.raises(ValueError, match="no digits"):
        ring().blind_index("--")


def test_content_hash_is_keyed_with_its_own_subkey() -> None:
    """content_hash is 32 bytes, stable, keyed by INDEX_KEY, and not the blind index or a plain SHA-256."""
    canonical = b'{"credit_card_num":"6767229341725169","id":1}'
    keyring = ring()
    value = keyring.content_hash(canonical)
    assert len(value) == 32 and value == ring("b", b=KEY_B).content_hash(canonical)
    assert value != hashlib.sha256(canonical).digest()
    assert value != hmac.new(INDEX_KEY, canonical, hashlib.sha256).digest()
    assert value != keyring.content_hash(canonical + b" ")
    assert Keyring({"a": KEY_A}, active_key_id="a", index_key=KEY_B).content_hash(canonical) != value
