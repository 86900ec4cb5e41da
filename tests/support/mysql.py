"""The test MySQL server (TEST_DATABASE_URL, default the local MariaDB) and throwaway databases."""

from __future__ import annotations

import asyncio
import os
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from urllib.parse import unquote, urlsplit

import asyncmy

__all__ = ("MysqlServer", "server_from_env")


@dataclass(frozen=True)
class MysqlServer:
    host: str
    port: int
    user: str
    password: str

    def url(self, database: str, *, port: int | None = None) -> str:
        auth = self.user + (f":{self.password}" if self.password else "")
        return f"mysql://{auth}@{self.host}:{port or self.port}/{database}"

    def new_name(self, prefix: str = "cmt") -> str:
        return f"{prefix}_{os.getpid()}_{uuid.uuid4().hex[:10]}"

    def execute(self, *statements: str, database: str | None = None) -> list[tuple[object, ...]]:
        """Run statements synchronously, even from inside a running loop; rows of the last one."""
        with ThreadPoolExecutor(1) as pool:
            return pool.submit(asyncio.run, self._execute(statements, database)).result(timeout=60)

    async def aexecute(self, *statements: str, database: str | None = None) -> list[tuple[object, ...]]:
        return await self._execute(statements, database)

    async def _execute(self, statements: tuple[str, ...], database: str | None) -> list[tuple[object, ...]]:
        kwargs: dict[str, object] = {
            "host": self.host,
            "port": self.port,
            "user": self.user,
            "password": self.password,
            "autocommit": True,
        }
        if database:
            kwargs["db"] = database
        conn = await asyncmy.connect(**kwargs)
        rows: list[tuple[object, ...]] = []
        try:
            async with conn.cursor() as cur:
                for statement in statements:
                    await cur.execute(statement)
                    rows = list(await cur.fetchall() or [])
        finally:
            conn.close()
        return rows

    def create(self, name: str) -> None:
        self.execute(f"CREATE DATABASE `{name}` CHARACTER SET utf8mb4")

    def drop(self, name: str) -> None:
        self.execute(f"DROP DATABASE IF EXISTS `{name}`")


def server_from_env() -> MysqlServer:
    url = urlsplit(os.environ.get("TEST_DATABASE_URL", "mysql://root@127.0.0.1:3306"))
    return MysqlServer(
        host=url.hostname or "127.0.0.1",
        port=url.port or 3306,
        user=unquote(url.username or "root"),
        password=unquote(url.password or ""),
    )
