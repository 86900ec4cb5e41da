"""Record validation and normalization: the provider's shape, liberal input, hostile input, quarantine safety."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from daemon.policy import FIELDS, Classification, Kind
from daemon.provider import fields as fields_module
from daemon.provider.records import UNKNOWN_KEYS, ParsedRecord, Rejected, parse_record, stored_fields
from tests.support.samples import PROVIDER_SAMPLE

SAMPLE: dict[str, Any] = {**PROVIDER_SAMPLE, "id": "2"}
NOT_PUBLIC = {f.name for f in FIELDS if f.classification is not Classification.PUBLIC}


def parsed(**changes: Any) -> ParsedRecord:
    result = parse_record({**SAMPLE, **changes})
    assert isinstance(result, ParsedRecord), result
    return result


def rejected(**changes: Any) -> Rejected:
    result = parse_record({**SAMPLE, **changes})
    assert isinstance(result, Rejected), result
    return result


def test_provider_record_is_normalized() -> None:
    """The provider's exact shape parses to typed, normalized values with the CVV dropped."""
    record = parsed()
    assert record.id == 2
    assert dict(record.values) == {
        "id": 2,
        "fec_alta": datetime(2021, 7, 31, 0, 11, 6, 741000, tzinfo=UTC),
        "user_name": "Jacinto_Cruickshank",
        "codigo_zip": "02567",
        "credit_card_num": "4111-1111-1111-1111",
        "cuenta_numero": "01553296",
        "direccion": "Kuhn Squares 41862",
        "geo_latitud": "-79.6474",
        "geo_longitud": "-114.6098",
        "color_favorito": "magenta",
        "foto_dni": "http://placeimg.com/640/480/people",
        "ip": "95.129.216.105",
        "auto": "Chrysler",
        "auto_modelo": "1",
        "auto_tipo": "SUV",
        "auto_color": "maroon",
        "cantidad_compras_realizadas": 24,
        "avatar": "https://cdn.fakercloud.com/avatars/jacinto_128.jpg",
        "fec_birthday": datetime(2022, 3, 29, 3, 50, 37, 209000, tzinfo=UTC),
    }
    assert "credit_card_ccv" not in record.values
    assert record.unknown_fields == 0 and record.anomalies == ()


def test_values_hold_exactly_the_stored_policy_fields() -> None:
    """`values` has one key per stored policy field (the CVV excluded), None when the provider omitted it."""
    record = parse_record({"id": 7})
    assert isinstance(record, ParsedRecord)
    assert list(record.values) == [f.name for f in FIELDS if f.classification is not Classification.SAD]
    assert list(record.values) == [f.name for f in stored_fields()]
    assert all(value is None for name, value in record.values.items() if name != "id")


def test_every_policy_kind_has_a_normalizer() -> None:
    """Validation is driven by the policy: every Kind in the table has a normalizer."""
    assert set(fields_module._BY_KIND) == set(Kind)


def test_liberal_input_is_accepted_and_normalized() -> None:
    """Numbers as strings, strings as numbers, spaces, grouped digits and empty strings are accepted."""
    record = parsed(
        id=" 0042 ",
        cantidad_compras_realizadas="  7 ",
        auto_modelo=911,
        codigo_zip=2567,
        geo_latitud=-12.5,
        geo_longitud=" +100.250 ",
        credit_card_num=" 4111 1111 1111 1111 ",
        cuenta_numero=12345678,
        user_name="  Ana  ",
        direccion="",
        color_favorito="   ",
        ip=" 10.0.0.1 ",
    )
    values = record.values
    assert record.id == 42
    assert values["cantidad_compras_realizadas"] == 7
    assert values["auto_modelo"] == "911" and values["codigo_zip"] == "2567"
    assert values["geo_latitud"] == "-12.5" and values["geo_longitud"] == "100.250"
    assert values["credit_card_num"] == "4111 1111 1111 1111" and values["cuenta_numero"] == "12345678"  # grouping kept
    assert values["user_name"] == "Ana" and values["direccion"] is None and values["color_favorito"] is None
    assert values["ip"] == "10.0.0.1"
    assert parsed(id=5).id == 5 and parsed(id=5.0).id == 5
    assert parsed(cantidad_compras_realizadas=3.0).values["cantidad_compras_realizadas"] == 3


def test_timestamps_become_utc_milliseconds() -> None:
    """Offsets are converted to UTC, a missing offset means UTC, precision is cut to the column's milliseconds."""
    assert parsed(fec_alta="2021-07-31T02:11:06.741+02:00").values["fec_alta"] == datetime(
        2021, 7, 31, 0, 11, 6, 741000, tzinfo=UTC
    )
    assert parsed(fec_alta="2021-07-31 00:11:06").values["fec_alta"] == datetime(2021, 7, 31, 0, 11, 6, tzinfo=UTC)
    assert parsed(fec_alta="2021-07-31T00:11:06.741999Z").values["fec_alta"].microsecond == 741000  # type: ignore[union-attr]
    assert parsed(fec_birthday="1990-01-02").values["fec_birthday"] == datetime(1990, 1, 2, tzinfo=UTC)


def test_card_oddities_are_kept_as_anomalies() -> None:
    """A card number failing Luhn or of unusual length is kept, with the anomaly named."""
    assert parsed(credit_card_num="4111-1111-1111-1112").anomalies == ("card_luhn_failed",)
    assert parsed(credit_card_num="4111-1111-1111-1111-0001").anomalies == ("card_unusual_length", "card_luhn_failed")
    assert parsed(credit_card_num="4111-1111-1111-1111-000").anomalies == ("card_luhn_failed",)
    assert parsed(credit_card_num="4111-1111-1111-1111").anomalies == ()
    assert parsed(credit_card_num="1234-5678-903").anomalies == ("card_unusual_length",)  # 11 digits, Luhn ok


def test_unknown_fields_are_counted_not_kept() -> None:
    """Extra provider keys are ignored and counted."""
    record = parsed(extra="x", nested={"a": 1}, ID="3")
    assert record.unknown_fields == 3
    assert set(record.values) == {f.name for f in stored_fields()}


BAD_VALUES: list[tuple[str, object, str]] = [
    ("id", None, "missing"),
    ("id", "", "missing"),
    ("id", "abc", "invalid_number"),
    ("id", "-1", "invalid_number"),
    ("id", "+1", "invalid_number"),
    ("id", "1.5", "invalid_number"),
    ("id", 1.5, "invalid_number"),
    ("id", "\u0663", "invalid_number"),  # ARABIC-INDIC DIGIT THREE: int() would accept it
    ("id", 0, "out_of_range"),
    ("id", 2**63, "out_of_range"),
    ("id", True, "invalid_type"),
    ("id", {"a": 1}, "invalid_type"),
    ("id", "1" * 21, "too_long"),
    ("fec_alta", "2021-15-01T00:00:00.000Z", "invalid_date"),
    ("fec_alta", "2021-02-30T00:00:00Z", "invalid_date"),
    ("fec_alta", "yesterday", "invalid_date"),
    ("fec_alta", "0999-12-31T00:00:00Z", "out_of_range"),
    ("fec_alta", "0001-01-01T00:00:00+01:00", "invalid_date"),
    ("fec_alta", 1627690266, "invalid_type"),
    ("fec_birthday", ["2021-01-01"], "invalid_type"),
    ("user_name", "x" * 256, "too_long"),
    ("user_name", "a\x00b", "invalid_text"),
    ("user_name", "a\ud800b", "invalid_text"),
    ("user_name", {"first": "a"}, "invalid_type"),
    ("user_name", True, "invalid_type"),
    ("user_name", float("nan"), "invalid_number"),
    ("codigo_zip", "1" * 17, "too_long"),
    ("credit_card_num", "4111-1111-x111-1111", "invalid_digits"),
    ("credit_card_num", "4111--1111", "invalid_digits"),
    ("credit_card_num", "-4111-1111", "invalid_digits"),
    ("credit_card_num", "\uff11\uff12\uff13\uff14\uff15\uff16\uff17\uff18", "invalid_digits"),  # fullwidth digits
    ("credit_card_num", "1234", "too_short"),
    ("credit_card_num", 4111111111111111.0, "invalid_type"),
    ("credit_card_num", -4111111111111111, "invalid_digits"),
    ("credit_card_num", "4" * 33, "too_long"),
    ("cuenta_numero", "1234", "too_short"),
    ("cuenta_numero", "12a45678", "invalid_digits"),
    ("geo_latitud", "91", "out_of_range"),
    ("geo_latitud", "-90.0001", "out_of_range"),
    ("geo_longitud", "180.5", "out_of_range"),
    ("geo_longitud", "1e2", "invalid_number"),
    ("geo_longitud", "abc", "invalid_number"),
    ("geo_longitud", float("inf"), "invalid_number"),
    ("geo_latitud", 1e300, "out_of_range"),
    ("ip", "256.1.1.1", "invalid_ipv4"),
    ("ip", "::1", "invalid_ipv4"),
    ("ip", "1.2.3", "invalid_ipv4"),
    ("ip", 16909060, "invalid_type"),
    ("avatar", "javascript:alert(1)", "invalid_url"),
    ("avatar", "http://", "invalid_url"),
    ("avatar", "http://host:99999/x", "invalid_url"),
    ("foto_dni", "http://host/a b", "invalid_url"),
    ("foto_dni", "https://[::1/x", "invalid_url"),
    ("avatar", "https://x/" + "a" * 2048, "too_long"),
    ("cantidad_compras_realizadas", -1, "out_of_range"),
    ("cantidad_compras_realizadas", 2**32, "out_of_range"),
    ("cantidad_compras_realizadas", "3.5", "invalid_number"),
    ("cantidad_compras_realizadas", False, "invalid_type"),
    ("cantidad_compras_realizadas", 10**400, "out_of_range"),
]


@pytest.mark.parametrize(("field", "value", "rule"), BAD_VALUES)
def test_invalid_value_is_rejected_with_its_rule(field: str, value: object, rule: str) -> None:
    """Each kind of invalid value is rejected with (field, rule) and never crashes."""
    result = rejected(**{field: value})
    assert result.reasons == ((field, rule),)


@pytest.mark.parametrize("policy", [f for f in FIELDS if f.kind is Kind.TEXT], ids=lambda f: f.name)
def test_text_length_follows_the_policy(policy: Any) -> None:
    """Text fields accept exactly max_len characters (from the policy) and reject one more."""
    assert parsed(**{policy.name: "é" * policy.max_len}).values[policy.name] == "é" * policy.max_len
    assert rejected(**{policy.name: "é" * (policy.max_len + 1)}).reasons == ((policy.name, "too_long"),)


def test_every_problem_is_reported() -> None:
    """A record with several problems lists each of them, in policy order, without values."""
    result = rejected(id="x", fec_alta="2021-13-01", ip="1.2.3.999", credit_card_num="12")
    assert result.reasons == (
        ("id", "invalid_number"),
        ("fec_alta", "invalid_date"),
        ("credit_card_num", "too_short"),
        ("ip", "invalid_ipv4"),
    )
    assert result.provider_id == "x"


def test_the_cvv_is_never_validated_or_reported() -> None:
    """Whatever the CVV holds, it neither rejects the record nor appears anywhere."""
    record = parsed(credit_card_ccv={"nested": ["x" * 10_000]})
    assert "credit_card_ccv" not in record.values
    result = rejected(id="bad", credit_card_ccv="999")
    assert all(field != "credit_card_ccv" for field, _ in result.reasons)
    assert "credit_card_ccv" not in result.record


def test_non_objects_are_rejected() -> None:
    """A record that is not a JSON object is rejected with one reason."""
    for raw in (None, 1, "x", [SAMPLE], True, 1.5):
        result = parse_record(raw)
        assert isinstance(result, Rejected)
        assert result.reasons == (("record", "not_an_object"),) and result.record == {}


def test_rejected_record_keeps_only_public_fields_bounded_and_scrubbed() -> None:
    """A quarantined record has no pci/financial/sad/pii field, bounded values, scrubbed card-like runs."""
    result = rejected(
        fec_alta="2021-13-01",
        user_name="pay with 4111 1111 1111 1111 please " + "x" * 10_000,
        direccion={"deep": [1, 2]},
        auto=10**15,
        **{"surprise" + "k" * 100: "v", "card": "5500-0000-0000-0004"},
    )
    record = result.record
    assert not NOT_PUBLIC & set(record)
    assert record["fec_alta"] == "2021-13-01"
    assert isinstance(record["user_name"], str) and len(record["user_name"]) <= 256
    assert "4111" not in record["user_name"]
    assert record["direccion"] == "<object>" and record["auto"] == "[REDACTED]"
    unknown = record[UNKNOWN_KEYS]
    assert isinstance(unknown, list) and unknown[0] == "card" and all(len(k) <= 64 for k in unknown)
    text = json.dumps(record)
    for secret in ("5500", "4111", "583", "01553296", "95.129.216.105", "placeimg", "-79.6474"):
        assert secret not in text


def test_rejected_record_is_storable_json() -> None:
    """A quarantined record always serializes to strict JSON (no NaN, no lone surrogates)."""
    result = rejected(id="x", user_name="a\ud800b", auto=float("nan"), auto_tipo=float("-inf"))
    text = json.dumps(result.record, allow_nan=False, ensure_ascii=False)
    text.encode("utf-8")
    assert result.provider_id == "x"


def test_provider_id_is_bounded_and_a_bad_one_scrubbed() -> None:
    """The rejected record's provider id is cut to 64 chars, and card-like ids are scrubbed."""
    assert rejected(id="x" * 100).provider_id == "x" * 63 + "…"
    assert rejected(id="9" * 100).provider_id == "[REDACTED]"
    assert rejected(id="4111 1111 1111 1111").provider_id == "[REDACTED]"
    assert rejected(id={"x": 1}).provider_id is None
    assert rejected(ip="x").provider_id == "2"


def test_rejected_carries_the_normalized_id_only_when_valid() -> None:
    """A record rejected for another field still names its id as an int; an invalid id gives None."""
    assert rejected(ip="x", id=" 0042 ").id == 42
    assert rejected(id="x").id is None
    assert rejected(id=None).id is None


def test_canonical_is_stable_and_ignores_cvv_and_spacing() -> None:
    """Equivalent records give the same canonical bytes; a real change gives different bytes."""
    base = parsed().canonical()
    assert parsed(credit_card_ccv="000", extra="y").canonical() == base
    assert parsed(credit_card_num=" 4111-1111-1111-1111 ", user_name=" Jacinto_Cruickshank ").canonical() == base
    # The card's grouping is stored as sent (the admin sees it, the mask keeps it): regrouping is a change.
    assert parsed(credit_card_num="4111 1111 1111 1111").canonical() != base
    assert parsed(fec_alta="2021-07-31T02:11:06.741+02:00").canonical() == base
    assert parsed(auto_color="red").canonical() != base
    assert json.loads(base)["fec_alta"] == "2021-07-31T00:11:06.741Z"
    assert b"583" not in base


# --- properties -----------------------------------------------------------------------------

json_scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(10**30), max_value=10**30)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=50)
)
json_values = st.recursive(
    json_scalars,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4),
    max_leaves=12,
)
field_names = st.sampled_from([f.name for f in FIELDS])
hostile_records = st.dictionaries(field_names | st.text(max_size=12), json_values, max_size=25)


@given(json_values)
def test_parse_never_raises_on_any_json_value(raw: object) -> None:
    """parse_record returns a result (never raises) for any JSON value."""
    assert isinstance(parse_record(raw), ParsedRecord | Rejected)


@given(hostile_records)
@settings(suppress_health_check=[HealthCheck.too_slow])
def test_parse_never_raises_on_hostile_records(raw: dict[str, object]) -> None:
    """Any mix of policy keys and arbitrary JSON values parses or is rejected, and a Rejected stores as JSON."""
    result = parse_record(raw)
    if isinstance(result, Rejected):
        assert result.reasons
        json.dumps(result.record, allow_nan=False)
        assert result.provider_id is None or len(result.provider_id) <= 64


def _digits(min_size: int, max_size: int) -> st.SearchStrategy[str]:
    return st.text(alphabet="0123456789", min_size=min_size, max_size=max_size)


def _text(max_len: int) -> st.SearchStrategy[str]:
    alphabet = st.characters(blacklist_categories=("Cs", "Cc"))
    return st.text(alphabet, min_size=1, max_size=max_len).filter(lambda s: s.strip() == s and s != "")


valid_records = st.fixed_dictionaries(
    {
        "id": st.integers(min_value=1, max_value=2**63 - 1).map(str),
        "fec_alta": st.datetimes(min_value=datetime(1000, 1, 2), max_value=datetime(9999, 12, 30)).map(
            lambda d: d.isoformat() + "Z"
        ),
        "user_name": _text(255),
        "codigo_zip": _digits(1, 16),
        "credit_card_num": st.lists(_digits(1, 6), min_size=2, max_size=5)
        .map("-".join)
        .filter(lambda s: len(s.replace("-", "")) >= 8 and len(s) <= 32),
        "credit_card_ccv": _digits(3, 4),
        "cuenta_numero": _digits(5, 34),
        "geo_latitud": st.decimals(min_value=-90, max_value=90, places=4).map(str),
        "geo_longitud": st.decimals(min_value=-180, max_value=180, places=6).map(str),
        "ip": st.ip_addresses(v=4).map(str),
        "avatar": st.from_regex(r"https://[a-z]{1,20}\.com/[a-z0-9_]{0,40}\.jpg", fullmatch=True),
        "cantidad_compras_realizadas": st.integers(min_value=0, max_value=2**32 - 1),
        "auto_modelo": _text(128),
    }
)


def _render(values: Any) -> dict[str, object]:
    """Normalized values back into the provider's shape."""
    out: dict[str, object] = {}
    for name, value in values.items():
        out[name] = value.isoformat() if isinstance(value, datetime) else value
    return out


@given(valid_records)
@settings(suppress_health_check=[HealthCheck.too_slow])
def test_valid_records_are_accepted_and_round_trip(raw: dict[str, object]) -> None:
    """A valid record is accepted, and its normalized values parse again to the same record."""
    first = parse_record(raw)
    assert isinstance(first, ParsedRecord), first
    second = parse_record(_render(first.values))
    assert isinstance(second, ParsedRecord), second
    assert second.values == first.values and second.canonical() == first.canonical()


SECRET_TAG = "ZQXJ"
secret_values = st.one_of(
    _digits(8, 19).map(lambda d: d + SECRET_TAG),
    _digits(12, 19),
    st.builds(lambda d: {"v": d + SECRET_TAG}, _digits(1, 5)),
).map(lambda v: v)


@given(hostile_records, secret_values, secret_values, secret_values)
@settings(suppress_health_check=[HealthCheck.too_slow])
def test_rejected_never_holds_card_account_or_cvv(raw: dict[str, object], card: Any, ccv: Any, account: Any) -> None:
    """Whatever else a record holds, a Rejected never contains the card, CVV or account, by key or value."""
    raw = {**raw, "credit_card_num": card, "credit_card_ccv": ccv, "cuenta_numero": account, "id": {"bad": 1}}
    result = parse_record(raw)
    assert isinstance(result, Rejected)
    assert not {"credit_card_num", "credit_card_ccv", "cuenta_numero"} & set(result.record)
    dumped = json.dumps(result.record) + repr(result.reasons) + str(result.provider_id)
    assert SECRET_TAG not in dumped
    for value in (card, ccv, account):
        if isinstance(value, str) and value.isdigit():
            assert value not in dumped
