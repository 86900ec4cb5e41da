"""Reference `bare_api`: one aiohttp handler, a shared asyncmy pool, the query on every request.

    python -m tests.bench.bare_api --port P --database mysql://.../DB

`GET /page`: `SELECT` of the analyst's columns of the first 100 live customers,
`json.dumps` of the rows; `GET /item/{id}`: the single-row equivalent (the
viewer's columns of one customer). No cache, no auth: the floor a
hand-written service reaches. Reads the daemon's `customers` table.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import signal
import sys
from urllib.parse import unquote, urlsplit

import asyncmy
from aiohttp import web

__all__ = ("ITEM_SQL", "PAGE_SQL", "main")

PAGE_SQL = (
    "SELECT id, user_name, credit_card_num_mask, direccion, avatar FROM customers "
    "WHERE deleted_at IS NULL ORDER BY id LIMIT 100"
)
ITEM_SQL = "SELECT id, user_name, direccion, avatar FROM customers WHERE id = %s AND deleted_at IS NULL"
_PAGE_KEYS = ("id", "user_name", "credit_card_num_mask", "direccion", "avatar")
_ITEM_KEYS = ("id", "user_name", "direccion", "avatar")
POOL: web.AppKey[asyncmy.Pool] = web.AppKey("pool", asyncmy.Pool)


async def page(request: web.Request) -> web.Response:
    async with request.app[POOL].acquire() as conn, conn.cursor() as cur:
        await cur.execute(PAGE_SQL)
        rows = await cur.fetchall()
    body = json.dumps({"data": [dict(zip(_PAGE_KEYS, row, strict=True)) for row in rows]})
    return web.Response(text=body, content_type="application/json")


async def item(request: web.Request) -> web.Response:
    async with request.app[POOL].acquire() as conn, conn.cursor() as cur:
        await cur.execute(ITEM_SQL, (int(request.match_info["id"]),))
        row = await cur.fetchone()
    if row is None:
        return web.Response(text=json.dumps({"error": "not found"}), status=404, content_type="application/json")
    return web.Response(text=json.dumps(dict(zip(_ITEM_KEYS, row, strict=True))), content_type="application/json")


async def health(_request: web.Request) -> web.Response:
    return web.Response(text='{"status":"ok"}', content_type="application/json")


async def serve(host: str, port: int, database_url: str, pool_size: int) -> None:
    url = urlsplit(database_url)
    pool = await asyncmy.create_pool(
        host=url.hostname or "127.0.0.1",
        port=url.port or 3306,
        user=unquote(url.username or "root"),
        password=unquote(url.password or ""),
        db=url.path.lstrip("/"),
        minsize=1,
        maxsize=pool_size,
        autocommit=True,
    )
    app = web.Application()
    app[POOL] = pool
    app.router.add_get("/page", page)
    app.router.add_get("/item/{id}", item)
    app.router.add_get("/health", health)
    runner = web.AppRunner(app, access_log=None, handle_signals=False)
    await runner.setup()
    await web.TCPSite(runner, host, port, backlog=512).start()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    try:
        await stop.wait()
    finally:
        await runner.cleanup()
        pool.close()
        await pool.wait_closed()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.bench.bare_api", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--database", required=True)
    parser.add_argument("--pool-size", type=int, default=10, help="like the daemon's DB_POOL_MAX default")
    args = parser.parse_args(argv)
    asyncio.run(serve(args.host, args.port, args.database, args.pool_size))
    return 0


if __name__ == "__main__":
    sys.exit(main())
