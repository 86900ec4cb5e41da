"""What each role's queries select and how a row becomes the JSON object it sees.

Everything here is derived from the field policy (`daemon.policy`): a field a
role may not see is never selected, a masked field selects only its stored
mask, and only a role with a `decrypt` view selects ciphertext — so the
viewer and analyst statements cannot touch an encrypted column at all.
Every statement also reads the data version in the same statement (one
snapshot), so a page is cached under the version it really reflects.
"""

from __future__ import annotations

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
    "fetch_item",
    "fetch_page",
    "fetch_sync_runs",
)


class Decryptor(Protocol):
    """What the admin path needs from the keyring."""

    def decrypt(self, blob: bytes, *, column: str, record_id: int, table: str = ...) -> str: ...

    def blind_index(self, card_number: str) -> bytes: ...


Renderer = Callable[[Any], Any]

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


def _iso_ms_value(value: datetime) -> str:
    """A stored UTC DATETIME as the provider writes times: 2023-03-21T21:48:57.373Z."""
    return value.isoformat(timespec="milliseconds") + "Z"


# How a clear column's non-null value becomes JSON; a kind not listed is passed through as stored
# (VARCHAR columns arrive as str, INT columns as int).
_CLEAR_RENDER: Final[Mapping[Kind, Renderer]] = {Kind.TIMESTAMP: _iso_ms_value}


@dataclass(frozen=True, slots=True)
class OutputField:
    name: str
    column: str
    view: View
    render: Renderer | None  # None: the stored value as is


@dataclass(frozen=True, slots=True)
class Projection:
    """One role's view of a customer: the columns it selects and the fields it returns."""

    role: Role
    fields: tuple[OutputField, ...]
    # Per field: (name, ciphertext column to decrypt or None, renderer or None); the hot loop.
    plan: tuple[tuple[str, str | None, Renderer | None], ...]

    @classmethod
    def for_role(cls, role: Role) -> Projection:
        fields = tuple(_output(f, view) for f, view in visible_fields(role))
        plan = tuple((f.name, f.column if f.view is View.DECRYPT else None, f.render) for f in fields)
        return cls(role, fields, plan)

    @property
    def decrypts(self) -> bool:
        return any(f.view is View.DECRYPT for f in self.fields)

    @property
    def columns(self) -> tuple[str, ...]:
        return tuple(f.column for f in self.fields)

    def select(self, *, include_deleted: bool) -> str:
        columns = ", ".join(self.columns)
        return f"{columns}, deleted_at, {_VERSION}" if include_deleted else f"{columns}, {_VERSION}"

    def page_sql(self, *, include_deleted: bool, by_card: bool) -> str:
        where = "id > %s"
        if by_card:
            where = "credit_card_num_bidx = %s AND " + where
        if not include_deleted:
            where += " AND deleted_at IS NULL"
        columns = self.select(include_deleted=include_deleted)
        # Column names come from the policy, values are parameters.
        return f"SELECT {columns} FROM {CUSTOMERS_TABLE} WHERE {where} ORDER BY id LIMIT %s"  # noqa: S608

    def item_sql(self, *, include_deleted: bool) -> str:
        where = "id = %s" + ("" if include_deleted else " AND deleted_at IS NULL")
        columns = self.select(include_deleted=include_deleted)
        return f"SELECT {columns} FROM {CUSTOMERS_TABLE} WHERE {where}"  # noqa: S608 - as above

    def render(self, row: Row, decryptor: Decryptor | None, *, include_deleted: bool) -> dict[str, Any]:
        record_id = row[0]
        out: dict[str, Any] = {}
        for index, (name, ciphertext_column, convert) in enumerate(self.plan):
            value = row[index]
            if value is not None:
                if ciphertext_column is not None:
                    if decryptor is None:  # a programming error: decrypting projections get a keyring
                        raise RuntimeError("a decrypting projection was rendered without a decryptor")
                    value = decryptor.decrypt(value, column=ciphertext_column, record_id=record_id, table=_TABLE)
                elif convert is not None:
                    value = convert(value)
            out[name] = value
        if include_deleted:
            out["deleted_at"] = _iso_us(row[len(self.plan)])
        return out


def _output(f: FieldPolicy, view: View) -> OutputField:
    if view is View.CLEAR:
        return OutputField(f.name, f.name, view, _CLEAR_RENDER.get(f.kind))
    if view is View.MASK:
        return OutputField(f.name, f"{f.name}_mask", view, None)
    return OutputField(f.name, f.enc_column, view, None)


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
    decryptor: Decryptor | None,
) -> Page:
    """Up to `limit` customers after `after_id`, in id order; `more` when another page follows."""
    sql = projection.page_sql(include_deleted=include_deleted, by_card=card_bidx is not None)
    params: Sequence[Any] = (card_bidx, after_id, limit + 1) if card_bidx is not None else (after_id, limit + 1)
    rows = await db.fetch_all(sql, params)
    more = len(rows) > limit
    rows = rows[:limit]
    records = [projection.render(row, decryptor, include_deleted=include_deleted) for row in rows]
    return Page(records=records, ids=[int(r[0]) for r in rows], version=_version(rows), more=more)


async def fetch_item(
    db: Database,
    projection: Projection,
    *,
    record_id: int,
    include_deleted: bool,
    decryptor: Decryptor | None,
) -> Page:
    rows = await db.fetch_all(projection.item_sql(include_deleted=include_deleted), (record_id,))
    records = [projection.render(row, decryptor, include_deleted=include_deleted) for row in rows]
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
