"""HTTP load from a separate process: `wrk --latency` (Debian package), or this module's own client.

Both are bounded in time (`duration_s`) and, for the fallback, in requests,
and only ever target 127.0.0.1. `run_load()` returns requests/s, p99 and the
error counts; `python -m tests.bench.loadgen ...` is the fallback client
(aiohttp, one process) used when `wrk` is not installed.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from urllib.parse import urlsplit

__all__ = ("Load", "loadgen_name", "parse_wrk", "run_load")

_MAX_REQUESTS = 2_000_000  # a bound for the fallback client on top of the duration


@dataclass(frozen=True, slots=True)
class Load:
    rps: float
    p99_ms: float
    requests: int
    errors: int  # socket errors + non-2xx/3xx answers
    tool: str

    def as_dict(self) -> dict[str, object]:
        return asdict(self)


def loadgen_name() -> str:
    return "wrk" if shutil.which("wrk") else "aiohttp client (wrk not installed)"


def _check_loopback(url: str) -> None:
    host = urlsplit(url).hostname
    if host not in ("127.0.0.1", "localhost", "::1"):
        raise ValueError(f"load is only ever sent to loopback, not {host!r}")


_ITEM_LUA = """
local prefix, count
function init(args)
  prefix = args[1]
  count = tonumber(args[2])
  math.randomseed(os.time() + math.floor(os.clock() * 1000000))
end
request = function()
  return wrk.format("GET", prefix .. math.random(1, count))
end
"""


def run_load(
    url: str,
    *,
    connections: int,
    duration_s: float,
    headers: Mapping[str, str] | None = None,
    random_ids: int = 0,
    work_dir: Path,
    threads: int = 2,
) -> Load:
    """Load `url` for `duration_s`; with `random_ids`, `url` is a prefix completed by a random id 1..N."""
    _check_loopback(url)
    headers = dict(headers or {})
    if shutil.which("wrk"):
        cmd = ["wrk", f"-t{threads}", f"-c{connections}", f"-d{max(1, round(duration_s))}s", "--timeout", "10s"]
        cmd.append("--latency")
        for name, value in headers.items():
            cmd += ["-H", f"{name}: {value}"]
        if random_ids:
            script = work_dir / "random_item.lua"
            script.parent.mkdir(parents=True, exist_ok=True)
            script.write_text(_ITEM_LUA)
            parts = urlsplit(url)
            cmd += ["-s", str(script), f"{parts.scheme}://{parts.netloc}/", "--", parts.path, str(random_ids)]
        else:
            cmd.append(url)
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=duration_s + 60, check=False)
        if out.returncode != 0:
            raise RuntimeError(f"wrk failed ({out.returncode}): {out.stderr[-500:]}")
        return parse_wrk(out.stdout)
    cmd = [sys.executable, "-m", "tests.bench.loadgen", "--url", url, "--connections", str(connections)]
    cmd += ["--duration", str(duration_s), "--random-ids", str(random_ids)]
    for name, value in headers.items():
        cmd += ["--header", f"{name}: {value}"]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=duration_s + 60, check=False)
    if out.returncode != 0:
        raise RuntimeError(f"load generator failed ({out.returncode}): {out.stderr[-500:]}")
    return Load(**json.loads(out.stdout.strip().splitlines()[-1]))


_UNITS = {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60_000.0}


def _ms(text: str) -> float:
    match = re.fullmatch(r"([\d.]+)(us|ms|s|m)", text.strip())
    if not match:
        raise ValueError(f"not a wrk duration: {text!r}")
    return float(match.group(1)) * _UNITS[match.group(2)]


def parse_wrk(output: str) -> Load:
    """requests/s, p99, request and error counts from `wrk --latency` output."""
    rps = re.search(r"Requests/sec:\s+([\d.]+)", output)
    p99 = re.search(r"^\s+99%\s+(\S+)", output, re.M)
    total = re.search(r"(\d+) requests in", output)
    if not (rps and p99 and total):
        raise ValueError(f"unexpected wrk output: {output[-500:]}")
    errors = 0
    sock = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", output)
    if sock:
        errors += sum(int(x) for x in sock.groups())
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", output)
    if non2xx:
        errors += int(non2xx.group(1))
    return Load(float(rps.group(1)), _ms(p99.group(1)), int(total.group(1)), errors, "wrk")


# --- the fallback client ---------------------------------------------------------------------


async def _client(url: str, connections: int, duration_s: float, headers: dict[str, str], random_ids: int) -> Load:
    import aiohttp

    latencies: list[float] = []
    errors = 0
    deadline = time.perf_counter() + duration_s

    async def one(session: aiohttp.ClientSession) -> None:
        nonlocal errors
        while time.perf_counter() < deadline and len(latencies) < _MAX_REQUESTS:
            target = f"{url}{random.randint(1, random_ids)}" if random_ids else url
            started = time.perf_counter()
            try:
                async with session.get(target, headers=headers) as response:
                    await response.read()
                    if response.status >= 400:
                        errors += 1
            except aiohttp.ClientError:
                errors += 1
            latencies.append(time.perf_counter() - started)

    connector = aiohttp.TCPConnector(limit=connections)
    started = time.perf_counter()
    async with aiohttp.ClientSession(connector=connector) as session:
        await asyncio.gather(*(one(session) for _ in range(connections)))
    elapsed = time.perf_counter() - started
    latencies.sort()
    p99 = latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))] * 1000 if latencies else 0.0
    return Load(len(latencies) / elapsed, p99, len(latencies), errors, "aiohttp-client")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.bench.loadgen", description=__doc__)
    parser.add_argument("--url", required=True)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--duration", type=float, default=5.0)
    parser.add_argument("--random-ids", type=int, default=0)
    parser.add_argument("--header", action="append", default=[])
    args = parser.parse_args(argv)
    _check_loopback(args.url)
    headers = dict(h.split(": ", 1) for h in args.header)
    load = asyncio.run(_client(args.url, args.connections, min(args.duration, 120.0), headers, args.random_ids))
    print(json.dumps(load.as_dict()), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
