"""`customers-mngr check-config`: print the effective configuration, secrets redacted."""

from __future__ import annotations

import argparse
import json
from collections.abc import Mapping
from typing import Any

from daemon.cli.common import load_or_exit
from daemon.config import describe
from daemon.config.process import MODES

__all__ = ("register",)


def register(sub: Any) -> None:
    parser = sub.add_parser(
        "check-config",
        help="validate and print the configuration (secrets redacted)",
        description="Exit 0 and print the effective configuration as JSON with every "
        "secret redacted, or exit 2 with one line naming the bad variable.",
    )
    parser.add_argument("--mode", choices=MODES, default=None, help="check for this mode (default: $MODE)")
    parser.set_defaults(handler=handle)


def handle(args: argparse.Namespace, env: Mapping[str, str]) -> int:
    settings = load_or_exit(env, mode=args.mode)
    print(json.dumps(describe(settings), indent=2, sort_keys=False))
    return 0
