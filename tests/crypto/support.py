"""Keys and sample values shared by the crypto tests (fixed bytes: tests are reproducible)."""

from __future__ import annotations

import base64
import json

from daemon.crypto.keyring import Keyring, key_id_of
from daemon.crypto.masks import display_mask, last4
from daemon.db.database import Database
from daemon.policy import Classification, FieldPolicy, Kind, encrypted_fields

__all__ = (
    "INDEX_KEY",
    "KEY_A",
    "KEY_B",
    "check_readable",
    "env_keys",
    "read_all",
    "ring",
    "row_values",
    "sample_value",
    "seed_rows",
)

KEY_A = bytes(range(32))
KEY_B = bytes(range(100, 132))
INDEX_KEY = bytes(range(200, 232))

_SAMPLES = {
    Kind.CARD_NUMBER: "6767-2293-4172-5169",
    Kind.ACCOUNT_NUMBER: "0012345678901234",
    Kind.LATITUDE: "-34.603722",
    Kind.LONGITUDE: "-58.381592",
    Kind.URL: "https://loremflickr.com/640/480/people?lock=42",
    Kind.IPV4: "192.168.100.200",
}


def ring(active: str | None = "a", **keys: bytes) -> Keyring:
    """A keyring with the given keys (default: a=KEY_A) and the fixed index key."""
    return Keyring(keys or {"a": KEY_A}, active_key_id=active, index_key=INDEX_KEY)


def sample_value(field: FieldPolicy, *, longest: bool = False, wide: bool = False) -> str:
    """A realistic value of an encrypted field, or one of its maximum length (`wide`: 4-byte characters)."""
    if not longest:
        return _SAMPLES[field.kind]
    if field.kind in (Kind.CARD_NUMBER, Kind.ACCOUNT_NUMBER):
        return "9" * field.max_len
    if field.kind is Kind.URL:
        prefix = "https://example.com/"
        return prefix + ("\U0001d11e" if wide else "a") * (field.max_len - len(prefix))
    if field.kind is Kind.IPV4:
        return "255.255.255.255"
    return ("-" + "1" * (field.max_len - 1))[: field.max_len]


def env_keys(keys: dict[str, bytes], *, active: str | None, index: bytes = INDEX_KEY) -> dict[str, str]:
    """ENCRYPTION_KEYS / ENCRYPTION_ACTIVE_KEY / INDEX_KEY as the environment carries them."""
    env = {
        "ENCRYPTION_KEYS": json.dumps({k: base64.b64encode(v).decode() for k, v in keys.items()}),
        "INDEX_KEY": base64.b64encode(index).decode(),
    }
    if active is not None:
        env["ENCRYPTION_ACTIVE_KEY"] = active
    return env


assert {f.classification for f in encrypted_fields()} == {
    Classification.PII,
    Classification.FINANCIAL,
    Classification.PCI,
}


INSERT_ENCRYPTED = (
    "INSERT INTO customers (id, {cols}, credit_card_num_last4, credit_card_num_mask, credit_card_num_bidx, "
    "content_hash) VALUES (%s, {marks}, %s, %s, %s, %s)"
)


def row_values(record_id: int) -> dict[str, str]:
    """Distinct plaintexts per record, so a value moved to another row would be noticed."""
    return {
        "credit_card_num_enc": f"4{record_id:015d}",
        "cuenta_numero_enc": f"00{record_id:014d}",
        "geo_latitud_enc": f"-34.{record_id:06d}",
        "geo_longitud_enc": f"-58.{record_id:06d}",
        "foto_dni_enc": f"https://example.com/dni/{record_id}.jpg",
        "ip_enc": f"10.{record_id // 65536 % 256}.{record_id // 256 % 256}.{record_id % 256}",
    }


async def seed_rows(db: Database, keyring: Keyring, ids: range | list[int], *, batch: int = 500) -> None:
    """Insert customers rows whose encrypted columns are ciphertext produced by `keyring`."""
    columns = [f.enc_column for f in encrypted_fields()]
    sql = INSERT_ENCRYPTED.format(cols=", ".join(columns), marks=", ".join(["%s"] * len(columns)))
    rows = []
    for record_id in ids:
        values = row_values(record_id)
        pan = values["credit_card_num_enc"]
        rows.append(
            [
                record_id,
                *(keyring.encrypt(values[c], column=c, record_id=record_id) for c in columns),
                last4(pan),
                display_mask(pan),
                keyring.blind_index(pan),
                keyring.content_hash(str(record_id).encode()),
            ]
        )
    for start in range(0, len(rows), batch):
        async with db.transaction() as tx:
            await tx.executemany(sql, rows[start : start + batch])


async def read_all(db: Database) -> list[tuple[object, ...]]:
    columns = ", ".join(f.enc_column for f in encrypted_fields())
    return await db.fetch_all(f"SELECT id, {columns} FROM customers ORDER BY id")


def check_readable(rows: list[tuple[object, ...]], keyring: Keyring) -> dict[str, int]:
    """Decrypt every value of `rows` with `keyring` and compare to what was seeded; count by key id."""
    columns = [f.enc_column for f in encrypted_fields()]
    by_key: dict[str, int] = {}
    for row in rows:
        record_id = int(row[0])  # type: ignore[call-overload]
        expected = row_values(record_id)
        for column, blob in zip(columns, row[1:], strict=True):
            assert isinstance(blob, bytes)
            assert keyring.decrypt(blob, column=column, record_id=record_id) == expected[column]
            key_id = key_id_of(blob)
            by_key[key_id] = by_key.get(key_id, 0) + 1
    return by_key
