"""Rows of `customers` and `sync_quarantine`, derived from the field policy.

Which value goes to which column — in clear, as ciphertext bound to its
column and record, as last 4 digits, display mask or blind index — comes from
`policy.columns()` and nowhere else; the SQL is built once, at import, from it.
Everything derived from a sensitive value (ciphertext, last 4, mask, blind
index) is computed here, once, when the record is ingested: the API never
decrypts to serve a mask.

The batch upsert and the stored-row lookups are written with SQL literals
(daemon.db.literals) rather than `%s` parameters: the driver's per-parameter
escaping was the largest client-side cost of a sync (a 500-row upsert has
~13,000 values). Ids are integers and every other value takes a literal form
that cannot end early, whatever the session's SQL mode.
"""

# SQL here is assembled once, at import, from the policy's column names (identifiers the code
# defines, never input); values travel as %s parameters or as literals from daemon.db.literals.
# ruff: noqa: S608

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime
from functools import lru_cache
from typing import Final

from daemon import policy
from daemon.crypto.keyring import Keyring
from daemon.crypto.masks import display_mask, last4
from daemon.provider.records import ParsedRecord, Rejected

__all__ = (
    "QUARANTINE_COLUMNS",
    "WRITE_COLUMNS",
    "customer_row",
    "id_list",
    "placeholders",
    "quarantine_row",
    "quarantine_sql",
    "raw_hash_update",
    "select_raw_hashes",
    "select_stored",
    "upsert_of_literals",
)

TABLE: Final = policy.CUSTOMERS_TABLE
_COLUMNS: Final = tuple(policy.columns())
# Every stored column the policy implies (the id first), then the row's keyed content hash and
# the keyed hash of the provider record it was made from (CVV left out; NULL when unknown).
WRITE_COLUMNS: Final = (*(c.name for c in _COLUMNS), "content_hash", "raw_hash")
_UPDATED: Final = tuple(name for name in WRITE_COLUMNS if name != "id")

UPSERT_HEAD: Final = f"INSERT INTO `{TABLE}` ({', '.join(f'`{c}`' for c in WRITE_COLUMNS)}) VALUES "
# Only new, changed or restored records reach the upsert, so updated_at always moves with it.
UPSERT_TAIL: Final = (
    " ON DUPLICATE KEY UPDATE "
    + ", ".join(f"`{c}` = VALUES(`{c}`)" for c in _UPDATED)
    + ", `updated_at` = NOW(6), `deleted_at` = NULL"
)
# Inside a batch's transaction: what decides inserted / updated / unchanged / restored.
SELECT_STORED_FOR_WRITE_HEAD: Final = (
    f"SELECT `id`, `content_hash`, `deleted_at` IS NOT NULL, `raw_hash` FROM `{TABLE}` WHERE `id` IN "
)
# Before parsing: the raw hashes of live rows (a soft-deleted row is never skipped: it is restored).
SELECT_RAW_HASHES_HEAD: Final = (
    f"SELECT `id`, `raw_hash` FROM `{TABLE}` WHERE `deleted_at` IS NULL AND `raw_hash` IS NOT NULL AND `id` IN "
)
RAW_HASH_UPDATE_HEAD: Final = f"UPDATE `{TABLE}` SET `raw_hash` = CASE `id` "

QUARANTINE_COLUMNS: Final = ("run_id", "provider_id", "reasons", "record")
QUARANTINE_HEAD: Final = f"INSERT INTO sync_quarantine ({', '.join(QUARANTINE_COLUMNS)}) VALUES "
QUARANTINE_ROW: Final = "(" + ", ".join(["%s"] * len(QUARANTINE_COLUMNS)) + ")"

_PROVIDER_ID_MAX = 64
_NOT_PUBLIC: Final = policy.sensitive_field_names()


def placeholders(n: int) -> str:
    return "(" + ", ".join(["%s"] * n) + ")"


def upsert_of_literals(rows: Sequence[str]) -> str:
    """The multi-row upsert of `rows`, each already written by daemon.db.literals.row_literal."""
    return UPSERT_HEAD + ",".join(rows) + UPSERT_TAIL


def id_list(ids: Iterable[int]) -> str:
    """`(1,2,3)`: ids are ints (checked), so their decimal text is their literal."""
    return "(" + ",".join([int.__repr__(_an_int(i)) for i in ids]) + ")"


def select_stored(ids: Iterable[int]) -> str:
    """(id, content_hash, deleted, raw_hash) of the stored rows among `ids`."""
    return SELECT_STORED_FOR_WRITE_HEAD + id_list(ids)


def select_raw_hashes(ids: Iterable[int]) -> str:
    """(id, raw_hash) of the live rows among `ids` that have one."""
    return SELECT_RAW_HASHES_HEAD + id_list(ids)


def raw_hash_update(hashes: Mapping[int, bytes]) -> str:
    """Set the raw hash of rows whose content is unchanged (nothing else of them moves)."""
    cases = " ".join([f"WHEN {int.__repr__(_an_int(i))} THEN X'{h.hex()}'" for i, h in hashes.items()])
    return RAW_HASH_UPDATE_HEAD + cases + " END WHERE `id` IN " + id_list(hashes)


def _an_int(value: int) -> int:
    if type(value) is not int:
        raise TypeError("ids in SQL text must be ints")
    return value


@lru_cache(maxsize=8)
def quarantine_sql(rows: int) -> str:
    return QUARANTINE_HEAD + ", ".join([QUARANTINE_ROW] * rows)


# --- customers ---------------------------------------------------------------------------


def _text(value: object) -> str:
    return value if isinstance(value, str) else str(value)


def _utc_naive(value: object) -> datetime:
    """DATETIME columns hold UTC without a zone."""
    moment = value if isinstance(value, datetime) else datetime.fromisoformat(_text(value))
    if moment.tzinfo is UTC:
        return moment.replace(tzinfo=None)
    if moment.tzinfo is not None:
        moment = moment.astimezone(UTC).replace(tzinfo=None)
    return moment


# What each column takes from its field (an opcode per column, decided once from the policy).
_ID, _TEXT, _INT, _TIME, _CIPHER, _LAST4, _MASK, _BLIND = range(8)


def _opcode(column: policy.Column) -> int:
    if column.role == "clear":
        kind = policy.by_name(column.field).kind
        if column.field == "id":
            return _ID
        if kind is policy.Kind.TIMESTAMP:
            return _TIME
        return _INT if kind in (policy.Kind.ID, policy.Kind.COUNT) else _TEXT
    roles = {"ciphertext": _CIPHER, "last4": _LAST4, "mask": _MASK, "blind_index": _BLIND}
    if column.role not in roles:
        raise AssertionError(f"no storage for column role {column.role!r}")  # a new role in the policy
    return roles[column.role]


_PLAN: Final = tuple((c.field, _opcode(c)) for c in _COLUMNS)
_ENCRYPTED: Final = tuple((c.name, c.field) for c in _COLUMNS if c.role == "ciphertext")


def customer_row(
    record: ParsedRecord, content_hash: bytes, keyring: Keyring, raw_hash: bytes | None = None
) -> tuple[object, ...]:
    """The values of WRITE_COLUMNS for one record: encrypted, masked and indexed per the policy.

    The ciphertexts of a record are made in one call (one random read for all its nonces).
    """
    values = record.values
    record_id = record.id
    plaintexts = [(name, _text(value)) for name, field in _ENCRYPTED if (value := values.get(field)) is not None]
    ciphertexts = iter(keyring.encrypt_fields(plaintexts, record_id=record_id) if plaintexts else ())
    row: list[object] = []
    add = row.append
    for field, op in _PLAN:
        if op == _ID:
            add(record_id)
            continue
        value = values.get(field)
        if value is None:
            add(None)
        elif op == _TEXT:
            add(value if type(value) is str else _text(value))
        elif op == _CIPHER:
            add(next(ciphertexts))  # same order and same None filter as `plaintexts`
        elif op == _TIME:
            add(_utc_naive(value))
        elif op == _INT:
            add(value if type(value) is int else int(_text(value)))
        elif op == _LAST4:
            add(last4(_text(value)))
        elif op == _MASK:
            add(display_mask(_text(value)))
        else:
            add(keyring.blind_index(_text(value)))
    add(content_hash)
    add(raw_hash)
    return tuple(row)


# --- quarantine --------------------------------------------------------------------------


def quarantine_row(run_id: int, rejected: Rejected) -> tuple[object, ...]:
    """The quarantine row of an invalid record: every reason, and what the parser kept of it.

    The parser keeps only public fields (scrubbed, bounded) and the names of
    unknown keys. As a second line of defence any key the policy classifies as
    non-public is dropped again here, whatever the parser did.
    """
    reasons = [{"field": field, "rule": rule} for field, rule in rejected.reasons]
    provider_id = None if rejected.provider_id is None else _text(rejected.provider_id)[:_PROVIDER_ID_MAX]
    kept = {key: value for key, value in rejected.record.items() if key not in _NOT_PUBLIC}
    return (
        run_id,
        provider_id,
        json.dumps(reasons, ensure_ascii=False),
        json.dumps(kept, ensure_ascii=False, default=str),
    )
