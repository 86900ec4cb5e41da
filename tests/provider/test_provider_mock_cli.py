"""`customers-mngr provider-mock` as a real process: serves the simulator as specified, stops on SIGTERM."""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from daemon.provider.simulator import Simulator
from tests.support.daemon_proc import DaemonProcess, free_port, http_get, wait_http

pytestmark = pytest.mark.slow


def start(*args: str) -> tuple[DaemonProcess, str]:
    port = free_port()
    proc = DaemonProcess(["provider-mock", "--host", "127.0.0.1", "--port", str(port), *args], {"LOG_FORMAT": "json"})
    wait_http(f"http://127.0.0.1:{port}/health", proc=proc.proc)
    return proc, f"http://127.0.0.1:{port}/api/v1/usuarios"


def test_serves_the_seeded_data_paginated_and_stops_on_sigterm() -> None:
    """The process serves exactly Simulator(records, seed, bad_rate)'s records, page by page, and exits 0 on SIGTERM."""
    proc, url = start("--records", "25", "--seed", "3", "--bad-rate", "0.2")
    with proc:
        served = []
        for page in range(1, 4):
            status, body = http_get(f"{url}?page={page}&limit=10")
            assert status == 200
            served.extend(json.loads(body))
        assert served == list(Simulator(records=25, seed=3, bad_rate=0.2).records())
        status, body = http_get(url)
        assert status == 200 and len(json.loads(body)) == 25
        code, seconds = proc.stop()
    assert code == 0 and seconds < 10
    assert b"simulator_listening" in proc.output and b"simulator_stopped" in proc.output


def test_fault_flags() -> None:
    """--error-rate 1 answers 5xx; --throttle-rate 1 answers 429 with Retry-After; --slow-ms delays."""
    proc, url = start("--records", "5", "--error-rate", "1")
    with proc:
        assert all(http_get(f"{url}?page=1&limit=5")[0] in (500, 502, 503) for _ in range(5))
    proc, url = start("--records", "5", "--slow-rate", "1", "--slow-ms", "300")
    with proc:
        started = time.monotonic()
        assert http_get(f"{url}?page=1&limit=5")[0] == 200
        assert time.monotonic() - started >= 0.3
    proc, url = start("--records", "5", "--throttle-rate", "1", "--retry-after", "2")
    with proc:
        try:
            urllib.request.urlopen(url, timeout=5)
        except urllib.error.HTTPError as exc:
            assert exc.code == 429 and exc.headers["Retry-After"] == "2"
        else:
            raise AssertionError("expected a 429")


def test_churn_between_snapshots() -> None:
    """--churn-rate changes the data between two full fetches."""
    proc, url = start("--records", "30", "--churn-rate", "0.3")
    with proc:
        first = json.loads(http_get(url)[1])
        second = json.loads(http_get(url)[1])
    assert first == list(Simulator(records=30).records())
    assert second != first


def test_from_file_is_served_as_is(tmp_path: Path) -> None:
    """--from-file serves the JSON array unchanged (and paginated)."""
    data = [{"id": "1", "odd": [1, 2]}, {"id": "x"}, 7]
    path = tmp_path / "records.json"
    path.write_text(json.dumps(data))
    proc, url = start("--from-file", str(path))
    with proc:
        assert json.loads(http_get(url)[1]) == data
        assert json.loads(http_get(f"{url}?page=2&limit=2")[1]) == [7]


def test_bad_arguments_and_busy_port(tmp_path: Path) -> None:
    """A rate outside 0..1 or a file that is not a JSON array exits 2; a busy port exits 1 with one line."""
    assert DaemonProcess(["provider-mock", "--error-rate", "2"], {}).wait(30) == 2
    bad = tmp_path / "bad.json"
    bad.write_text('{"not": "an array"}')
    check = DaemonProcess(["provider-mock", "--port", "0", "--from-file", str(bad)], {})
    assert check.wait(30) == 2 and b"must hold a JSON array" in check.output
    proc, url = start("--records", "1")
    with proc:
        port = url.split(":")[2].split("/")[0]
        busy = DaemonProcess(["provider-mock", "--port", port], {})
        assert busy.wait(30) == 1
        assert b"cannot listen" in busy.output and len(busy.output.strip().splitlines()) == 1
