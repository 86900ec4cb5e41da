"""`customers-mngr provider-mock`: the provider simulator as a standalone server.

For development, compose and benchmarks: the provider's exact shape and
pagination at http://HOST:PORT/api/v1/usuarios, deterministic per seed, with
fault injection. It needs no database, keys or network access.
"""

from __future__ import annotations

import argparse
import asyncio
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from daemon.cli.common import fail
from daemon.config import read_log_settings
from daemon.observability.logs import configure_logging, get_logger
from daemon.provider.simulator import Simulator, SimulatorActor, bind_loopback
from daemon.runtime.signals import stop_on_signals

__all__ = ("register",)

log = get_logger("customers_mngr.cli")
_MAX_FILE_BYTES = 1 << 30


def register(sub: Any) -> None:
    parser = sub.add_parser(
        "provider-mock",
        help="serve a simulated provider (development, compose, tests, benchmarks)",
        description="Serve GET /api/v1/usuarios[?page=N&limit=M] with the provider's shape and pagination, "
        "deterministic for a seed, with optional faults. Runs until SIGTERM/SIGINT (exit 0); exit 1 if the "
        "port cannot be bound, 2 on a bad argument or file.",
    )
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=8081, help="port (default 8081; 0 = any free port)")
    parser.add_argument("--records", type=_count, default=1000, help="records served (default 1000)")
    parser.add_argument("--seed", type=_count, default=1, help="seed of the generated data (default 1)")
    parser.add_argument("--error-rate", type=_rate, default=0.0, help="share of requests answered 500/502/503")
    parser.add_argument("--throttle-rate", type=_rate, default=0.0, help="share answered 429 with Retry-After")
    parser.add_argument("--retry-after", default="1", help="Retry-After value of those 429s (default 1 second)")
    parser.add_argument("--slow-rate", type=_rate, default=0.0, help="share of requests delayed by --slow-ms")
    parser.add_argument("--slow-ms", type=_count, default=2000, help="delay of a slow request (default 2000)")
    parser.add_argument("--bad-rate", type=_rate, default=0.0, help="share of records with invalid fields")
    parser.add_argument(
        "--churn-rate", type=_rate, default=0.0, help="share of records changed, removed or added between snapshots"
    )
    parser.add_argument("--from-file", type=Path, default=None, help="serve this JSON array as it is instead")
    parser.set_defaults(handler=handle)


def handle(args: argparse.Namespace, env: Mapping[str, str]) -> int:
    configure_logging(read_log_settings(env))
    try:
        sim = Simulator(
            records=args.records,
            seed=args.seed,
            error_rate=args.error_rate,
            throttle_rate=args.throttle_rate,
            retry_after=args.retry_after,
            slow_rate=args.slow_rate,
            slow_ms=args.slow_ms,
            bad_rate=args.bad_rate,
            churn_rate=args.churn_rate,
            from_records=_read_file(args.from_file) if args.from_file else None,
        )
    except ValueError as exc:
        fail(f"provider-mock: {exc}")
        return 2
    try:
        sock = bind_loopback(args.port, args.host)
    except OSError as exc:
        fail(f"provider-mock: cannot listen on {args.host}:{args.port} ({exc.strerror or exc})")
        return 1
    actor = SimulatorActor(simulator=sim, sock=sock)
    try:
        return asyncio.run(_serve(actor))
    except KeyboardInterrupt:
        return 0
    finally:
        actor.close()


async def _serve(actor: SimulatorActor) -> int:
    stop = asyncio.Event()
    with stop_on_signals(stop, budget_s=5):
        async with asyncio.TaskGroup() as tg:
            task = tg.create_task(actor.run(), name="provider-sim")
            await stop.wait()
            task.cancel()
    log.info("simulator_stopped")
    return 0


def _read_file(path: Path) -> list[object]:
    try:
        if path.stat().st_size > _MAX_FILE_BYTES:
            raise ValueError(f"{path} is larger than 1 GiB")
        data = json.loads(path.read_bytes())
    except OSError as exc:
        raise ValueError(f"cannot read {path}: {exc.strerror or exc}") from None
    except (json.JSONDecodeError, UnicodeDecodeError, RecursionError):
        raise ValueError(f"{path} is not valid JSON") from None
    if not isinstance(data, list):
        raise ValueError(f"{path} must hold a JSON array")
    return data


def _rate(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"{text} is not within 0..1")
    return value


def _count(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"{text} is negative")
    return value
