"""`customers-mngr migrate`: create the database if needed and apply pending migrations."""

from __future__ import annotations

import argparse
from collections.abc import Mapping
from typing import Any

from daemon.cli.common import load_or_exit, run_async
from daemon.config import Settings
from daemon.db.connect import open_database
from daemon.db.migrate import migrate
from daemon.observability.metrics import Metrics

__all__ = ("register",)


def register(sub: Any) -> None:
    parser = sub.add_parser(
        "migrate",
        help="apply pending schema migrations",
        description="Apply pending migrations (idempotent; safe with concurrent migrators).",
    )
    parser.set_defaults(handler=handle)


def handle(args: argparse.Namespace, env: Mapping[str, str]) -> int:
    settings = load_or_exit(env, mode="syncer")
    return run_async(_main(settings), env=env)


async def _main(settings: Settings) -> int:
    async with open_database(settings.db, metrics=Metrics(), create=True, pool_min=1, pool_max=1) as db:
        applied = await migrate(db)
    print(f"applied {len(applied)} migration(s)" + "".join(f"\n  {m.version:04d}_{m.name}" for m in applied))
    return 0
