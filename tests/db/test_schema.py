"""The migrated schema against the field policy: exact data columns, sizes that fit, no CVV anywhere."""

from __future__ import annotations

import re
from collections.abc import Callable

from daemon.config import Settings
from daemon.crypto.keyring import max_overhead
from daemon.db.connect import open_database
from daemon.db.database import Database
from daemon.db.migrate import migrate
from daemon.observability.metrics import Metrics
from daemon.policy import CUSTOMERS_TABLE, Classification, Kind, by_name, columns

# Kinds whose validated values are ASCII only (digits, separators, dots); others may hold any
# character, up to 4 bytes each in UTF-8.
ASCII_KINDS = {Kind.CARD_NUMBER, Kind.ACCOUNT_NUMBER, Kind.LATITUDE, Kind.LONGITUDE, Kind.IPV4}
# Columns of `customers` that are bookkeeping, not provider data. A new one added by a migration goes here.
BOOKKEEPING = {"content_hash", "raw_hash", "created_at", "updated_at", "deleted_at"}
_CVV_LIKE = re.compile(r"ccv|cvv|cvc|card_verification|security_code", re.IGNORECASE)

COLUMNS_OF = """
SELECT TABLE_NAME, COLUMN_NAME, DATA_TYPE, CHARACTER_MAXIMUM_LENGTH
FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = %s ORDER BY TABLE_NAME, ORDINAL_POSITION
"""


async def _schema(
    make_settings: Callable[..., Settings], metrics: Metrics, name: str
) -> list[tuple[str, str, str, int]]:
    settings = make_settings(name)
    async with open_database(settings.db, metrics=metrics, create=False) as db:
        await migrate(db)
        return await _columns(db)


async def _columns(db: Database) -> list[tuple[str, str, str, int]]:
    rows = await db.fetch_all(COLUMNS_OF, [db.name])
    return [(str(t), str(c), str(d).lower(), int(n or 0)) for t, c, d, n in rows]


async def test_no_table_has_a_cvv_column(
    make_settings: Callable[..., Settings], metrics: Metrics, fresh_db: Callable[[], str]
) -> None:
    """PCI DSS 3.3.1: no column of any migrated table can hold a CVV (credit_card_ccv, *ccv*, *cvv*, ...)."""
    schema = await _schema(make_settings, metrics, fresh_db())
    assert {t for t, *_ in schema} >= {CUSTOMERS_TABLE, "sync_runs", "sync_quarantine"}
    offending = [(t, c) for t, c, *_ in schema if _CVV_LIKE.search(c)]
    assert offending == []
    assert not by_name("credit_card_ccv").stored


async def test_customers_data_columns_are_the_policy_columns(
    make_settings: Callable[..., Settings], metrics: Metrics, fresh_db: Callable[[], str]
) -> None:
    """The customers table has exactly the data columns the policy implies, plus bookkeeping."""
    schema = await _schema(make_settings, metrics, fresh_db())
    actual = [c for t, c, *_ in schema if t == CUSTOMERS_TABLE]
    assert set(actual) >= BOOKKEEPING
    assert sorted(c for c in actual if c not in BOOKKEEPING) == sorted(col.name for col in columns())


async def test_column_sizes_fit_the_values(
    make_settings: Callable[..., Settings], metrics: Metrics, fresh_db: Callable[[], str]
) -> None:
    """Ciphertext columns hold the longest value's UTF-8 bytes plus the ciphertext overhead; clear derivatives fit."""
    schema = await _schema(make_settings, metrics, fresh_db())
    by_column = {c: (d, n) for t, c, d, n in schema if t == CUSTOMERS_TABLE}
    for column in columns():
        field = by_name(column.field)
        data_type, size = by_column[column.name]
        if column.role == "ciphertext":
            assert data_type == "varbinary", column.name
            bytes_per_char = 1 if field.kind in ASCII_KINDS else 4
            assert size >= field.max_len * bytes_per_char + max_overhead(), (column.name, size)
        elif column.role == "blind_index":
            assert (data_type, size) == ("binary", 32)
        elif column.role == "last4":
            assert size == 4
        elif column.role == "mask":
            assert data_type == "varchar" and size >= field.max_len
        elif field.classification is Classification.PUBLIC and data_type in ("varchar", "char"):
            assert size >= field.max_len, column.name
    assert by_column["content_hash"] == ("binary", 32)
