"""How many stored values each key id encrypts, read from the ciphertext headers by SQL.

Nothing is decrypted: the key id sits in clear in every ciphertext header
(byte 2 is its length, the id follows), so MySQL 8 / Aurora and MariaDB
count them with SUBSTRING/ORD. `keys status` prints this; the syncer calls
`refresh_key_metrics` after each sync so `customers_mngr_encrypted_values`
shows when an old key is no longer used and may be removed from the ring.
Soft-deleted rows count too: their ciphertext is still stored.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Final

from daemon.config.crypto import KEY_ID_RE
from daemon.crypto.keyring import FORMAT_VERSION, Keyring
from daemon.db.database import Database
from daemon.observability.logs import get_logger
from daemon.observability.metrics import Metrics
from daemon.policy import CUSTOMERS_TABLE, encrypted_fields

__all__ = (
    "COUNT_VALUES_BY_KEY",
    "ENCRYPTED_COLUMNS",
    "INVALID_KEY_ID",
    "KeyUsage",
    "key_usage",
    "refresh_key_metrics",
)

log = get_logger("customers_mngr.crypto")

ENCRYPTED_COLUMNS: Final[tuple[str, ...]] = tuple(f.enc_column for f in encrypted_fields())
# The label of values whose header is not a valid version-1 header with a valid key id.
INVALID_KEY_ID: Final = "(invalid)"
# A full scan per column; a large table needs more than the per-query default.
SCAN_TIMEOUT_S: Final = 300.0


def _count_by_key(column: str) -> str:
    # Names come from the policy, never from input.
    return (
        f"SELECT '{column}', ORD(SUBSTRING({column}, 1, 1)) AS fmt, "  # noqa: S608
        f"SUBSTRING({column}, 3, ORD(SUBSTRING({column}, 2, 1))) AS key_id, COUNT(*) "
        f"FROM {CUSTOMERS_TABLE} WHERE {column} IS NOT NULL GROUP BY fmt, key_id"
    )


# (column, format version byte, key id bytes, count) for every encrypted column of the policy.
COUNT_VALUES_BY_KEY: Final = "\nUNION ALL\n".join(_count_by_key(column) for column in ENCRYPTED_COLUMNS)


@dataclass(frozen=True, slots=True)
class KeyUsage:
    """Stored values per key id and column (key ids as read from the headers)."""

    counts: Mapping[str, Mapping[str, int]] = field(default_factory=dict)  # key id -> column -> values

    def values(self, key_id: str) -> int:
        return sum(self.counts.get(key_id, {}).values())

    def key_ids(self) -> tuple[str, ...]:
        return tuple(sorted(self.counts))

    @property
    def total(self) -> int:
        return sum(self.values(key_id) for key_id in self.counts)

    def not_on(self, key_id: str | None) -> int:
        """Values encrypted with any other key than `key_id` (what a rotation to it re-encrypts)."""
        return sum(self.values(other) for other in self.counts if other != key_id)

    def missing_from(self, keyring: Keyring) -> dict[str, int]:
        """Key ids in use that the keyring does not have: their values cannot be read."""
        return {key_id: self.values(key_id) for key_id in self.counts if not keyring.has_key(key_id)}


def _label(fmt: object, raw: object) -> str:
    if fmt != FORMAT_VERSION or not isinstance(raw, bytes | bytearray):
        return INVALID_KEY_ID
    try:
        key_id = bytes(raw).decode("ascii")
    except UnicodeDecodeError:
        return INVALID_KEY_ID
    return key_id if KEY_ID_RE.match(key_id) else INVALID_KEY_ID


async def key_usage(db: Database, *, timeout_s: float = SCAN_TIMEOUT_S) -> KeyUsage:
    """Count stored values per key id and column (one scan of the table per encrypted column)."""
    async with db.session() as session:
        rows = await session.fetch_all(COUNT_VALUES_BY_KEY, timeout_s=max(timeout_s, db.query_timeout_s))
    counts: dict[str, dict[str, int]] = {}
    for column, fmt, raw_key_id, count in rows:
        per_column = counts.setdefault(_label(fmt, raw_key_id), dict.fromkeys(ENCRYPTED_COLUMNS, 0))
        per_column[str(column)] += int(count)
    return KeyUsage(MappingProxyType({k: MappingProxyType(v) for k, v in counts.items()}))


async def refresh_key_metrics(db: Database, keyring: Keyring, metrics: Metrics) -> KeyUsage:
    """Set `customers_mngr_encrypted_values{key_id}` from the DB (every ring key, 0 when unused).

    Call it after each sync (and it is cheap enough to call at start). Series of
    key ids that are neither in the ring nor stored any more are removed.
    Values whose key id is missing from the ring are logged as a warning: they
    cannot be decrypted until that key is configured again. Failed decrypts
    themselves are counted in `customers_mngr_decrypt_failures_total` by the
    keyring as they happen.
    """
    usage = await key_usage(db)
    wanted = {key_id: usage.values(key_id) for key_id in (*keyring.key_ids, *usage.key_ids())}
    gauge = metrics.key_values
    for key_id, count in wanted.items():
        gauge.labels(key_id=key_id).set(count)
    for family in gauge.collect():
        for sample in family.samples:
            stale = sample.labels.get("key_id")
            if stale is not None and stale not in wanted:
                gauge.remove(stale)
    missing = usage.missing_from(keyring)
    if missing:
        log.warning(
            "encrypted_values_unreadable",
            key_ids=sorted(missing),
            values=sum(missing.values()),
            hint="a key was removed from ENCRYPTION_KEYS while still in use: configure it again",
        )
    return usage
