"""The load client: a separate process that hammers the API with a weighted mix and reports every outcome.

    python -m tests.reliability.loadgen CONFIG.json RESULT.json

CONFIG (written by `LoadSpec.start`, kept out of the scanned logs since it holds tokens):
    base            http://127.0.0.1:PORT (anything else is refused: loopback only)
    connections     concurrent workers, one keep-alive connection each at most
    duration_s      stop after this long; max_requests bounds the count as well
    timeout_s       per request: an answer later than this counts as "timeout" (a hang)
    mix             [{name, path, headers, weight, ok: [statuses], etag: bool, walk: bool, bad_token: prefix}]
                    `{id}` in a path is a random id from item_range; `walk` follows Link rel="next";
                    `etag` revalidates with If-None-Match every other time; `bad_token` sends a fresh
                    random token (prefix + 128 random bits) per request
    stop_file       optional: stop early once this file exists

RESULT: totals by status and by mix entry (with latency percentiles), exceptions by kind
(refused = never connected, disconnected, timeout, other), the count of unexpected
answers with a few samples, and (with `trace`) every request as
[start offset s, duration s, mix index, status or negative error code].
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import sys
import time
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import aiohttp

__all__ = ("ERROR_CODES", "main")

ERROR_CODES = {"refused": -1, "disconnected": -2, "timeout": -3, "other": -4}
_SAMPLES = 20


@dataclass
class _Mix:
    name: str
    path: str
    headers: dict[str, str]
    weight: float
    ok: frozenset[int]
    etag: bool = False
    walk: bool = False
    bad_token: str | None = None  # prefix of a fresh random token per request, in a random header style


@dataclass
class _Totals:
    requests: int = 0
    by_status: dict[str, int] = field(default_factory=dict)
    errors: dict[str, int] = field(default_factory=lambda: dict.fromkeys(ERROR_CODES, 0))
    unexpected: int = 0
    samples: list[dict[str, Any]] = field(default_factory=list)
    latencies: dict[str, list[float]] = field(default_factory=dict)
    mix_status: dict[str, dict[str, int]] = field(default_factory=dict)
    trace: list[list[float]] = field(default_factory=list)


def _bad_token(rng: random.Random, prefix: str) -> str:
    """A token nobody was given, in one of the shapes clients send: Bearer, bare, another scheme, too long."""
    token = f"{prefix}{rng.getrandbits(128):032x}"
    style = rng.randrange(5)
    if style == 0:
        return token
    if style == 1:
        return f"Basic {token}"
    if style == 2:
        return f"Bearer {token}{'x' * 600}"
    return f"Bearer {token}"


def _classify(exc: BaseException) -> str:
    if isinstance(exc, aiohttp.ClientConnectorError):
        return "refused"
    if isinstance(exc, TimeoutError | aiohttp.ServerTimeoutError):
        return "timeout"
    if isinstance(exc, aiohttp.ServerDisconnectedError | aiohttp.ClientOSError | aiohttp.ClientPayloadError):
        return "disconnected"
    return "other"


async def _run(config: dict[str, Any]) -> dict[str, Any]:
    base = config["base"].rstrip("/")
    if urlsplit(base).hostname not in ("127.0.0.1", "localhost", "::1"):
        raise SystemExit(f"loopback only, not {base}")
    mix = [
        _Mix(
            name=m["name"],
            path=m["path"],
            headers=dict(m.get("headers", {})),
            weight=float(m.get("weight", 1)),
            ok=frozenset(m.get("ok", [200])),
            etag=bool(m.get("etag", False)),
            walk=bool(m.get("walk", False)),
            bad_token=m.get("bad_token"),
        )
        for m in config["mix"]
    ]
    weights = [m.weight for m in mix]
    low, high = config.get("item_range", [1, 1])
    duration = float(config["duration_s"])
    max_requests = int(config.get("max_requests", 5_000_000))
    timeout = aiohttp.ClientTimeout(total=float(config.get("timeout_s", 15)))
    stop_file = config.get("stop_file")
    trace = bool(config.get("trace", False))
    totals = _Totals()
    started_wall = time.time()
    started = time.monotonic()
    deadline = started + duration
    stopping = asyncio.Event()

    async def watch() -> None:
        while not stopping.is_set() and time.monotonic() < deadline:
            if stop_file and os.path.exists(stop_file):  # noqa: ASYNC240 - a stat every 100 ms
                break
            await asyncio.sleep(0.1)
        stopping.set()

    async def worker(seed: int) -> None:
        rng = random.Random(seed)
        etags: dict[str, str] = {}
        walks: dict[int, str] = {}
        connector = aiohttp.TCPConnector(limit=1, force_close=False)
        async with aiohttp.ClientSession(connector=connector, timeout=timeout, trust_env=False) as session:
            while not stopping.is_set() and totals.requests < max_requests:
                index = rng.choices(range(len(mix)), weights)[0]
                entry = mix[index]
                path = walks.pop(index, None) if entry.walk else None
                path = path or entry.path.replace("{id}", str(rng.randint(low, high)))
                headers = dict(entry.headers)
                if entry.bad_token is not None:
                    headers["Authorization"] = _bad_token(rng, entry.bad_token)
                if entry.etag and path in etags and rng.random() < 0.5:
                    headers["If-None-Match"] = etags[path]
                t0 = time.monotonic()
                code: int
                body = b""
                try:
                    async with session.get(base + path, headers=headers, allow_redirects=False) as response:
                        code = response.status
                        body = await response.read()
                        if entry.etag and "ETag" in response.headers:
                            etags[path] = response.headers["ETag"]
                        if entry.walk and code == 200:
                            link = response.headers.get("Link", "")
                            if link.startswith("<") and 'rel="next"' in link:
                                target = link[1 : link.index(">")]
                                walks[index] = target if target.startswith("/") else urlsplit(target).path
                except Exception as exc:  # every failure is an outcome to count, not a crash of the client
                    kind = _classify(exc)
                    code = ERROR_CODES[kind]
                    totals.errors[kind] += 1
                    body = type(exc).__name__.encode()
                t1 = time.monotonic()
                totals.requests += 1
                key = str(code)
                totals.by_status[key] = totals.by_status.get(key, 0) + 1
                per = totals.mix_status.setdefault(entry.name, {})
                per[key] = per.get(key, 0) + 1
                if code >= 0:
                    totals.latencies.setdefault(entry.name, []).append(t1 - t0)
                if code not in entry.ok:
                    totals.unexpected += 1
                    if len(totals.samples) < _SAMPLES:
                        totals.samples.append(
                            {
                                "t": round(t0 - started, 3),
                                "mix": entry.name,
                                "code": code,
                                "body": body[:300].decode("utf-8", "replace"),
                            }
                        )
                if trace:
                    totals.trace.append([round(t0 - started, 4), round(t1 - t0, 4), index, code])

    watcher = asyncio.create_task(watch())
    await asyncio.gather(*(worker(n) for n in range(int(config["connections"]))))
    stopping.set()
    await watcher
    elapsed = time.monotonic() - started
    by_mix = {}
    for entry in mix:
        lat = sorted(totals.latencies.get(entry.name, []))
        by_mix[entry.name] = {
            "statuses": totals.mix_status.get(entry.name, {}),
            "p50_ms": round(1000 * lat[len(lat) // 2], 2) if lat else None,
            "p99_ms": round(1000 * lat[min(len(lat) - 1, int(len(lat) * 0.99))], 2) if lat else None,
            "max_ms": round(1000 * lat[-1], 2) if lat else None,
        }
    return {
        "started": started_wall,
        "elapsed_s": round(elapsed, 3),
        "requests": totals.requests,
        "rps": round(totals.requests / elapsed, 1) if elapsed else 0.0,
        "by_status": totals.by_status,
        "errors": totals.errors,
        "unexpected": totals.unexpected,
        "samples": totals.samples,
        "by_mix": by_mix,
        "mix": [m.name for m in mix],
        "trace": totals.trace,
    }


def main(argv: list[str]) -> int:
    config_path, result_path = argv
    with open(config_path, encoding="utf-8") as handle:
        config = json.load(handle)
    result = asyncio.run(_run(config))
    with open(result_path + ".tmp", "w", encoding="utf-8") as handle:
        json.dump(result, handle)
    os.replace(result_path + ".tmp", result_path)
    print(
        f"loadgen: {result['requests']} requests in {result['elapsed_s']} s, statuses {result['by_status']}, "
        f"errors {result['errors']}, unexpected {result['unexpected']}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
