"""Keyset pagination: whole walks without duplicates or gaps, tamper-evident cursors, limits."""

from __future__ import annotations

import asyncio
import base64
import os
import re
import struct
from typing import Any

import pytest

from daemon.api.cursor import Cursor, CursorCodec, InvalidCursor
from daemon.provider.simulator import Simulator
from tests.api.conftest import SEEDED, Api
from tests.api.support import Feed

_LINK = re.compile(r'^<(/clientes\?[^>]+)>; rel="next"$')


async def _walk(api: Api, role: str, first: str) -> tuple[list[int], list[str]]:
    ids: list[int] = []
    links: list[str] = []
    url: str | None = first
    for _ in range(1000):
        if url is None:
            break
        response = await api.get(url, role)
        assert response.status == 200, await response.text()
        ids += [c["id"] for c in await response.json()]
        link = response.headers.get("Link")
        if link is None:
            url = None
        else:
            match = _LINK.match(link)
            assert match, link
            url = match.group(1)
            links.append(link)
    return ids, links


@pytest.mark.parametrize("role", ["viewer", "analyst", "admin"])
async def test_walk_covers_the_table_once_and_the_last_page_has_no_link(api: Api, role: str) -> None:
    """Following Link from the first page returns every id once, in order; the last page has no Link."""
    ids, links = await _walk(api, role, "/clientes")
    assert ids == list(range(1, SEEDED + 1))
    assert len(links) == 2  # 100 + 100 + 50


async def test_exact_multiple_of_the_limit_ends_without_an_empty_page(api: Api) -> None:
    """With 250 rows and limit 50 the fifth page is the last and carries no Link."""
    ids, links = await _walk(api, "viewer", "/clientes?limit=50")
    assert ids == list(range(1, SEEDED + 1)) and len(links) == 4


async def test_walk_while_rows_are_inserted_has_no_duplicate_or_gap(api: Api, provider: Simulator, feed: Feed) -> None:
    """New customers synced during a walk (each run bumping the data version) never make it skip or repeat one."""
    stop = asyncio.Event()
    inserted: list[int] = []

    async def writer() -> None:
        while not stop.is_set():
            added = provider.add(3)
            await feed.sync(provider)
            inserted.extend(added)

    task = asyncio.create_task(writer())
    try:
        ids, _ = await _walk(api, "analyst", "/clientes?limit=7")
    finally:
        stop.set()
        await task
    assert len(ids) == len(set(ids)), "no duplicates"
    assert ids == sorted(ids)
    assert set(range(1, SEEDED + 1)) <= set(ids), "every row present at the start is seen"
    assert inserted, "the writer really ran during the walk"


def _tampered(cursor: str) -> list[str]:
    flipped = cursor[:5] + ("A" if cursor[5] != "A" else "B") + cursor[6:]
    return [
        flipped,
        cursor[:-1],
        cursor + "A",
        cursor + "!",
        cursor[:10] + "." + cursor[10:],
        base64.urlsafe_b64encode(struct.pack(">BBQ", 1, 0, 50)).decode().rstrip("="),
        "x",
        "A" * 300,
    ]


async def test_a_tampered_or_forged_cursor_is_a_400(api: Api, logs: Any) -> None:
    """Any edit of a cursor, or one not sealed with this service's key, is refused with a 400 problem."""
    response = await api.get("/clientes?limit=10", "viewer")
    match = _LINK.match(response.headers["Link"])
    assert match
    cursor = match.group(1).split("cursor=")[1]
    foreign = CursorCodec(os.urandom(64)).encode(Cursor(after_id=10))
    for bad in [*_tampered(cursor), foreign]:
        response = await api.get(f"/clientes?limit=10&cursor={bad}", "viewer")
        assert response.status == 400, bad
        problem = await response.json()
        assert problem["type"] == "urn:customers-mngr:problem:invalid-parameter"
        assert problem["invalid_params"][0]["name"] == "cursor"
        assert bad not in await response.text()
    ok = await api.get(f"/clientes?limit=10&cursor={cursor}", "viewer")
    assert ok.status == 200 and (await ok.json())[0]["id"] == 11


async def test_cursor_reveals_nothing_and_is_stable(api: Api) -> None:
    """A cursor does not contain the id it points after, and the same page gives the same cursor."""
    first = await api.get("/clientes?limit=10", "admin")
    second = await api.get("/clientes?limit=10", "admin")
    assert first.headers["Link"] == second.headers["Link"]
    cursor = first.headers["Link"].split("cursor=")[1].split(">")[0]
    raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
    assert struct.pack(">Q", 10) not in raw and len(raw) >= 16 + 10  # sealed: 16-byte SIV tag + payload


def test_cursor_codec_round_trip_and_rejections() -> None:
    """The codec round-trips filters and refuses any other key, edit or version."""
    codec = CursorCodec(os.urandom(64))
    bidx = os.urandom(32)
    for cursor in (Cursor(1), Cursor(2**64 - 1, include_deleted=True), Cursor(5, card_bidx=bidx)):
        assert codec.decode(codec.encode(cursor)) == cursor
    with pytest.raises(InvalidCursor):
        CursorCodec(os.urandom(64)).decode(codec.encode(Cursor(1)))
    with pytest.raises(InvalidCursor):
        codec.decode("")


@pytest.mark.parametrize(
    "value", ["0", "1001", "-1", "abc", "1.5", "", "+5", "\uff11\uff10", "99999999999999999999999"]
)
async def test_limit_out_of_range_is_a_400(api: Api, value: str) -> None:
    """`limit` outside 1-1000 or not an integer: 400 naming the parameter, never echoing the value."""
    response = await api.get(f"/clientes?limit={value}", "viewer")
    assert response.status == 400
    problem = await response.json()
    assert problem["invalid_params"] == [{"name": "limit", "reason": "an integer from 1 to 1000"}]


async def test_limit_bounds_are_accepted(api: Api) -> None:
    """limit=1 and limit=1000 are valid; the default is 100."""
    assert len(await api.json("/clientes?limit=1", "viewer")) == 1
    assert len(await api.json("/clientes?limit=1000", "viewer")) == SEEDED
    assert len(await api.json("/clientes", "viewer")) == 100


async def test_unknown_or_repeated_parameters_are_a_400(api: Api) -> None:
    """A typo'd or repeated parameter is refused rather than silently ignored."""
    for query in ("limt=5", "limit=5&limit=6", "include_delete=true", "4111111111111111=1"):
        response = await api.get(f"/clientes?{query}", "admin")
        assert response.status == 400, query
        assert "4111111111111111" not in await response.text()


async def test_filters_travel_in_the_cursor_not_the_link(api: Api, customers: list[dict[str, Any]]) -> None:
    """include_deleted stays on for the whole walk; a contradicting value next to the cursor is a 400."""
    response = await api.get("/clientes?limit=100&include_deleted=true", "admin")
    link = response.headers["Link"]
    assert "include_deleted" not in link
    next_url = _LINK.match(link).group(1)  # type: ignore[union-attr]
    assert (await api.get(next_url, "admin")).status == 200
    assert (await api.get(next_url + "&include_deleted=true", "admin")).status == 200
    assert (await api.get(next_url + "&include_deleted=false", "admin")).status == 400
    # A viewer replaying an admin's include_deleted cursor is refused by role.
    assert (await api.get(next_url, "viewer")).status == 403


async def test_card_search_link_never_carries_the_card_number(
    api: Api, customers: list[dict[str, Any]], feed: Feed
) -> None:
    """Paging a card search keeps the filter inside the sealed cursor, never in the URL."""
    twin = dict(customers[0], id="5000", user_name="twin")
    await feed.sync(Simulator(from_records=[*customers, twin]))
    digits = "".join(c for c in customers[0]["credit_card_num"] if c.isdigit())
    response = await api.get(f"/clientes?limit=1&card_number={digits}", "admin")
    assert [c["id"] for c in await response.json()] == [1]
    link = response.headers["Link"]
    assert digits not in link and digits[-4:] not in link
    following = await api.get(_LINK.match(link).group(1), "admin")  # type: ignore[union-attr]
    assert [c["id"] for c in await following.json()] == [5000]
    assert "Link" not in following.headers
