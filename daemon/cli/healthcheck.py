"""`customers-mngr healthcheck [--url URL]`: the container health check (no curl in the image)."""

from __future__ import annotations

import argparse
import urllib.error
import urllib.request
from collections.abc import Mapping
from typing import Any

from daemon.cli.common import fail

__all__ = ("default_url", "register")


def register(sub: Any) -> None:
    parser = sub.add_parser(
        "healthcheck",
        help="exit 0 if GET /health answers 200",
        description="Exit 0 if GET /health answers 200 within the timeout, else 1. "
        "Default URL: 127.0.0.1 on API_PORT, or METRICS_PORT in syncer mode.",
    )
    parser.add_argument("--url", default=None, help="URL to probe (default from MODE, API_PORT, METRICS_PORT)")
    parser.add_argument("--timeout", type=float, default=3.0, help="seconds (default 3)")
    parser.set_defaults(handler=handle)


def default_url(env: Mapping[str, str]) -> str:
    # Deliberately not load_settings(): a health probe must not fail on, say, a missing key.
    mode = env.get("MODE", "all").strip().lower() or "all"
    port = env.get("METRICS_PORT", "9102") if mode == "syncer" else env.get("API_PORT", "8080")
    return f"http://127.0.0.1:{port.strip() or '8080'}/health"


def handle(args: argparse.Namespace, env: Mapping[str, str]) -> int:
    url = args.url or default_url(env)
    if not url.startswith(("http://", "https://")):
        fail(f"healthcheck: {url!r} is not an http(s) URL")
        return 2
    try:
        with urllib.request.urlopen(url, timeout=args.timeout) as response:  # noqa: S310 - scheme checked above
            status = int(response.status)
    except urllib.error.HTTPError as exc:
        status = exc.code
    except (urllib.error.URLError, OSError, ValueError) as exc:
        fail(f"healthcheck: {url} unreachable ({getattr(exc, 'reason', exc)})")
        return 1
    if status != 200:
        fail(f"healthcheck: {url} answered {status}")
        return 1
    return 0
