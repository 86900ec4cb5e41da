"""Side-by-side throughput of an analyst page of 100: the daemon vs a bare aiohttp handler.

    .venv/bin/python -m tests.api.bench_page [--records 1000] [--seconds 10] [--rounds 3] [--connections 32]

Both servers are separate processes on loopback against the same database:
- `daemon`: `customers-mngr run --mode api` (auth, audit and access log lines, metrics, cache);
- `bare`:   one aiohttp handler, a shared asyncmy pool of the same size, the same SELECT of the
            analyst columns LIMIT 100 and `json.dumps` on every request, nothing else.
Load comes from `wrk --latency` (32 connections, 2 threads), rounds alternate between the two,
and the median of the rounds is printed. A report, not a test: nothing is asserted.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from daemon.crypto.keyring import Keyring
from daemon.db.connect import open_database
from daemon.db.migrate import migrate
from daemon.observability.metrics import Metrics
from tests.api.support import TOKENS, api_tokens_env, make_customers, store_customers
from tests.support.daemon_proc import DaemonProcess, free_port, wait_http
from tests.support.mysql import server_from_env

BARE_SERVER = """
import asyncio, json, sys
import asyncmy
from aiohttp import web

SQL = ("SELECT id, user_name, credit_card_num_mask, direccion, avatar FROM customers "
       "WHERE deleted_at IS NULL ORDER BY id LIMIT 100")
NAMES = ("id", "user_name", "credit_card_num", "direccion", "avatar")

async def main(port, db):
    pool = await asyncmy.create_pool(host="127.0.0.1", port=3306, user="root", password="", db=db,
                                     minsize=1, maxsize=10, autocommit=True)
    async def page(request):
        async with pool.acquire() as conn, conn.cursor() as cur:
            await cur.execute(SQL)
            rows = await cur.fetchall()
        return web.Response(body=json.dumps([dict(zip(NAMES, r)) for r in rows]).encode(),
                            content_type="application/json")
    app = web.Application()
    app.router.add_get("/clientes", page)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    await asyncio.Future()

asyncio.run(main(int(sys.argv[1]), sys.argv[2]))
"""


def wrk(url: str, *, seconds: int, connections: int, token: str | None) -> tuple[float, float]:
    """(requests/s, p99 ms) of one wrk run."""
    args = ["wrk", "-t2", f"-c{connections}", f"-d{seconds}s", "--latency", url]
    if token:
        args[1:1] = ["-H", f"Authorization: Bearer {token}"]
    out = subprocess.run(args, capture_output=True, text=True, timeout=seconds + 30, check=True).stdout  # noqa: S603
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    p99 = re.search(r"99%\s+([\d.]+)(us|ms|s)", out)
    scale = {"us": 0.001, "ms": 1.0, "s": 1000.0}
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    if non2xx:
        raise SystemExit(f"{url}: {non2xx.group(1)} error responses")
    return rps, float(p99.group(1)) * scale[p99.group(2)]  # type: ignore[union-attr]


async def seed(database: str, records: int, keyring: Keyring) -> None:
    mysql = server_from_env()
    mysql.create(database)
    from tests.conftest import base_env  # noqa: PLC0415 - test helpers, imported where used
    from daemon.config import load_settings  # noqa: PLC0415

    settings = load_settings(base_env(mysql, database))
    async with open_database(settings.db, metrics=Metrics(), create=False) as db:
        await migrate(db)
        for start in range(1, records + 1, 500):
            await store_customers(db, keyring, make_customers(min(500, records - start + 1), start_id=start))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--records", type=int, default=1000)
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--connections", type=int, default=32)
    args = parser.parse_args()
    key, index = os.urandom(32), os.urandom(32)
    keyring = Keyring({"b1": key}, active_key_id="b1", index_key=index)
    mysql = server_from_env()
    database = mysql.new_name("cmbench")
    asyncio.run(seed(database, args.records, keyring))
    workdir = Path(tempfile.mkdtemp(prefix="api-bench-"))
    bare_script = workdir / "bare.py"
    bare_script.write_text(BARE_SERVER)
    from tests.conftest import base_env  # noqa: PLC0415

    daemon_port, bare_port = free_port(), free_port()
    env = {
        **base_env(mysql, database),
        "API_PORT": str(daemon_port),
        "API_TOKENS": api_tokens_env(),
        "ENCRYPTION_KEYS": json.dumps({"b1": base64.b64encode(key).decode()}),
        "INDEX_KEY": base64.b64encode(index).decode(),
        "DEV_KEY_FILE": str(workdir / "unused.json"),
    }
    results: dict[str, list[tuple[float, float]]] = {"daemon": [], "bare": []}
    try:
        with (
            DaemonProcess(["run", "--mode", "api"], env, log_path=workdir / "daemon.log") as daemon,
            DaemonProcess([str(bare_script), str(bare_port), database], {}, command=[sys.executable]) as bare,
        ):
            wait_http(f"http://127.0.0.1:{daemon_port}/ready", proc=daemon.proc)
            time.sleep(1.0)
            targets = {
                "daemon": (f"http://127.0.0.1:{daemon_port}/clientes?limit=100", TOKENS["analyst"]),
                "bare": (f"http://127.0.0.1:{bare_port}/clientes", None),
            }
            for name, (url, token) in targets.items():  # warm-up
                wrk(url, seconds=2, connections=args.connections, token=token)
            for _ in range(args.rounds):
                for name, (url, token) in targets.items():
                    results[name].append(wrk(url, seconds=args.seconds, connections=args.connections, token=token))
    finally:
        mysql.drop(database)
    load = os.getloadavg()
    print(f"cpu: {os.cpu_count()} cores, load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}")
    print("| server | median req/s | median p99 ms | rounds (req/s) |")
    print("|---|---|---|---|")
    for name, runs in results.items():
        rps = statistics.median(r for r, _ in runs)
        p99 = statistics.median(p for _, p in runs)
        print(f"| {name} | {rps:.0f} | {p99:.1f} | {', '.join(f'{r:.0f}' for r, _ in runs)} |")
    ratio = statistics.median(r for r, _ in results["daemon"]) / statistics.median(r for r, _ in results["bare"])
    print(f"daemon / bare = {ratio:.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
