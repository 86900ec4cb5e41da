"""The provider simulator: the provider's shape, determinism, pagination, churn, bad records, faults."""

from __future__ import annotations

import asyncio
import collections
import random
import re
import urllib.request
from typing import Any

import aiohttp
import pytest

from daemon.provider.records import ParsedRecord, Rejected, parse_record
from daemon.provider.simulator import Fault, Simulator, SimulatorActor, bind_loopback
from tests.support.simulator import running_simulator, threaded_simulator

TIMESTAMP = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z")


async def get(url: str, **params: Any) -> tuple[int, Any, Any]:
    async with aiohttp.ClientSession() as session, session.get(url, params=params) as response:
        body = await response.json(content_type=None)
        return response.status, body, response.headers


def test_records_have_the_providers_exact_shape() -> None:
    """Every value a string except the purchase count; ids, dates, cards, zips, models, URLs, IPs as the provider's."""
    sim = Simulator(records=1000, seed=5)
    records = list(sim.records())
    assert len(records) == 1000
    card_lengths, zero_zips, numeric_models, anomalies = set(), 0, 0, collections.Counter[str]()
    for index, raw in enumerate(records, start=1):
        assert isinstance(raw, dict)
        assert raw["id"] == str(index)
        assert isinstance(raw["cantidad_compras_realizadas"], int)
        assert all(isinstance(v, str) for k, v in raw.items() if k != "cantidad_compras_realizadas")
        assert TIMESTAMP.fullmatch(raw["fec_alta"]) and TIMESTAMP.fullmatch(raw["fec_birthday"])
        assert re.fullmatch(r"\d+(-\d+)+", raw["credit_card_num"]) and raw["credit_card_ccv"].isdigit()
        assert raw["foto_dni"].startswith("http") and raw["avatar"].startswith("https://")
        card_lengths.add(len(raw["credit_card_num"].replace("-", "")))
        zero_zips += raw["codigo_zip"].startswith("0")
        numeric_models += raw["auto_modelo"].isdigit()
        parsed = parse_record(raw)
        assert isinstance(parsed, ParsedRecord), parsed
        anomalies.update(parsed.anomalies)
    assert len(card_lengths) >= 5
    assert zero_zips > 20 and numeric_models > 50
    assert anomalies["card_luhn_failed"] > 10 and anomalies["card_unusual_length"] > 5


def test_data_is_deterministic_per_seed() -> None:
    """The same (records, seed) gives the same records; another seed gives other records."""
    first, again, other = Simulator(records=50, seed=7), Simulator(records=50, seed=7), Simulator(records=50, seed=8)
    assert list(first.records()) == list(again.records())
    assert list(first.records()) != list(other.records())
    assert Simulator(records=10, seed=7).record(3) == first.record(3)


def test_pages_are_slices_of_the_whole() -> None:
    """Pages of any size concatenate to the full list; past the end is empty."""
    sim = Simulator(records=23, seed=2)
    whole = list(sim.records())
    for size in (1, 5, 10, 23, 50):
        assert [r for n in range(1, 30) for r in sim.page(n, size)] == whole
    assert list(sim.page(4, 10)) == []


def test_k_th_live_id_matches_a_naive_list() -> None:
    """With random removals, restores and additions, every page equals the naive list's slice."""
    rng = random.Random(3)
    sim = Simulator(records=500, seed=1)
    sim.remove(rng.sample(range(1, 501), 120))
    sim.restore(rng.sample(range(1, 501), 40))
    sim.add(30)
    sim.remove([1, 2, 3, 529, 530])
    naive = [i for i in range(1, 531) if i not in sim._removed_set]
    assert len(sim) == len(naive)
    for size in (1, 7, 100):
        served = [r["id"] for n in range(1, len(naive) // size + 3) for r in sim.page(n, size)]  # type: ignore[index]
        assert served == [str(i) for i in naive]


def test_200k_records_are_never_held_in_memory() -> None:
    """A 200k-record simulator answers a deep page at once, and holds no record list."""
    sim = Simulator(records=200_000, seed=1)
    sim.remove(list(range(1000, 3000)))
    page = list(sim.page(1500, 100))
    assert [r["id"] for r in page][:2] == ["151901", "151902"]  # type: ignore[index]  # 149_901st live id, 2000 removed below
    assert len(sim) == 198_000 and not sim._versions


def test_bad_records_are_roughly_the_rate_and_excluded_from_the_truth() -> None:
    """About bad_rate of the records are invalid; truth() and expected() hold only the valid ones."""
    sim = Simulator(records=2000, seed=11, bad_rate=0.1)
    results = [parse_record(r) for r in sim.records()]
    bad = [r for r in results if isinstance(r, Rejected)]
    assert 0.07 < len(bad) / 2000 < 0.13
    truth = sim.truth()
    assert len(truth) == 2000 - len(bad)
    assert set(sim.expected()) == {int(r["id"]) for r in truth}  # type: ignore[call-overload]
    assert all(
        sim.is_bad(int(raw["id"]))
        for raw in sim.records()
        if isinstance(parse_record(raw), Rejected) and str(raw["id"]).isdigit()
    )  # type: ignore[index]


def test_a_bad_record_stays_bad_when_it_changes() -> None:
    """Badness is fixed per id, so a changed record does not flip between valid and quarantined."""
    sim = Simulator(records=300, seed=4, bad_rate=0.2)
    bad_ids = [i for i in range(1, 301) if sim.is_bad(i)]
    sim.change(list(range(1, 301)))
    assert all(isinstance(parse_record(sim.record(i)), Rejected) for i in bad_ids)


def test_explicit_churn() -> None:
    """change alters a record, remove hides it, restore brings it back unchanged, add appends new ids."""
    sim = Simulator(records=10, seed=1)
    before = sim.record(3)
    sim.change([3])
    assert sim.record(3) != before and sim.record(3)["id"] == "3"
    sim.remove([4])
    assert "4" not in [r["id"] for r in sim.truth()]
    sim.restore([4])
    assert sim.truth()[3] == Simulator(records=10, seed=1).record(4)
    assert sim.add(2) == (11, 12)
    assert [r["id"] for r in sim.truth()][-2:] == ["11", "12"]


def test_advance_churns_about_the_rate() -> None:
    """advance() changes, removes and adds about churn_rate of the records, deterministically."""
    sim, twin = Simulator(records=1000, seed=6, churn_rate=0.1), Simulator(records=1000, seed=6, churn_rate=0.1)
    churn = sim.advance()
    assert churn == twin.advance()
    assert 20 < len(churn.changed) < 45 and 20 < len(churn.removed) < 45 and 20 < len(churn.added) < 45
    assert len(sim) == 1000 - len(churn.removed) + len(churn.added)


async def test_churn_happens_between_snapshots_over_http() -> None:
    """With churn_rate, the second snapshot differs from the first; within a snapshot nothing moves."""
    async with running_simulator(records=40, seed=3, churn_rate=0.2) as sim:
        first = [r for n in (1, 2, 3, 4, 5) for r in (await get(sim.url, page=n, limit=10))[1]]
        assert first == list(Simulator(records=40, seed=3).records())
        second = (await get(sim.url))[1]
    assert second != first and sim.snapshots == 2
    assert second == list(sim.records())


async def test_http_pagination_and_parameters() -> None:
    """?page&limit pages (1-based), limit alone is page 1, bad parameters are a 400."""
    async with running_simulator(records=12, seed=1) as sim:
        status, body, headers = await get(sim.url, page=2, limit=5)
        assert status == 200 and [r["id"] for r in body] == ["6", "7", "8", "9", "10"]
        assert headers["Content-Type"].startswith("application/json")
        assert [r["id"] for r in (await get(sim.url, limit=3))[1]] == ["1", "2", "3"]
        assert (await get(sim.url, page=3, limit=10))[1] == []
        for params in ({"page": "1"}, {"page": "0", "limit": "5"}, {"page": "x", "limit": "5"}, {"limit": "-1"}):
            assert (await get(sim.url, **params))[0] == 400
        snapshots = sim.snapshots
        assert (await get(sim.url.replace("/api/v1/usuarios", "/health")))[:2] == (200, {"status": "ok"})
        assert sim.snapshots == snapshots  # a probe neither starts a snapshot nor draws a fault


async def test_from_records_are_served_as_is() -> None:
    """A fixed array (odd elements included) is served unchanged, paginated the same way."""
    fixed: list[object] = [{"id": "1", "x": 1}, 5, None, {"id": "1"}]
    async with running_simulator(from_records=fixed) as sim:
        assert (await get(sim.url))[1] == fixed
        assert (await get(sim.url, page=2, limit=3))[1] == [{"id": "1"}]
    assert [r["id"] for r in Simulator(from_records=fixed).truth()] == ["1"]


async def test_fault_rates_are_roughly_honoured() -> None:
    """Over 400 requests, 5xx and 429 shares are near their rates; 429s carry Retry-After; slow ones are slow."""
    statuses = collections.Counter[int]()
    async with (
        running_simulator(records=10, error_rate=0.25, throttle_rate=0.15, retry_after="7") as sim,
        aiohttp.ClientSession() as session,
    ):
        for _ in range(400):
            async with session.get(sim.url, params={"page": 1, "limit": 10}) as response:
                statuses[response.status // 100 * 100 if response.status >= 500 else response.status] += 1
                if response.status == 429:
                    assert response.headers["Retry-After"] == "7"
    assert 0.17 < statuses[500] / 400 < 0.33
    assert 0.09 < statuses[429] / 400 < 0.22
    assert statuses[200] + statuses[500] + statuses[429] == 400
    slow = Simulator(records=1, slow_rate=0.5, slow_ms=1)
    faults = [slow.next_fault(1) for _ in range(400)]
    assert 150 < sum(1 for f in faults if f is not None and f.serve and f.delay_s == 0.001) < 250


async def test_scripted_and_per_page_faults() -> None:
    """script() answers the next requests in order; fail_page() answers one page until healed."""
    async with running_simulator(records=20) as sim:
        sim.script(Fault(status=503), Fault(status=200, body=b"garbage"))
        assert (await get(sim.url, page=1, limit=10))[0] == 503
        async with aiohttp.ClientSession() as session, session.get(sim.url) as response:
            assert await response.read() == b"garbage"
        sim.fail_page(2, Fault(status=502))
        assert (await get(sim.url, page=2, limit=10))[0] == 502
        assert (await get(sim.url, page=1, limit=10))[0] == 200
        sim.heal_page(2)
        assert (await get(sim.url, page=2, limit=10))[0] == 200
    assert [r.status for r in sim.requests] == [503, 200, 502, 200, 200]


async def test_actor_serves_again_after_a_restart() -> None:
    """The actor keeps its socket: cancelled and run again (a supervisor restart), it serves on the same URL."""
    sock = bind_loopback()
    actor = SimulatorActor(simulator=Simulator(records=3), sock=sock, shutdown_timeout_s=0.2)
    try:
        for _ in range(2):
            task = asyncio.create_task(actor.run())
            await asyncio.wait_for(actor.listening.wait(), 5)
            assert (await get(actor.url))[0] == 200
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
    finally:
        actor.close()


def test_threaded_simulator_serves_a_blocking_client() -> None:
    """The threaded fixture serves clients outside the test loop (e.g. a subprocess)."""
    with threaded_simulator(records=4, seed=2) as sim:
        with urllib.request.urlopen(sim.url + "?page=1&limit=3", timeout=5) as response:
            body = response.read()
        assert body.count(b'"id"') == 3


def test_invalid_options_are_refused() -> None:
    """Rates outside 0..1, negative sizes and churn on a fixed file are refused."""
    for options in ({"error_rate": 1.5}, {"records": -1}, {"from_records": [], "churn_rate": 0.1}):
        with pytest.raises(ValueError):
            Simulator(**options)  # type: ignore[arg-type]
