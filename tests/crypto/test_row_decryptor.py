"""RowDecryptor: a row's encrypted columns in one call, with exactly `Keyring.decrypt`'s results and failures."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from daemon.crypto.keyring import Keyring
from daemon.errors import CryptoError
from daemon.policy import encrypted_fields
from tests.crypto.support import INDEX_KEY, KEY_A, KEY_B, ring, sample_value

COLUMNS = tuple(f.enc_column for f in encrypted_fields())
VALUES = tuple(sample_value(f) for f in encrypted_fields())


def _row(keyring: Keyring, record_id: int, values: tuple[str, ...] = VALUES) -> list[bytes]:
    return [keyring.encrypt(v, column=c, record_id=record_id) for v, c in zip(values, COLUMNS, strict=True)]


def _counting(calls: list[int], **keys: bytes) -> Keyring:
    return Keyring(
        keys or {"a": KEY_A}, active_key_id="a", index_key=INDEX_KEY, on_decrypt_failure=lambda: calls.append(1)
    )


def test_round_trip_of_every_encrypted_column_with_nulls() -> None:
    """Every encrypted column of the policy comes back in order; a NULL column stays None."""
    keyring = ring()
    rows = keyring.row_decryptor(COLUMNS)
    assert rows.columns == COLUMNS
    assert rows.decrypt_row(7, _row(keyring, 7)) == list(VALUES)
    blobs: list[bytes | None] = list(_row(keyring, 8))
    blobs[1] = blobs[4] = None
    expected = [None if i in (1, 4) else v for i, v in enumerate(VALUES)]
    assert rows.decrypt_row(8, blobs) == expected
    assert rows.decrypt_row(9, [None] * len(COLUMNS)) == [None] * len(COLUMNS)


def test_values_under_several_keys_and_other_tables() -> None:
    """Old and new keys in one row both read; the table is part of the binding."""
    old, both = ring("a", a=KEY_A), ring("b", a=KEY_A, b=KEY_B)
    blobs = _row(old, 3)
    blobs[2] = both.encrypt(VALUES[2], column=COLUMNS[2], record_id=3)
    assert both.row_decryptor(COLUMNS).decrypt_row(3, blobs) == list(VALUES)
    archived = [old.encrypt(v, column=c, record_id=3, table="archive") for v, c in zip(VALUES, COLUMNS, strict=True)]
    assert old.row_decryptor(COLUMNS, table="archive").decrypt_row(3, archived) == list(VALUES)
    with pytest.raises(CryptoError, match="customers"):
        old.row_decryptor(COLUMNS).decrypt_row(3, archived)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.text(max_size=60), min_size=len(COLUMNS), max_size=len(COLUMNS)), st.integers(1, 2**62))
def test_same_results_as_decrypt_for_any_text(values: list[str], record_id: int) -> None:
    """Any text (empty, non-ASCII) at any record id: the batch equals decrypt value by value."""
    keyring = ring()
    blobs = _row(keyring, record_id, tuple(values))
    one_by_one = [keyring.decrypt(b, column=c, record_id=record_id) for b, c in zip(blobs, COLUMNS, strict=True)]
    assert keyring.row_decryptor(COLUMNS).decrypt_row(record_id, blobs) == one_by_one == values


def _message_and_calls(make: Callable[[Keyring], list[object]], record_id: int = 5) -> list[tuple[str, int]]:
    """(message, hook calls) of the per-value path and of the batch path on the same bad row."""
    outcomes = []
    for batch in (False, True):
        calls: list[int] = []
        keyring = _counting(calls)
        blobs = make(keyring)
        with pytest.raises(CryptoError) as caught:
            if batch:
                keyring.row_decryptor(COLUMNS).decrypt_row(record_id, blobs)
            else:
                for blob, column in zip(blobs, COLUMNS, strict=True):
                    if blob is not None:
                        keyring.decrypt(blob, column=column, record_id=record_id)  # type: ignore[arg-type]
        outcomes.append((str(caught.value), len(calls)))
    return outcomes


def _tampered(position: int, column_index: int = 3) -> Callable[[Keyring], list[object]]:
    def make(keyring: Keyring) -> list[object]:
        row = _row(keyring, 5)
        bad = bytearray(row[column_index])
        bad[position % len(bad)] ^= 0x01
        blobs: list[object] = list(row)
        blobs[column_index] = bytes(bad)
        return blobs

    return make


def _replaced(column_index: int, value: object) -> Callable[[Keyring], list[object]]:
    def make(keyring: Keyring) -> list[object]:
        blobs: list[object] = list(_row(keyring, 5))
        blobs[column_index] = value
        return blobs

    return make


def _moved_from(record_id: int) -> Callable[[Keyring], list[object]]:
    def make(keyring: Keyring) -> list[object]:
        return list(_row(keyring, record_id))

    return make


def _under_missing_key(keyring: Keyring) -> list[object]:
    blobs: list[object] = list(_row(keyring, 5))
    blobs[4] = ring("z", z=KEY_B).encrypt(VALUES[4], column=COLUMNS[4], record_id=5)
    return blobs


def _wrong_key_material(_keyring: Keyring) -> list[object]:
    return list(_row(ring("a", a=KEY_B), 5))


def _truncated_and_later_bad(keyring: Keyring) -> list[object]:
    blobs: list[object] = list(_row(keyring, 5))
    blobs[1] = blobs[1][:-1]  # type: ignore[index]
    blobs[5] = b""  # a later failure: only the first one is reported, as value by value
    return blobs


def _not_utf8(keyring: Keyring) -> list[object]:
    blobs: list[object] = list(_row(keyring, 5))
    header = blobs[0][:3]  # type: ignore[index]
    nonce = bytes(12)
    aad = header + f"\x00customers\x1f{COLUMNS[0]}\x1f5".encode()
    blobs[0] = header + nonce + keyring._by_header[header].encrypt(nonce, b"\xff\xfe", aad)
    return blobs


CASES: dict[str, Callable[[Keyring], list[object]]] = {
    "tampered header": _tampered(0),
    "tampered key id": _tampered(2),
    "tampered nonce": _tampered(5),
    "tampered ciphertext": _tampered(20),
    "tampered tag": _tampered(-1),
    "moved from another record": _moved_from(6),
    "key missing from the ring": _under_missing_key,
    "wrong key material": _wrong_key_material,
    "truncated, and a later bad value": _truncated_and_later_bad,
    "empty": _replaced(0, b""),
    "one byte": _replaced(2, b"\x01"),
    "unknown format": _replaced(1, b"\x02\x01a" + bytes(40)),
    "not binary": _replaced(3, "text"),
    "an int": _replaced(3, 12),
    "bytearray with a bad tag": _replaced(3, bytearray(b"\x01\x01a" + bytes(40))),
    "not UTF-8 once decrypted": _not_utf8,
}


@pytest.mark.parametrize("case", list(CASES))
def test_failures_are_exactly_those_of_decrypt(case: str) -> None:
    """Every kind of bad value: the same CryptoError message as value by value, and the failure hook called once."""
    per_value, batch = _message_and_calls(CASES[case])
    assert batch == per_value
    assert batch[1] == 1
    assert "\n" not in batch[0] and "6767" not in batch[0]


def test_bytearray_and_memoryview_values_read_like_bytes() -> None:
    """Other binary types the driver might return are accepted, as decrypt accepts them."""
    keyring = ring()
    blobs = _row(keyring, 4)
    mixed: list[object] = [bytearray(blobs[0]), memoryview(blobs[1]), *blobs[2:]]
    assert keyring.row_decryptor(COLUMNS).decrypt_row(4, mixed) == list(VALUES)


def test_a_row_of_the_wrong_width_is_a_programming_error() -> None:
    """Fewer or more values than columns raise rather than silently misalign columns and AADs."""
    keyring = ring()
    rows = keyring.row_decryptor(COLUMNS)
    with pytest.raises(ValueError, match="zip"):
        rows.decrypt_row(4, _row(keyring, 4)[:-1])
