"""What each role's queries select and how a row becomes the JSON object it sees.

Everything here is derived from the field policy (`daemon.policy`): a field a
role may not see is never selected, a masked field selects only its stored
mask, and only a role with a `decrypt` view selects ciphertext — so the
viewer and analyst statements cannot touch an encrypted column at all.
Every statement also reads the data version in the same statement (one
snapshot), so a page is cached under the version it really reflects.
"""

from __future__ import annotations

import operator
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from types import MappingProxyType
from typing import Any, Final, Protocol

from daemon.config.http import ROLES, Role
from daemon.db.database import Database, Row
from daemon.policy import CUSTOMERS_TABLE, FieldPolicy, Kind, View, visible_fields

__all__ = (
    "PROJECTIONS",
    "SYNC_RUN_COLUMNS",
    "Decryptor",
    "Page",
    "Projection",
    "RowDecrypting",
    "fetch_item",
    "fetch_page",
    "fetch_range",
    "fetch_sync_runs",
)


class RowDecrypting(Protocol):
    """Decrypts a row's encrypted columns in one call (`daemon.crypto.keyring.RowDecryptor`)."""

    def decrypt_row(self, record_id: int, blobs: Sequence[object]) -> list[str | None]: ...


class Decryptor(Protocol):
    """What the admin path needs from the keyring."""

    def row_decryptor(self, columns: Sequence[str], *, table: str = ...) -> RowDecrypting: ...

    def blind_index(self, card_number: str) -> bytes: ...


_TABLE: Final = CUSTOMERS_TABLE
_VERSION: Final = "(SELECT version FROM data_version WHERE name = 'customers')"
SYNC_RUN_COLUMNS: Final = (
    "id",
    "started_at",
    "finished_at",
    "status",
    "complete",
    "leader_epoch",
    "pages",
    "fetched",
    "inserted",
    "updated",
    "unchanged",
    "rejected",
    "deleted",
    "restored",
    "duplicates",
    "unknown_fields",
    "error",
)
SELECT_SYNC_RUNS: Final = f"SELECT {', '.join(SYNC_RUN_COLUMNS)} FROM sync_runs ORDER BY id DESC LIMIT %s"  # noqa: S608 - fixed column names


def _iso_us(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat(timespec="microseconds") + "Z"


# Times are formatted by the statement itself, exactly as datetime.isoformat(timespec=...) + "Z" would
# (DATETIME(3) with milliseconds: 2023-03-21T21:48:57.373Z, deleted_at's DATETIME(6) with microseconds):
# isoformat with a timespec costs ~0.5 µs a call, 100 µs of an admin page. NULL stays NULL. `%%` because
# every statement runs with parameters (the driver formats it with %).
_ISO_MS: Final = "CONCAT(LEFT(DATE_FORMAT({0}, '%%Y-%%m-%%dT%%H:%%i:%%s.%%f'), 23), 'Z')"
_ISO_US: Final = "CONCAT(DATE_FORMAT({0}, '%%Y-%%m-%%dT%%H:%%i:%%s.%%f'), 'Z')"
# How a clear column is selected so that it arrives as its JSON value; a kind not listed is selected as
# stored (VARCHAR columns arrive as str, INT columns as int).
_CLEAR_SELECT: Final[Mapping[Kind, str]] = {Kind.TIMESTAMP: _ISO_MS}


@dataclass(frozen=True, slots=True)
class OutputField:
    name: str
    column: str  # the stored column (the ciphertext column for a decrypted field: its AAD)
    view: View
    select: str  # the SQL expression selected for it


@dataclass(frozen=True, slots=True)
class Projection:
    """One role's view of a customer: the columns it selects and the fields it returns.

    Everything a request needs is computed once: the statement of each variant,
    the output names and which positions hold ciphertext. A row becomes its
    JSON object with one dict(zip()) in policy order, then, for a decrypting
    role, one `decrypt_row` call whose plaintexts replace the ciphertexts in
    place (dict.update keeps the keys' order).
    """

    role: Role
    fields: tuple[OutputField, ...]
    names: tuple[str, ...]  # output names, in select order
    encrypted_names: tuple[str, ...]  # the decrypted fields' names, in select order
    encrypted_columns: tuple[str, ...]  # their ciphertext columns (the AAD), in the same order
    ciphertexts: Callable[[Row], tuple[Any, ...]] | None  # a row's ciphertexts, in that order
    sql: Mapping[tuple[str, bool, bool], str]  # (statement, include_deleted, by_card) -> SQL

    @classmethod
    def for_role(cls, role: Role) -> Projection:
        fields = tuple(_output(f, view) for f, view in visible_fields(role))
        positions = [i for i, f in enumerate(fields) if f.view is View.DECRYPT]
        columns = ", ".join(f.select for f in fields)
        sql: dict[tuple[str, bool, bool], str] = {}
        for deleted in (False, True):
            select = f"{columns}, {_ISO_US.format('deleted_at')}, {_VERSION}" if deleted else f"{columns}, {_VERSION}"
            live = "" if deleted else " AND deleted_at IS NULL"
            # Column names and expressions come from the policy, values are parameters.
            sql[("item", deleted, False)] = f"SELECT {select} FROM {_TABLE} WHERE id = %s{live}"  # noqa: S608
            sql[("range", deleted, False)] = (
                f"SELECT {select} FROM {_TABLE} WHERE id >= %s AND id < %s{live} ORDER BY id"  # noqa: S608
            )
            for by_card in (False, True):
                where = ("credit_card_num_bidx = %s AND " if by_card else "") + "id > %s" + live
                sql[("page", deleted, by_card)] = f"SELECT {select} FROM {_TABLE} WHERE {where} ORDER BY id LIMIT %s"  # noqa: S608
        ciphertexts: Callable[[Row], tuple[Any, ...]] | None = None
        if positions:
            pick = operator.itemgetter(*positions)
            ciphertexts = pick if len(positions) > 1 else (lambda row: (pick(row),))
        return cls(
            role=role,
            fields=fields,
            names=tuple(f.name for f in fields),
            encrypted_names=tuple(fields[i].name for i in positions),
            encrypted_columns=tuple(fields[i].column for i in positions),
            ciphertexts=ciphertexts,
            sql=MappingProxyType(sql),
        )

    @property
    def decrypts(self) -> bool:
        return self.ciphertexts is not None

    @property
    def columns(self) -> tuple[str, ...]:
        return tuple(f.column for f in self.fields)

    def page_sql(self, *, include_deleted: bool, by_card: bool) -> str:
        return self.sql[("page", include_deleted, by_card)]

    def item_sql(self, *, include_deleted: bool) -> str:
        return self.sql[("item", include_deleted, False)]

    def range_sql(self) -> str:
        """Live customers with lo <= id < hi, in id order (an item and its neighbours, for the cache)."""
        return self.sql[("range", False, False)]

    def render(
        self, rows: Sequence[Row], decryptor: RowDecrypting | None, *, include_deleted: bool
    ) -> list[dict[str, Any]]:
        """Rows as the JSON objects this role sees; the ciphertext columns decrypted with `decryptor`."""
        names = self.names
        # zip stops at the shorter: the row's trailing deleted_at and version are not fields.
        records = [dict(zip(names, row, strict=False)) for row in rows]
        if self.ciphertexts is not None:
            if decryptor is None:  # a programming error: decrypting projections get a keyring
                raise RuntimeError("a decrypting projection was rendered without a decryptor")
            ciphertexts, encrypted, decrypt_row = self.ciphertexts, self.encrypted_names, decryptor.decrypt_row
            for record, row in zip(records, rows, strict=True):
                record.update(zip(encrypted, decrypt_row(row[0], ciphertexts(row)), strict=True))
        if include_deleted:
            width = len(names)
            for record, row in zip(records, rows, strict=True):
                record["deleted_at"] = row[width]
        return records


def _output(f: FieldPolicy, view: View) -> OutputField:
    if view is View.CLEAR:
        template = _CLEAR_SELECT.get(f.kind)
        return OutputField(f.name, f.name, view, f.name if template is None else template.format(f.name))
    if view is View.MASK:
        return OutputField(f.name, f"{f.name}_mask", view, f"{f.name}_mask")
    return OutputField(f.name, f.enc_column, view, f.enc_column)


PROJECTIONS: Final[Mapping[Role, Projection]] = MappingProxyType({r: Projection.for_role(r) for r in ROLES})
if PROJECTIONS["viewer"].fields[0].name != "id":  # the renderer and the keyset rely on it
    raise RuntimeError("the policy must list id first")


@dataclass(frozen=True, slots=True)
class Page:
    records: list[dict[str, Any]]
    ids: list[int]
    version: int | None  # the data version the rows were read at; None when no row came back
    more: bool


def _version(rows: Sequence[Row]) -> int | None:
    value = rows[0][-1] if rows else None
    return None if value is None else int(value)


async def fetch_page(
    db: Database,
    projection: Projection,
    *,
    after_id: int,
    limit: int,
    include_deleted: bool,
    card_bidx: bytes | None,
    decryptor: RowDecrypting | None,
) -> Page:
    """Up to `limit` customers after `after_id`, in id order; `more` when another page follows."""
    sql = projection.page_sql(include_deleted=include_deleted, by_card=card_bidx is not None)
    params: Sequence[Any] = (card_bidx, after_id, limit + 1) if card_bidx is not None else (after_id, limit + 1)
    rows = await db.fetch_all(sql, params)
    more = len(rows) > limit
    rows = rows[:limit]
    records = projection.render(rows, decryptor, include_deleted=include_deleted)
    return Page(records=records, ids=[int(r[0]) for r in rows], version=_version(rows), more=more)


async def fetch_item(
    db: Database,
    projection: Projection,
    *,
    record_id: int,
    include_deleted: bool,
    decryptor: RowDecrypting | None,
) -> Page:
    rows = await db.fetch_all(projection.item_sql(include_deleted=include_deleted), (record_id,))
    records = projection.render(rows, decryptor, include_deleted=include_deleted)
    return Page(records=records, ids=[int(r[0]) for r in rows], version=_version(rows), more=False)


async def fetch_range(db: Database, projection: Projection, *, low: int, high: int) -> Page:
    """The live customers with low <= id < high, in id order, as `projection` sees them (never decrypting)."""
    if projection.decrypts:  # decrypted values are never read in bulk for the cache
        raise RuntimeError("ranges are read for non-decrypting projections only")
    rows = await db.fetch_all(projection.range_sql(), (low, high))
    records = projection.render(rows, None, include_deleted=False)
    return Page(records=records, ids=[int(r[0]) for r in rows], version=_version(rows), more=False)


async def fetch_sync_runs(db: Database, *, limit: int) -> list[dict[str, Any]]:
    rows = await db.fetch_all(SELECT_SYNC_RUNS, (limit,))
    runs = []
    for row in rows:
        run: dict[str, Any] = {}
        for name, value in zip(SYNC_RUN_COLUMNS, row, strict=True):
            if isinstance(value, datetime):
                run[name] = _iso_us(value)
            elif name == "complete":
                run[name] = bool(value)
            else:
                run[name] = value
        runs.append(run)
    return runs
