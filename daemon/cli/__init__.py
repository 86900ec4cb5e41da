"""The command line: `customers-mngr <command>`. The only place that reads os.environ.

Each command lives in its own module with a `register(subparsers)` that adds
its parser and sets `handler`. Handlers take (args, env) and return an exit code.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence

from daemon import __version__
from daemon.cli import check_config, healthcheck, keys, migrate, provider_mock, run, status, sync, tokens, version

__all__ = ("build_parser", "main")

_COMMANDS = (run, migrate, check_config, healthcheck, status, version, keys, provider_mock, tokens, sync)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="customers-mngr",
        description="Syncs customer records from the provider into MySQL (card and bank data encrypted) "
        "and serves them by role. Configuration comes from environment variables: see README.md.",
    )
    parser.add_argument("--version", action="version", version=f"customers-mngr {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for command in _COMMANDS:
        command.register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    env = dict(os.environ)  # the edge: nothing below reads the environment itself
    try:
        return int(args.handler(args, env))
    except SystemExit as exc:
        return int(exc.code) if isinstance(exc.code, int) else 1
    finally:
        sys.stdout.flush()
