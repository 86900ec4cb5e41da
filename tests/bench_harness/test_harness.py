"""The benchmark harness itself: goals, the JSON and README output, wrk parsing, measured processes.

The benchmarks (tests/bench) are not collected by pytest; these tests keep the
machinery they rely on honest, without running a benchmark.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from tests.bench.goals import FIGURES, REFERENCES, Bound, Spec, evaluate
from tests.bench.harness import BEGIN, END, Machine, Report, replace_section
from tests.bench.loadgen import parse_wrk, run_load
from tests.bench.procs import base_env, run_measured

KEYS = {"name", "value", "unit", "reference", "ratio", "goal", "met"}

WRK_OUTPUT = """Running 5s test @ http://127.0.0.1:8080/clientes?limit=100
  2 threads and 32 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency     5.12ms    1.23ms  20.00ms   80.00%
    Req/Sec     3.12k   200.00     3.50k    70.00%
  Latency Distribution
     50%    4.90ms
     75%    5.50ms
     90%    6.20ms
     99%    1.25s
  31234 requests in 5.00s, 10.23MB read
  Socket errors: connect 0, read 2, write 0, timeout 12
  Non-2xx or 3xx responses: 5
Requests/sec:   6246.12
Transfer/sec:      2.05MB
"""


def _report() -> Report:
    machine = Machine("CPU", 2, 24.0, "3.11", "MariaDB", "abc", "now")
    return Report(machine, quick=True)


def test_goal_is_met_only_when_every_bound_holds() -> None:
    """A figure with two reference bounds is met only if both hold; ratios are to each reference."""
    spec = FIGURES["sync_first_load_rps"]
    values: dict[str, float | None] = {"predecessor_sync_rps": 1000.0, "limit_upsert_rps": 20000.0}
    assert evaluate(spec, 12000.0, values) == (True, {"predecessor_sync_rps": 12.0, "limit_upsert_rps": 0.6})
    met, ratios = evaluate(spec, 9000.0, values)
    assert met is False
    assert ratios["limit_upsert_rps"] == pytest.approx(0.45)


def test_upper_bounds_and_absolute_limits() -> None:
    """`<=` bounds compare against a reference times its factor, or against an absolute limit."""
    assert evaluate(FIGURES["api_page_p99_ms"], 9.0, {"bare_api_page_p99_ms": 10.0})[0] is True
    assert evaluate(FIGURES["api_page_p99_ms"], 11.0, {"bare_api_page_p99_ms": 10.0})[0] is False
    assert evaluate(FIGURES["startup_to_health_s"], 0.4, {})[0] is True
    assert evaluate(FIGURES["startup_to_health_s"], 1.2, {})[0] is False
    assert Bound("<=", 1.25).threshold({}) == 1.25


def test_unknown_when_not_measured_or_reference_missing() -> None:
    """Without the figure or its reference, `met` is None (unknown), never True."""
    assert evaluate(FIGURES["api_admin_page_rps"], None, {"bare_api_page_rps": 100.0}) == (None, {})
    assert evaluate(FIGURES["api_admin_page_rps"], 50.0, {})[0] is None
    assert evaluate(Spec("MB", "report"), 5.0, {})[0] is None


def test_records_list_every_fixed_name_with_the_fixed_keys() -> None:
    """The JSON lists every figure of the issue and every reference, each with the fixed keys."""
    report = _report()
    for value in (10.0, 30.0, 20.0):
        report.add("crypto_encrypt_us_per_record", value)
    for value in (10.0, 10.0, 10.0):
        report.add("aesgcm_direct_us_per_record", value)
    records = {rec["name"]: rec for rec in report.records()}
    assert set(FIGURES) | set(REFERENCES) <= set(records)
    for rec in records.values():
        assert rec.keys() >= KEYS
    crypto = records["crypto_encrypt_us_per_record"]
    assert crypto["value"] == 20.0  # the median of the runs
    assert crypto["reference"] == "aesgcm_direct_us_per_record"
    assert crypto["ratio"] == 2.0
    assert crypto["met"] is False
    assert crypto["runs"] == [10.0, 30.0, 20.0]
    assert records["sync_first_load_rps"]["value"] is None


def test_not_measured_carries_its_reason(tmp_path: Path) -> None:
    """A figure that cannot be measured is reported with the reason, and the output is still written."""
    report = _report()
    report.not_measured("startup_to_health_s", "no binary on this branch")
    out = tmp_path / "results.json"
    text = report.write(out)
    records = {rec["name"]: rec for rec in json.loads(out.read_text())}
    assert records["startup_to_health_s"]["note"] == "not measured: no binary on this branch"
    assert records["startup_to_health_s"]["met"] is None
    assert "not measured: no binary on this branch" in text
    assert (tmp_path / "results.md").read_text() == text
    assert json.loads((tmp_path / "run.json").read_text())["machine"]["cores"] == 2


def test_readme_section_is_replaced_between_the_markers() -> None:
    """Only the text between the bench markers changes; a second run replaces, not appends."""
    doc = f"# Title\n\nbefore\n\n{BEGIN}\nold table\n{END}\n\nafter\n"
    once = replace_section(doc, "new | table")
    assert once == f"# Title\n\nbefore\n\n{BEGIN}\nnew | table\n{END}\n\nafter\n"
    assert replace_section(once, "newer") == f"# Title\n\nbefore\n\n{BEGIN}\nnewer\n{END}\n\nafter\n"
    appended = replace_section("# Title\n", "t")
    assert appended.endswith(f"## Performance\n\n{BEGIN}\nt\n{END}\n")


def test_wrk_output_is_parsed() -> None:
    """requests/s, p99 (any unit) and every kind of error are read from `wrk --latency`."""
    load = parse_wrk(WRK_OUTPUT)
    assert load.rps == 6246.12
    assert load.p99_ms == 1250.0
    assert load.requests == 31234
    assert load.errors == 2 + 12 + 5
    with pytest.raises(ValueError, match="unexpected wrk output"):
        parse_wrk("wrk: connection refused")


def test_load_is_only_sent_to_loopback(tmp_path: Path) -> None:
    """The load generator refuses any address that is not loopback, before sending anything."""
    with pytest.raises(ValueError, match="loopback"):
        run_load("http://10.0.0.1:80/", connections=1, duration_s=1, work_dir=tmp_path)


@pytest.mark.slow
def test_measured_process_reports_its_own_peak_rss() -> None:
    """A child's peak RSS, CPU time and JSON summary line come back from run_measured."""
    code = "b = bytearray(150 * 1024 * 1024); b[::4096] = b'x' * len(b[::4096]); print('log'); print('{\"ok\": 1}')"
    measured = run_measured([sys.executable, "-c", code], base_env(), timeout_s=60)
    assert measured.code == 0
    assert measured.maxrss_mb >= 150
    assert measured.last_json() == {"ok": 1}
    assert measured.cpu_s >= 0


@pytest.mark.slow
def test_measured_process_is_killed_past_its_timeout() -> None:
    """A command past its time bound is killed, not waited for."""
    measured = run_measured([sys.executable, "-c", "import time; time.sleep(30)"], base_env(), timeout_s=0.5)
    assert measured.code != 0
    assert measured.wall_s < 10


def test_binary_size_counts_the_whole_one_dir_bundle(tmp_path: Path) -> None:
    """A symlink into a one-dir bundle is sized as the bundle (what ships), a plain file as itself."""
    from tests.bench.startup_phase import binary_size

    bundle = tmp_path / "dist" / "customers-mngr-bundle"
    (bundle / "_internal").mkdir(parents=True)
    (bundle / "customers-mngr").write_bytes(b"x" * 1000)
    (bundle / "_internal" / "libpython.so").write_bytes(b"y" * 5000)
    link = tmp_path / "dist" / "customers-mngr"
    link.symlink_to("customers-mngr-bundle/customers-mngr")
    assert binary_size(link)[0] == 6000
    single = tmp_path / "single"
    single.write_bytes(b"z" * 700)
    assert binary_size(single) == (700, "dist/customers-mngr")


def test_image_size_read_from_what_image_test_recorded(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Without an engine holding the image, the size `make image-test` wrote in packaging/README.md is used."""
    import tests.bench.startup_phase as startup

    monkeypatch.setattr(startup.shutil, "which", lambda _name: None)
    monkeypatch.setattr(startup, "ROOT", tmp_path)
    assert startup.image_size()[0] is None
    (tmp_path / "packaging").mkdir()
    (tmp_path / "packaging" / "README.md").write_text(
        "the image is 42.8 MB (below)\n"
        "| size (`docker image ls`) | **42.8 MB** (42,824,322 bytes), measured by `make image-test` |\n"
    )
    value, how = startup.image_size()
    assert value == 42.824322
    assert "packaging/README.md" in how


def test_merge_keeps_the_phases_not_run_again(tmp_path: Path) -> None:
    """--merge: figures and sections of the earlier run stay, re-measured ones are replaced, kinds never mix."""
    first = _report()
    first.add("sync_first_load_rps", 5000.0)
    first.add("api_health_rps", 9000.0)
    first.section("What limits the sync", "old text")
    first.write(tmp_path / "results.json")
    second = _report()
    assert second.merge(tmp_path / "run.json")
    second.reset(["api_health_rps"])
    second.add("api_health_rps", 12000.0)
    records = {rec["name"]: rec for rec in second.records()}
    assert records["sync_first_load_rps"]["value"] == 5000.0
    assert records["api_health_rps"]["runs"] == [12000.0]
    assert second.sections == {"What limits the sync": "old text"}
    assert "come from the run(s) of now" in second.markdown()
    full = Report(Machine("CPU", 2, 24.0, "3.11", "MariaDB", "abc", "now"), quick=False)
    assert not full.merge(tmp_path / "run.json")
    assert not full.merge(tmp_path / "missing.json")


def test_image_size_parsed_from_image_test_output() -> None:
    """The exact byte count of `make image-test`'s figures line is read; other output yields nothing."""
    from tests.bench.startup_phase import parse_image_test

    out = "image-test figures:\n  image size: 42.9MB (docker image ls; 42944906 bytes)\n  step build: 80.1 s\n"
    assert parse_image_test(out) == 42.944906
    assert parse_image_test("image-test: 0 passed, 1 failed") is None
