"""The field policy: every provider field, its classification, storage treatment and who sees it.

This table is the single source of truth. The syncer derives validation and
storage from it, the API derives each role's projection, the OpenAPI spec and
the README's data section are generated from it, and a test checks the
migrations create exactly the columns it implies. Adding a field is one line
here (plus a migration adding its columns).

Classifications and their default treatment:
- public    stored in clear;
- pii       encrypted at rest (AES-256-GCM, bound to table/column/id);
- financial encrypted at rest, plus the last 4 digits in clear;
- pci       encrypted at rest, plus last 4 digits, a display mask and a blind index in clear;
- sad       sensitive authentication data (the CVV): dropped when a record is parsed,
            never stored, logged, quarantined or returned (PCI DSS 3.3.1).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from enum import StrEnum
from types import MappingProxyType
from typing import Final, Literal

from daemon.config.http import ROLES, Role

__all__ = (
    "CUSTOMERS_TABLE",
    "FIELDS",
    "Classification",
    "Column",
    "FieldPolicy",
    "Kind",
    "View",
    "by_name",
    "columns",
    "encrypted_fields",
    "field_names",
    "revealed_classes",
    "sensitive_field_names",
    "visible_fields",
)

CUSTOMERS_TABLE: Final = "customers"


class Classification(StrEnum):
    PUBLIC = "public"
    PII = "pii"
    FINANCIAL = "financial"
    PCI = "pci"
    SAD = "sad"


class Kind(StrEnum):
    """The provider value's type, which decides validation and the clear column's SQL type."""

    ID = "id"  # decimal digits or an integer; the primary key
    TEXT = "text"
    COUNT = "count"  # a non-negative integer
    TIMESTAMP = "timestamp"  # ISO-8601, stored as UTC
    URL = "url"
    IPV4 = "ipv4"
    LATITUDE = "latitude"
    LONGITUDE = "longitude"
    CARD_NUMBER = "card_number"  # digits, optionally grouped with dashes or spaces
    ACCOUNT_NUMBER = "account_number"  # digits, may start with 0
    CVV = "cvv"


class View(StrEnum):
    """How a role sees a field: the stored clear value, the stored mask, or the decrypted value."""

    CLEAR = "clear"
    MASK = "mask"
    DECRYPT = "decrypt"


@dataclass(frozen=True, slots=True)
class FieldPolicy:
    name: str
    kind: Kind
    classification: Classification
    max_len: int
    views: MappingProxyType[Role, View]
    doc: str

    @property
    def stored(self) -> bool:
        return self.classification is not Classification.SAD

    @property
    def encrypted(self) -> bool:
        return self.classification in (Classification.PII, Classification.FINANCIAL, Classification.PCI)

    @property
    def enc_column(self) -> str:
        return f"{self.name}_enc"


def _f(
    name: str,
    kind: Kind,
    classification: Classification,
    max_len: int,
    doc: str,
    **views: View,
) -> FieldPolicy:
    unknown = set(views) - set(ROLES)
    if unknown:
        raise ValueError(f"unknown roles {unknown} for field {name}")
    return FieldPolicy(name, kind, classification, max_len, MappingProxyType(dict(views)), doc)  # type: ignore[arg-type]


_P, _I, _F, _C, _S = (
    Classification.PUBLIC,
    Classification.PII,
    Classification.FINANCIAL,
    Classification.PCI,
    Classification.SAD,
)
_CL, _M, _D = View.CLEAR, View.MASK, View.DECRYPT

# name, kind, classification, max length, doc, then role → view. Admin sees every stored field.
FIELDS: Final[tuple[FieldPolicy, ...]] = (
    _f("id", Kind.ID, _P, 20, "provider id (integer)", viewer=_CL, analyst=_CL, admin=_CL),
    _f("fec_alta", Kind.TIMESTAMP, _P, 40, "sign-up time, UTC ISO-8601", admin=_CL),
    _f("user_name", Kind.TEXT, _P, 255, "user name", viewer=_CL, analyst=_CL, admin=_CL),
    _f("codigo_zip", Kind.TEXT, _P, 16, "postal code (string: may start with 0)", admin=_CL),
    _f(
        "credit_card_num",
        Kind.CARD_NUMBER,
        _C,
        32,
        "card number (PAN); analysts see a mask with the last 4",
        analyst=_M,
        admin=_D,
    ),
    _f("credit_card_ccv", Kind.CVV, _S, 8, "card verification code: never stored or returned"),
    _f("cuenta_numero", Kind.ACCOUNT_NUMBER, _F, 34, "bank account number", admin=_D),
    _f("direccion", Kind.TEXT, _P, 255, "postal address", viewer=_CL, analyst=_CL, admin=_CL),
    _f("geo_latitud", Kind.LATITUDE, _I, 32, "latitude (decimal string)", admin=_D),
    _f("geo_longitud", Kind.LONGITUDE, _I, 32, "longitude (decimal string)", admin=_D),
    _f("color_favorito", Kind.TEXT, _P, 64, "favourite colour", admin=_CL),
    _f("foto_dni", Kind.URL, _I, 2048, "URL of the identity document photo", admin=_D),
    _f("ip", Kind.IPV4, _I, 15, "IPv4 address", admin=_D),
    _f("auto", Kind.TEXT, _P, 128, "car make", admin=_CL),
    _f("auto_modelo", Kind.TEXT, _P, 128, "car model (string: may look numeric)", admin=_CL),
    _f("auto_tipo", Kind.TEXT, _P, 128, "car type", admin=_CL),
    _f("auto_color", Kind.TEXT, _P, 64, "car colour", admin=_CL),
    _f("cantidad_compras_realizadas", Kind.COUNT, _P, 10, "number of purchases (integer)", admin=_CL),
    _f("avatar", Kind.URL, _P, 2048, "avatar URL", viewer=_CL, analyst=_CL, admin=_CL),
    _f("fec_birthday", Kind.TIMESTAMP, _P, 40, "birthday, UTC ISO-8601", admin=_CL),
)

_BY_NAME: Final = MappingProxyType({f.name: f for f in FIELDS})

# Which sensitive class a view reveals, for the audit trail (PCI DSS 10.2).
_REVEALS: Final = {
    (Classification.PCI, View.MASK): "pci:mask",
    (Classification.PCI, View.DECRYPT): "pci:full",
    (Classification.FINANCIAL, View.DECRYPT): "financial",
    (Classification.PII, View.DECRYPT): "pii",
}


def by_name(name: str) -> FieldPolicy:
    return _BY_NAME[name]


def field_names() -> tuple[str, ...]:
    return tuple(_BY_NAME)


def encrypted_fields() -> tuple[FieldPolicy, ...]:
    return tuple(f for f in FIELDS if f.encrypted)


def sensitive_field_names() -> frozenset[str]:
    """Every field that is not public: its values must never reach a log line."""
    return frozenset(f.name for f in FIELDS if f.classification is not Classification.PUBLIC)


def visible_fields(role: Role) -> tuple[tuple[FieldPolicy, View], ...]:
    """What a role sees, in provider order. A field not listed for a role is denied."""
    return tuple((f, f.views[role]) for f in FIELDS if role in f.views)


def revealed_classes(role: Role) -> tuple[str, ...]:
    """The sensitive classes a role's projection reveals, e.g. ("pci:mask",)."""
    seen = {_REVEALS[key] for f, view in visible_fields(role) if (key := (f.classification, view)) in _REVEALS}
    return tuple(sorted(seen))


ColumnRole = Literal["clear", "ciphertext", "last4", "mask", "blind_index"]


@dataclass(frozen=True, slots=True)
class Column:
    """One stored column of the customers table and the field it comes from."""

    name: str
    field: str
    role: ColumnRole


def columns() -> Iterator[Column]:
    """The data columns the policy implies, in table order."""
    for f in FIELDS:
        if not f.stored:
            continue
        if not f.encrypted:
            yield Column(f.name, f.name, "clear")
            continue
        yield Column(f.enc_column, f.name, "ciphertext")
        if f.classification in (Classification.FINANCIAL, Classification.PCI):
            yield Column(f"{f.name}_last4", f.name, "last4")
        if f.classification is Classification.PCI:
            yield Column(f"{f.name}_mask", f.name, "mask")
            yield Column(f"{f.name}_bidx", f.name, "blind_index")
