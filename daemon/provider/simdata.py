"""Deterministic fake provider records, generated offline one at a time from (seed, id, version).

The shape is the provider's (a mockapi.io resource filled by faker): every value
a JSON string except `cantidad_compras_realizadas`; ids like "2"; timestamps like
"2021-07-31T00:11:06.741Z"; dashed card numbers of several lengths (a few failing
Luhn or of an unusual length, as faker's are); zip codes and account numbers that
may start with 0; car models that look numeric; DNI-photo and avatar URLs; IPv4.

A record is a pure function of its inputs, so 200k records never need to exist
at once: a page is generated when it is served. A "bad" record (quarantine
material) carries one or two invalid values, chosen deterministically too.
"""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from typing import Final

__all__ = ("BAD_VARIANTS", "make_record", "unit_hash")


def _words(text: str, sep: str | None = None) -> tuple[str, ...]:
    return tuple(word.strip() for word in text.split(sep))


_FIRST = _words(
    "Jacinto Ana Lucia Mateo Valentina Santiago Camila Sebastian Isabella Nicolas Mariana Samuel Gabriela "
    "Alejandro Daniela Diego Sofia Tomas Paula Martin Carolina Andres Elena Felipe Laura Emilio Julieta Bruno"
)
_LAST = _words(
    "Cruickshank Kuhn Gutierrez Rodriguez Schmitt Lopez Herzog Martinez Okuneva Fernandez Gomez Bergstrom "
    "Diaz Wiza Torres Ramirez Kertzmann Castro Morales Hettinger Rojas Vargas Oberbrunner Medina Sanchez"
)
_STREET_SUFFIX = _words("Squares Street Avenue Lane Road Way Court Plaza Trail Crossing Parkway Ridge")
_COLORS = _words(
    "magenta maroon teal olive ivory lavender salmon orchid turquoise azure plum indigo "
    "silver black white red green blue yellow orange purple pink gold tan"
)
_MAKES = _words("Ford Chevrolet Toyota Volkswagen Renault Fiat Nissan Honda Kia Hyundai Tesla Porsche Mazda BMW Audi")
_MODELS = _words(
    "Wrangler|Fiesta|Civic|Corolla|Golf|Clio|Sentra|Model S|Model 3|Camry|Accord|Explorer|Land Cruiser|A4|"
    "Charger|Spyder|Taurus|Mustang|Jetta|Focus|Beetle|Cayenne|Grand Caravan|CX-9",
    "|",
)
_NUMERIC_MODELS = ("1", "2", "3", "208", "500", "911", "2008", "3008")
_TYPES = (
    "SUV",
    "Sedan",
    "Coupe",
    "Hatchback",
    "Minivan",
    "Wagon",
    "Convertible",
    "Crew Cab Pickup",
    "Extended Cab Pickup",
    "Passenger Van",
    "Cargo Van",
)
# (issuer prefix, digit count, grouping) — faker's formats, dashes included.
_CARDS: Final = (
    ("4", 16, (4, 4, 4, 4)),
    ("51", 16, (4, 4, 4, 4)),
    ("55", 16, (4, 4, 4, 4)),
    ("34", 15, (4, 6, 5)),
    ("37", 15, (4, 6, 5)),
    ("6011", 16, (4, 4, 4, 4)),
    ("3528", 16, (4, 4, 4, 4)),
    ("36", 14, (4, 6, 4)),
    ("4", 13, (4, 4, 5)),
    ("6759", 19, (4, 4, 4, 4, 3)),
    ("6304", 18, (4, 4, 4, 4, 2)),
)
_UNUSUAL_CARD: Final = ("6", 20, (4, 4, 4, 4, 4))
_EPOCH_SIGNUP: Final = datetime(2021, 1, 1, tzinfo=UTC)
_SIGNUP_SPAN_S: Final = 480 * 86400
_EPOCH_BIRTH: Final = datetime(1950, 1, 1, tzinfo=UTC)
_BIRTH_SPAN_S: Final = 55 * 365 * 86400

BAD_VARIANTS: Final = (
    ("fec_alta", "2021-15-31T00:11:06.741Z"),  # month 15
    ("fec_birthday", "2022-02-30T10:00:00.000Z"),  # no 30 February
    ("ip", "300.12.7.1"),
    ("geo_latitud", "123.4567"),
    ("cantidad_compras_realizadas", -3),
    ("credit_card_num", "4111-ABCD-1111-1111"),
    ("cuenta_numero", "12-AB-34"),
    ("foto_dni", "not a url"),
    ("user_name", "x" * 300),
    ("direccion", {"calle": "Kuhn Squares", "numero": 41862}),
    ("id", None),  # replaced by a non-numeric id
)

_MASK64: Final = (1 << 64) - 1


def unit_hash(*parts: int) -> float:
    """A deterministic float in [0, 1) from integers (splitmix64), for per-record decisions."""
    x = 0x9E3779B97F4A7C15
    for part in parts:
        x = (x ^ (part & _MASK64)) & _MASK64
        x = (x + 0x9E3779B97F4A7C15) & _MASK64
        x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & _MASK64
        x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) & _MASK64
        x ^= x >> 31
    return x / 2.0**64


def make_record(seed: int, record_id: int, version: int = 0, *, bad: bool = False) -> dict[str, object]:
    """The provider record `record_id` at `version` for `seed`; `bad` adds invalid values."""
    rng = random.Random((seed & _MASK64) << 84 | (record_id & _MASK64) << 20 | (version & 0xFFFFF))
    first, last = rng.choice(_FIRST), rng.choice(_LAST)
    card, ccv = _card(rng)
    record: dict[str, object] = {
        "fec_alta": _timestamp(rng, _EPOCH_SIGNUP, _SIGNUP_SPAN_S),
        "user_name": _user_name(rng, first, last),
        "codigo_zip": _zip(rng),
        "credit_card_num": card,
        "credit_card_ccv": ccv,
        "cuenta_numero": f"{rng.randrange(10**8):08d}",
        "direccion": f"{last} {rng.choice(_STREET_SUFFIX)} {rng.randrange(1, 99999)}",
        "geo_latitud": f"{rng.uniform(-90, 90):.4f}",
        "geo_longitud": f"{rng.uniform(-180, 180):.4f}",
        "color_favorito": rng.choice(_COLORS),
        "foto_dni": _photo_url(rng),
        "ip": ".".join(str(rng.randrange(1, 255)) for _ in range(4)),
        "auto": rng.choice(_MAKES),
        "auto_modelo": rng.choice(_NUMERIC_MODELS) if rng.random() < 0.2 else rng.choice(_MODELS),
        "auto_tipo": rng.choice(_TYPES),
        "auto_color": rng.choice(_COLORS),
        "cantidad_compras_realizadas": rng.randrange(100),
        "avatar": f"https://cdn.fakercloud.com/avatars/{first.lower()}{last.lower()}_128.jpg",
        "fec_birthday": _timestamp(rng, _EPOCH_BIRTH, _BIRTH_SPAN_S),
        "id": str(record_id),
    }
    if bad:
        _spoil(record, rng, record_id)
    return record


def _spoil(record: dict[str, object], rng: random.Random, record_id: int) -> None:
    for name, value in rng.sample(BAD_VARIANTS, rng.choice((1, 1, 2))):
        record[name] = f"x{record_id}" if name == "id" else value


def _timestamp(rng: random.Random, start: datetime, span_s: int) -> str:
    moment = start + timedelta(seconds=rng.randrange(span_s), milliseconds=rng.randrange(1000))
    return f"{moment:%Y-%m-%dT%H:%M:%S}.{moment.microsecond // 1000:03d}Z"


def _user_name(rng: random.Random, first: str, last: str) -> str:
    style = rng.randrange(4)
    if style == 0:
        return f"{first}_{last}"
    if style == 1:
        return f"{first}.{last}{rng.randrange(10, 99)}"
    if style == 2:
        return f"{first}{rng.randrange(100)}"
    return f"{first[0]}{last}"


def _zip(rng: random.Random) -> str:
    five = f"{rng.randrange(100_000):05d}"
    if rng.random() < 0.1:  # a leading zero more often than chance, as the provider's data has
        five = "0" + five[1:]
    return f"{five}-{rng.randrange(10_000):04d}" if rng.random() < 0.15 else five


def _card(rng: random.Random) -> tuple[str, str]:
    prefix, length, groups = _UNUSUAL_CARD if rng.random() < 0.03 else rng.choice(_CARDS)
    body = prefix + "".join(str(rng.randrange(10)) for _ in range(length - len(prefix) - 1))
    check = _luhn_check_digit(body)
    if rng.random() < 0.08:  # faker's numbers do not always pass Luhn
        check = (check + 1 + rng.randrange(9)) % 10
    digits = body + str(check)
    parts, at = [], 0
    for size in groups:
        parts.append(digits[at : at + size])
        at += size
    ccv = f"{rng.randrange(10_000):04d}" if length == 15 else f"{rng.randrange(1000):03d}"
    return "-".join(parts), ccv


def _luhn_check_digit(body: str) -> int:
    total = 0
    for position, char in enumerate(reversed(body)):
        n = ord(char) - 48
        if position % 2 == 0:  # doubled: the check digit will sit to their right
            n = n * 2 - 9 if n > 4 else n * 2
        total += n
    return (10 - total % 10) % 10


def _photo_url(rng: random.Random) -> str:
    if rng.random() < 0.5:
        return f"http://placeimg.com/640/480/people?{rng.randrange(10**6)}"
    return f"https://loremflickr.com/640/480/people?lock={rng.randrange(10**6)}"
