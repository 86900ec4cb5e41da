"""The validation fast paths give exactly what the general checks give; the raw digest never holds the CVV."""

from __future__ import annotations

import ipaddress
import json
from decimal import Decimal
from typing import Any
from urllib.parse import urlsplit

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from daemon.policy import FIELDS, Classification, by_name
from daemon.provider import fields as fields_module
from daemon.provider.fields import luhn_ok, normalize
from daemon.provider.records import (
    NORMALIZATION_VERSION,
    ParsedRecord,
    _canonical_json,
    format_timestamp,
    parse_record,
    quick_id,
    raw_digest_input,
    unknown_field_count,
)
from tests.provider.test_records import SAMPLE, hostile_records, valid_records

URLISH = st.text(alphabet="hHtTpPsS:/.-?#@[]%abcxyz019 \u00e9", max_size=30)
IPISH = st.text(alphabet="0123456789.x -", max_size=18)
DECIMALISH = st.text(alphabet="0123456789.-+e ", max_size=12)


def _luhn_reference(digits: str) -> bool:
    total = 0
    for position, char in enumerate(reversed(digits)):
        n = ord(char) - 48
        if position % 2:
            n = n * 2 - 9 if n > 4 else n * 2
        total += n
    return total % 10 == 0


@given(st.text(alphabet="0123456789", max_size=40))
def test_luhn_matches_the_reference(digits: str) -> None:
    """The table-driven Luhn check agrees with the digit-by-digit definition."""
    assert luhn_ok(digits) == _luhn_reference(digits)


@given(st.one_of(URLISH, URLISH.map(lambda s: "http://" + s), URLISH.map(lambda s: "HTTPS://" + s)))
def test_plain_url_fast_path_only_takes_urls_the_general_check_keeps_unchanged(text: str) -> None:
    """A URL the fast pattern takes is one urlsplit accepts (http(s), a host, no bad port), returned as is."""
    if fields_module._PLAIN_URL.fullmatch(text):
        parts = urlsplit(text)
        assert parts.scheme.lower() in ("http", "https") and parts.hostname
        assert parts.port is None
        assert not fields_module._BAD_URL.search(text)
        assert normalize(by_name("avatar"), text, []) == text


@given(st.one_of(IPISH, st.ip_addresses(v=4).map(str)))
def test_plain_ipv4_fast_path_matches_ipaddress(text: str) -> None:
    """Dotted quads the fast pattern takes are exactly those ipaddress gives back unchanged."""
    try:
        general: str | None = str(ipaddress.IPv4Address(text))
    except ValueError:
        general = None
    if fields_module._PLAIN_IPV4.fullmatch(text):
        assert general == text


def _general_coordinate(text: str, limit: int) -> str | None:
    """The Decimal path of fields._coordinate, for a string input (None: refused)."""
    if not fields_module._DECIMAL.fullmatch(text):
        return None
    number = Decimal(text)
    if not number.is_finite() or abs(number) > limit:
        return None
    if number.is_zero():
        number = abs(number)
    normalized = format(number, "f")
    return normalized if len(normalized) <= 32 else None


@given(st.one_of(DECIMALISH, st.decimals(min_value=-200, max_value=200, places=5).map(str)))
def test_coordinate_fast_path_matches_the_decimal_path(text: str) -> None:
    """Latitudes and longitudes: the fast path returns what the Decimal path returns, or leaves it to it."""
    for name, limit in (("geo_latitud", 90), ("geo_longitud", 180)):
        stripped = text.strip()
        if not stripped:
            continue
        expected = _general_coordinate(stripped, limit)
        try:
            got: object = normalize(by_name(name), text, [])
        except fields_module.Invalid:
            got = None
        assert got == expected, (name, text)


def test_coordinate_edge_values() -> None:
    """The limits, negative zero and leading zeros come out as before."""
    lat = by_name("geo_latitud")
    assert normalize(lat, "90", []) == "90" and normalize(lat, "-90.000", []) == "-90.000"
    assert normalize(lat, "-0.000", []) == "0.000" and normalize(lat, "-0", []) == "0"
    assert normalize(lat, "007.5", []) == "7.5" and normalize(lat, "+1.5", []) == "1.5"
    for bad in ("90.0001", "-91", "1e400"):
        try:
            normalize(lat, bad, [])
        except fields_module.Invalid:
            continue
        raise AssertionError(bad)


@given(valid_records)
@settings(suppress_health_check=[HealthCheck.too_slow])
def test_canonical_bytes_are_those_of_the_json_form(raw: dict[str, object]) -> None:
    """The direct canonical writer gives json.dumps's bytes: content hashes stored before stay valid."""
    record = parse_record(raw)
    assert isinstance(record, ParsedRecord)
    assert record.canonical() == _canonical_json(record.values)


def test_canonical_falls_back_on_unexpected_values() -> None:
    """A value of another type (or a missing key) takes the json.dumps path, with the same result."""
    record = parse_record(SAMPLE)
    assert isinstance(record, ParsedRecord)
    odd = ParsedRecord(id=record.id, values={**record.values, "auto": 1.5})
    assert odd.canonical() == _canonical_json(odd.values) and b'"auto":1.5' in odd.canonical()
    fewer = ParsedRecord(id=record.id, values={k: v for k, v in record.values.items() if k != "auto"})
    assert fewer.canonical() == _canonical_json(fewer.values)


@given(st.datetimes())
def test_format_timestamp_is_the_strftime_form(moment: Any) -> None:
    """Milliseconds truncated, `Z`, for every year (the fast isoformat path included)."""
    expected = f"{moment:%Y-%m-%dT%H:%M:%S}.{moment.microsecond // 1000:03d}Z"
    assert format_timestamp(moment) == expected


def test_quick_id_takes_only_the_usual_shapes() -> None:
    """Digits or an int in range give the id parse_record gives; anything else is left to the full parse."""
    assert quick_id({"id": "2"}) == 2 and quick_id({"id": 7}) == 7
    assert quick_id({"id": str(2**63 - 1)}) == 2**63 - 1
    for odd in (" 2", "+2", "0", "02x", "٣", "", str(2**63), True, 2.0, None, [1], -5, 0):
        assert quick_id({"id": odd}) is None, odd
    assert quick_id({}) is None


# Ids of the shapes quick_id takes (half the draws, so the property is checked, not skipped) and odd ones.
ID_VALUES = st.one_of(
    st.integers(1, 2**63 - 1),
    st.integers(1, 2**63 - 1).map(str),
    st.text(alphabet="0123456789 +-x.", max_size=21),
    st.integers(-5, 2**64),
)


@given(hostile_records, ID_VALUES)
@settings(suppress_health_check=[HealthCheck.too_slow])
def test_quick_id_agrees_with_parse_record(hostile: dict[str, object], id_value: object) -> None:
    """Whenever quick_id gives an id, parse_record normalizes the record's id to the same one."""
    raw = {**hostile, "id": id_value}
    record_id = quick_id(raw)
    if record_id is not None:
        parsed = parse_record(raw)
        assert parsed.id == record_id


def test_raw_digest_input_leaves_out_the_cvv_and_is_versioned() -> None:
    """Only the known fields' values count, never the CVV; any value change, even of type, changes the bytes."""
    base = raw_digest_input(SAMPLE)
    assert base is not None
    assert base.startswith(f"customers-mngr raw v{NORMALIZATION_VERSION} ".encode())
    sad = [f.name for f in FIELDS if f.classification is Classification.SAD]
    assert sad == ["credit_card_ccv"]
    assert b"583" not in base and b"ccv" not in base
    assert raw_digest_input({**SAMPLE, "credit_card_ccv": "999"}) == base
    assert raw_digest_input({k: v for k, v in SAMPLE.items() if k != "credit_card_ccv"}) == base
    # What the parser ignores is ignored here too: key order, unknown keys, a missing key vs null.
    assert raw_digest_input(dict(reversed(list(SAMPLE.items())))) == base
    assert raw_digest_input({**SAMPLE, "nickname": "x"}) == base
    assert raw_digest_input({k: v for k, v in SAMPLE.items() if k != "auto"}) == raw_digest_input(
        {**SAMPLE, "auto": None}
    )
    # Everything else changes it: a value, or only its JSON type.
    assert raw_digest_input({**SAMPLE, "direccion": "elsewhere"}) != base
    assert raw_digest_input({**SAMPLE, "cantidad_compras_realizadas": "24"}) != base
    assert raw_digest_input({**SAMPLE, "cantidad_compras_realizadas": 24.0}) != base
    assert raw_digest_input({**SAMPLE, "auto": None}) != raw_digest_input({**SAMPLE, "auto": "None"})
    assert raw_digest_input({**SAMPLE, "auto": float("nan")}) != raw_digest_input({**SAMPLE, "auto": None})
    assert "credit_card_ccv" in SAMPLE  # the caller's record is not changed


CVV_MARK = "CVV-ZQXJ-4721"


@given(hostile_records, hostile_records)
@settings(suppress_health_check=[HealthCheck.too_slow])
def test_raw_digest_input_never_raises_never_holds_the_cvv_and_tells_values_apart(
    first: dict[str, object], second: dict[str, object]
) -> None:
    """Any JSON record gives bytes without its CVV (or None); records whose known values differ never collide."""
    digest = raw_digest_input({**first, "credit_card_ccv": CVV_MARK})
    if digest is not None:
        assert CVV_MARK.encode() not in digest
    names = [f.name for f in FIELDS if f.classification is not Classification.SAD]
    a, b = raw_digest_input(first), raw_digest_input(second)
    same_values = [json.dumps(first.get(n)) for n in names] == [json.dumps(second.get(n)) for n in names]
    if a is not None and b is not None and not same_values:
        assert a != b


def test_unknown_field_count() -> None:
    """Keys the policy does not know are counted."""
    assert unknown_field_count(SAMPLE) == 0
    assert unknown_field_count({**SAMPLE, "x": 1, "y": None}) == 2
