"""SQL literals of the bulk statements: hostile values round-trip through the server in every quoting mode."""

from __future__ import annotations

import random
from collections.abc import Callable
from datetime import UTC, datetime

import pytest

from daemon.config import Settings
from daemon.db.connect import open_database
from daemon.db.literals import literal, row_literal
from daemon.observability.metrics import Metrics

# Every character MySQL escapes or treats specially, quotes of all kinds, format and LIKE
# characters, multi-byte and 4-byte UTF-8 (and bytes of GBK-style trail ranges for good measure).
HOSTILE = "'\"\\\x00\r\n\x1a\t`%_;--/*#)(, é漢字🙂\u0301\u202e\x7f\x5c\x27Ω\u017f"
FIXED_TEXT = [
    "",
    "plain",
    "'",
    "\\",
    "\\'",
    "''",
    "\\\\'",
    "x' OR '1'='1",
    "'); DROP TABLE t; --",
    "\x00",
    "a\x1ab",
    "trailing\\",
    "%s %(x)s {0}",
    "🙂" * 20,
    HOSTILE,
]


def _texts(count: int, seed: int) -> list[str]:
    rand = random.Random(seed)
    return FIXED_TEXT + ["".join(rand.choice(HOSTILE) for _ in range(rand.randint(1, 40))) for _ in range(count)]


def _blobs(count: int, seed: int) -> list[bytes]:
    rand = random.Random(seed)
    every = bytes(range(256))
    return [b"", every, b"'\\\x00", *(rand.randbytes(rand.randint(1, 64)) for _ in range(count))]


@pytest.mark.parametrize("mode", ["", "NO_BACKSLASH_ESCAPES", "ANSI_QUOTES", "NO_BACKSLASH_ESCAPES,ANSI_QUOTES"])
async def test_hostile_values_round_trip_in_every_quoting_mode(
    mode: str, make_settings: Callable[..., Settings], metrics: Metrics, fresh_db: Callable[[], str]
) -> None:
    """Text, bytes, ints, NULL and datetimes written as literals read back identical, whatever the SQL mode."""
    texts, blobs = _texts(300, seed=len(mode)), _blobs(300, seed=len(mode))
    moments = [
        datetime(2021, 7, 31, 0, 11, 6, 741000),
        datetime(1000, 1, 1),
        datetime(9999, 12, 31, 23, 59, 59, 999999),
    ]
    numbers = [0, 1, 2**63 - 1, -(2**63)]
    rows = [
        (
            i,
            texts[i % len(texts)],
            blobs[i % len(blobs)],
            numbers[i % len(numbers)],
            moments[i % len(moments)],
            None,
        )
        for i in range(max(len(texts), len(blobs)))
    ]
    settings = make_settings(fresh_db())
    async with open_database(settings.db, metrics=metrics, create=False) as db, db.session() as session:
        if mode:
            await session.execute(f"SET SESSION sql_mode = CONCAT(@@sql_mode, ',{mode}')")
        await session.execute(
            "CREATE TEMPORARY TABLE lit (id INT PRIMARY KEY, t TEXT CHARACTER SET utf8mb4, b BLOB, n BIGINT, "
            "d DATETIME(6), z VARCHAR(8) NULL) DEFAULT CHARSET=utf8mb4"
        )
        values = ",".join(map(row_literal, rows))
        assert await session.execute("INSERT INTO lit (id, t, b, n, d, z) VALUES " + values) == len(rows)
        stored = await session.fetch_all("SELECT id, t, b, n, d, z FROM lit ORDER BY id")
    assert [(r[0], r[1], bytes(r[2]), r[3], r[4], r[5]) for r in stored] == rows


def test_literal_forms() -> None:
    """Plain text is quoted as is; anything that could close or escape a quote becomes hex."""
    assert literal(None) == "NULL" and literal(42) == "42" and literal(-7) == "-7"
    assert literal("abc") == "'abc'" and literal("") == "''"
    assert literal("a'b") == "_utf8mb4 X'" + b"a'b".hex() + "'"
    assert literal("é") == "'é'"  # not special: multi-byte UTF-8 never holds an ASCII quote or backslash
    assert literal(b"\x00'") == "X'0027'"
    assert literal(datetime(2021, 1, 2, 3, 4, 5)) == "'2021-01-02 03:04:05'"
    assert literal(datetime(2021, 1, 2, 3, 4, 5, 6)) == "'2021-01-02 03:04:05.000006'"
    assert row_literal((1, None, "x")) == "(1,NULL,'x')"
    assert ",".join(map(row_literal, [(1,), (2,)])) == "(1),(2)"


@pytest.mark.parametrize("value", [True, 1.5, bytearray(b"x"), datetime.now(UTC), object(), [1]])
def test_other_types_are_refused(value: object) -> None:
    """A type without a defined literal is a TypeError, never converted by guess."""
    with pytest.raises(TypeError):
        literal(value)


def test_lone_surrogates_are_refused() -> None:
    """A lone surrogate cannot be UTF-8: an error, never bytes sent as they come."""
    with pytest.raises(UnicodeEncodeError):
        literal("a\ud800")
