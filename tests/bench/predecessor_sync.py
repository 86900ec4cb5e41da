"""Reference `predecessor_sync`: what the old one-shot syncer did, written from its description.

    python -m tests.bench.predecessor_sync --url PROVIDER_LIST_URL --database mysql://root@127.0.0.1:3306/DB

One blocking GET of the whole array (`requests`), `dateutil` parsing of the two
dates, Fernet on three fields (card number, CVV, account: the predecessor
stored the CVV too), one `INSERT ... ON DUPLICATE KEY UPDATE` per row with
mysql-connector-python, one commit at the end. Its re-sync is the same command
again: it has no change detection, and Fernet tokens differ every time, so
every row is rewritten. The Fernet key is generated at start, as it was.

The clock runs from the GET to the commit. Prints one JSON line:
{"records": N, "seconds": S}.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from urllib.parse import unquote, urlsplit

import mysql.connector
import requests
from cryptography.fernet import Fernet
from dateutil import parser as dateparser

__all__ = ("CREATE_TABLE", "main")

CREATE_TABLE = """
CREATE TABLE IF NOT EXISTS clientes (
    id INT NOT NULL PRIMARY KEY,
    fec_alta DATETIME NULL,
    user_name VARCHAR(255) NULL,
    codigo_zip VARCHAR(20) NULL,
    credit_card_num TEXT NULL,
    credit_card_ccv TEXT NULL,
    cuenta_numero TEXT NULL,
    direccion VARCHAR(255) NULL,
    geo_latitud VARCHAR(32) NULL,
    geo_longitud VARCHAR(32) NULL,
    color_favorito VARCHAR(64) NULL,
    foto_dni VARCHAR(2048) NULL,
    ip VARCHAR(45) NULL,
    auto VARCHAR(128) NULL,
    auto_modelo VARCHAR(128) NULL,
    auto_tipo VARCHAR(128) NULL,
    auto_color VARCHAR(64) NULL,
    cantidad_compras_realizadas INT NULL,
    avatar VARCHAR(2048) NULL,
    fec_birthday DATETIME NULL
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4
"""

COLUMNS = (
    "id",
    "fec_alta",
    "user_name",
    "codigo_zip",
    "credit_card_num",
    "credit_card_ccv",
    "cuenta_numero",
    "direccion",
    "geo_latitud",
    "geo_longitud",
    "color_favorito",
    "foto_dni",
    "ip",
    "auto",
    "auto_modelo",
    "auto_tipo",
    "auto_color",
    "cantidad_compras_realizadas",
    "avatar",
    "fec_birthday",
)
UPSERT = (
    f"INSERT INTO clientes ({', '.join(COLUMNS)}) VALUES ({', '.join(['%s'] * len(COLUMNS))}) "
    "ON DUPLICATE KEY UPDATE " + ", ".join(f"{c} = VALUES({c})" for c in COLUMNS if c != "id")
)
ENCRYPTED = ("credit_card_num", "credit_card_ccv", "cuenta_numero")
DATES = ("fec_alta", "fec_birthday")


def connect(database_url: str) -> mysql.connector.MySQLConnection:
    url = urlsplit(database_url)
    return mysql.connector.connect(
        host=url.hostname or "127.0.0.1",
        port=url.port or 3306,
        user=unquote(url.username or "root"),
        password=unquote(url.password or ""),
        database=url.path.lstrip("/"),
    )


def sync(provider_url: str, database_url: str) -> tuple[int, float]:
    fernet = Fernet(Fernet.generate_key())  # regenerated at every start, as the predecessor did
    setup = connect(database_url)
    setup.cursor().execute(CREATE_TABLE)
    setup.close()
    started = time.perf_counter()
    records = requests.get(provider_url, timeout=300).json()
    conn = connect(database_url)
    cursor = conn.cursor()
    for record in records:
        row = dict(record)
        for name in DATES:
            row[name] = dateparser.parse(row[name]) if row.get(name) else None
        for name in ENCRYPTED:
            if row.get(name) is not None:
                row[name] = fernet.encrypt(str(row[name]).encode()).decode()
        cursor.execute(UPSERT, tuple(row.get(c) for c in COLUMNS))
    conn.commit()
    elapsed = time.perf_counter() - started
    cursor.close()
    conn.close()
    return len(records), elapsed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.bench.predecessor_sync", description=__doc__)
    parser.add_argument("--url", required=True, help="the provider's list URL (the whole array in one GET)")
    parser.add_argument("--database", required=True, help="mysql://user[:password]@host:port/db (must exist)")
    args = parser.parse_args(argv)
    count, seconds = sync(args.url, args.database)
    print(json.dumps({"records": count, "seconds": round(seconds, 4)}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
