"""A TCP proxy to MySQL that knows which server connection each client connection is, and cuts one.

The server's first packet on a connection (the handshake) carries the server's
connection id — the value of `CONNECTION_ID()` on it, and what `IS_USED_LOCK()`
answers for the holder of a named lock. The proxy reads it as it passes, so a
test can cut exactly the leader's lock connection (both sides reset) while every
other connection of the same process goes on working. Loopback only; its own
event loop in a thread, for daemons running as subprocesses.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Iterator
from dataclasses import dataclass

__all__ = ("TrackingProxy", "tracking_proxy")


@dataclass
class _Link:
    client: asyncio.StreamWriter
    server: asyncio.StreamWriter
    cut: bool = False


def connection_id(greeting: bytes) -> int | None:
    """The connection id in a MySQL protocol-10 handshake payload (None for an error packet)."""
    if not greeting or greeting[0] != 10:
        return None
    end = greeting.find(b"\0", 1)
    if end < 0 or len(greeting) < end + 5:
        return None
    return int.from_bytes(greeting[end + 1 : end + 5], "little")


class TrackingProxy:
    def __init__(self, target_host: str, target_port: int) -> None:
        self._target = (target_host, target_port)
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="tracking-proxy", daemon=True)
        self._thread.start()
        self._server: asyncio.Server | None = None
        self._links: dict[int, _Link] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self.seen: list[int] = []  # every connection id that went through, in order
        self.port = 0
        self._call(self._start())

    def _call(self, coro: object) -> object:
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(timeout=10)  # type: ignore[arg-type]

    async def _start(self) -> None:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]

    async def _handle(self, client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter) -> None:
        try:
            server_r, server_w = await asyncio.open_connection(*self._target)
        except OSError:
            client_w.transport.abort()
            return
        try:
            header = await server_r.readexactly(4)
            payload = await server_r.readexactly(int.from_bytes(header[:3], "little"))
        except (OSError, asyncio.IncompleteReadError):
            client_w.transport.abort()
            server_w.transport.abort()
            return
        client_w.write(header + payload)
        conn_id = connection_id(payload)
        link = _Link(client_w, server_w)
        if conn_id is not None:
            self._links[conn_id] = link
            self.seen.append(conn_id)
        for reader, writer in ((client_r, server_w), (server_r, client_w)):
            task = asyncio.ensure_future(self._pipe(reader, writer))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    @staticmethod
    async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
        except (OSError, asyncio.IncompleteReadError):
            pass
        finally:
            with contextlib.suppress(Exception):
                writer.close()

    def cut(self, conn_id: int) -> bool:
        """Reset both sides of the connection the server knows as `conn_id`; False if unknown."""

        async def cut() -> bool:
            link = self._links.get(conn_id)
            if link is None:
                return False
            link.cut = True
            link.client.transport.abort()
            link.server.transport.abort()
            return True

        return bool(self._call(cut()))

    def close(self) -> None:
        async def stop() -> None:
            if self._server is not None:
                self._server.close()
                await self._server.wait_closed()
            for link in self._links.values():
                link.client.transport.abort()
                link.server.transport.abort()
            for task in list(self._tasks):
                task.cancel()
            await asyncio.gather(*self._tasks, return_exceptions=True)

        with contextlib.suppress(Exception):
            self._call(stop())
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=5)
        self._loop.close()


@contextlib.contextmanager
def tracking_proxy(host: str, port: int) -> Iterator[TrackingProxy]:
    proxy = TrackingProxy(host, port)
    try:
        yield proxy
    finally:
        proxy.close()
