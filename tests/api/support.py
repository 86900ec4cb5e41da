"""Customers for the API tests, written the way the syncer stores them (ciphertext by the Keyring).

`make_customers` builds provider-shaped records (CVV included, as the provider
sends it); `store_customers` writes them through the policy's columns:
clear values, AES-GCM ciphertext bound to the row, last 4, mask, blind index,
and bumps the data version in the same transaction, as the syncer does.
"""

from __future__ import annotations

import hashlib
import json
import random
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from daemon.crypto.keyring import Keyring
from daemon.crypto.masks import display_mask, last4
from daemon.db.database import Database
from daemon.policy import Kind, by_name, columns

__all__ = ("TOKENS", "api_tokens_env", "bump_version", "make_customers", "soft_delete", "store_customers")

# One token per role (and a second admin), configured by hash only.
TOKENS = {
    "viewer": "test-viewer-token-6f1c2a9e0b7d4c3a8e5f",
    "analyst": "test-analyst-token-2b8d4e6f1a3c5e7d9b0a",
    "admin": "test-admin-token-9c7e5a3b1d2f4e6a8c0b",
}


def api_tokens_env(tokens: dict[str, str] | None = None) -> str:
    tokens = TOKENS if tokens is None else tokens
    return json.dumps(
        [
            {"name": f"{role}-client", "role": role, "sha256": hashlib.sha256(token.encode()).hexdigest()}
            for role, token in tokens.items()
        ]
    )


def _card(rng: random.Random) -> str:
    digits = "".join(str(rng.randint(0, 9)) for _ in range(16))
    style = rng.randrange(3)
    if style == 0:
        return "-".join(digits[i : i + 4] for i in range(0, 16, 4))
    if style == 1:
        return " ".join(digits[i : i + 4] for i in range(0, 16, 4))
    return digits


def make_customers(count: int, *, start_id: int = 1, seed: int = 7) -> list[dict[str, Any]]:
    rng = random.Random(seed + start_id)
    base = datetime(2023, 3, 21, 21, 48, 57, 373000, tzinfo=UTC)
    out = []
    for i in range(count):
        cid = start_id + i
        out.append(
            {
                "id": str(cid),
                "fec_alta": (base + timedelta(hours=cid)).isoformat(timespec="milliseconds").replace("+00:00", "Z"),
                "user_name": f"user_{cid}",
                "codigo_zip": f"{rng.randint(0, 99999):05d}",
                "credit_card_num": _card(rng),
                "credit_card_ccv": f"{rng.randint(0, 999):03d}",
                "cuenta_numero": "".join(str(rng.randint(0, 9)) for _ in range(18)),
                "direccion": f"Calle {cid} nº {rng.randint(1, 999)}",
                "geo_latitud": f"{rng.uniform(-90, 90):.6f}",
                "geo_longitud": f"{rng.uniform(-180, 180):.6f}",
                "color_favorito": rng.choice(["rojo", "azul", "verde"]),
                "foto_dni": f"https://example.com/dni/{cid}.jpg",
                "ip": f"10.{rng.randint(0, 255)}.{rng.randint(0, 255)}.{rng.randint(1, 254)}",
                "auto": "Ford",
                "auto_modelo": "Fiesta",
                "auto_tipo": "Coupe",
                "auto_color": "negro",
                "cantidad_compras_realizadas": rng.randint(0, 500),
                "avatar": f"https://example.com/avatar/{cid}.png",
                "fec_birthday": (base - timedelta(days=9000 + cid))
                .isoformat(timespec="milliseconds")
                .replace("+00:00", "Z"),
            }
        )
    return out


def _clear(kind: Kind, value: Any) -> Any:
    if kind is Kind.TIMESTAMP:
        return datetime.fromisoformat(value.replace("Z", "+00:00")).replace(tzinfo=None)
    if kind is Kind.ID:
        return int(value)
    return value


def _row(keyring: Keyring, record: dict[str, Any]) -> list[Any]:
    record_id = int(record["id"])
    values: list[Any] = []
    for col in columns():
        value = record.get(col.field)
        if col.role == "clear":
            values.append(_clear(by_name(col.field).kind, value))
        elif col.role == "ciphertext":
            values.append(keyring.encrypt(value, column=col.name, record_id=record_id))
        elif col.role == "last4":
            values.append(last4(value))
        elif col.role == "mask":
            values.append(display_mask(value))
        else:
            values.append(keyring.blind_index(value))
    values.append(keyring.content_hash(json.dumps(record, sort_keys=True).encode()))
    return values


_COLUMNS = [c.name for c in columns()] + ["content_hash"]
INSERT = f"INSERT INTO customers ({', '.join(_COLUMNS)}) VALUES ({', '.join(['%s'] * len(_COLUMNS))})"
BUMP = "UPDATE data_version SET version = version + 1, changed_at = CURRENT_TIMESTAMP(6) WHERE name = 'customers'"


async def store_customers(db: Database, keyring: Keyring, records: Sequence[dict[str, Any]]) -> None:
    async with db.transaction() as tx:
        await tx.executemany(INSERT, [_row(keyring, r) for r in records])
        await tx.execute(BUMP)


async def soft_delete(db: Database, ids: Iterable[int]) -> None:
    async with db.transaction() as tx:
        for record_id in ids:
            await tx.execute("UPDATE customers SET deleted_at = CURRENT_TIMESTAMP(6) WHERE id = %s", (record_id,))
        await tx.execute(BUMP)


async def bump_version(db: Database) -> None:
    await db.execute(BUMP)
