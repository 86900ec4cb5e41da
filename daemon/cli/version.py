"""`customers-mngr version`: the version and the git commit it was built from."""

from __future__ import annotations

import argparse
import platform
from collections.abc import Mapping
from typing import Any

from daemon import __version__
from daemon.buildinfo import git_commit

__all__ = ("register",)


def register(sub: Any) -> None:
    parser = sub.add_parser("version", help="print the version and git commit")
    parser.set_defaults(handler=handle)


def handle(_args: argparse.Namespace, _env: Mapping[str, str]) -> int:
    print(f"customers-mngr {__version__} (commit {git_commit()}, Python {platform.python_version()})")
    return 0
