"""What every scenario shares: secrets, artifacts, the recording simulator, daemons as processes, DB checks.

    suite = Suite.create(root)              one per session: .reliability/ (logs, dumps, figures)
    suite.secrets.env()                     keys and API tokens the daemons run with (random per session)
    sim = RecordingSimulator(needles, ...)  the provider simulator, noting every sensitive value it serves
    with suite.daemon("s2", "all", env) as d: ...   `python -m daemon run`, output to a log file
    check = verify_store(mysql, db, ring)   every row decrypted, derived columns and content hash re-checked
    compare_with_truth(check, sim)          row by row against the simulator's own valid state

Every subprocess writes its whole output to a file under `.reliability/logs/`, and every
scenario dumps its database to `.reliability/dumps/` before it is dropped: scenario 9 scans
both for the provider's sensitive values, the tokens and the keys.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from daemon import policy
from daemon.crypto.keyring import Keyring
from daemon.crypto.masks import display_mask, last4
from daemon.errors import CryptoError
from daemon.observability.scrape import Scrape
from daemon.provider.records import ParsedRecord
from daemon.provider.simulator import Churn, Fault, Simulator
from daemon.syncer.rows import WRITE_COLUMNS
from tests.conftest import base_env
from tests.support.daemon_proc import ROOT, DaemonProcess, free_port, http_get
from tests.support.mysql import MysqlServer

__all__ = (
    "ROLES",
    "Daemon",
    "Needles",
    "RecordingSimulator",
    "Secrets",
    "StoreCheck",
    "Suite",
    "compare_with_truth",
    "fd_count",
    "rss_kib",
    "soak",
    "verify_store",
    "wait_until",
)

ROLES = ("viewer", "analyst", "admin")
SENSITIVE_FIELDS = ("credit_card_num", "credit_card_ccv", "cuenta_numero", "ip", "foto_dni")
CVV_PREFIX = "cvv~"  # every CVV the recording simulator serves starts so: any sighting is a leak


def soak() -> bool:
    """RELIABILITY_SOAK=1: the longer variants (more runs, kills, load)."""
    return os.environ.get("RELIABILITY_SOAK", "") not in ("", "0")


# --- secrets ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Secrets:
    """Random keys and one API token per role, fresh for each session; nothing here may reach a log."""

    key: bytes = field(default_factory=lambda: os.urandom(32))
    index_key: bytes = field(default_factory=lambda: os.urandom(32))
    tokens: Mapping[str, str] = field(
        default_factory=lambda: {role: f"rel-{role}-{secrets.token_urlsafe(24)}" for role in ROLES}
    )

    def env(self) -> dict[str, str]:
        entries = [
            {"name": f"rel-{role}", "role": role, "sha256": hashlib.sha256(token.encode()).hexdigest()}
            for role, token in self.tokens.items()
        ]
        return {
            "ENCRYPTION_KEYS": json.dumps({"r1": base64.b64encode(self.key).decode()}),
            "ENCRYPTION_ACTIVE_KEY": "r1",
            "INDEX_KEY": base64.b64encode(self.index_key).decode(),
            "API_TOKENS": json.dumps(entries),
        }

    def keyring(self) -> Keyring:
        return Keyring({"r1": self.key}, active_key_id="r1", index_key=self.index_key)

    def header(self, role: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.tokens[role]}"}

    def needles(self) -> list[str]:
        """Every form of a secret that must never be written anywhere."""
        out = list(self.tokens.values())
        for key in (self.key, self.index_key):
            out += [base64.b64encode(key).decode(), base64.urlsafe_b64encode(key).decode(), key.hex()]
        return out


# --- the provider's sensitive values ------------------------------------------------------


class Needles:
    """Every sensitive value a provider served during the session, in the forms searched for."""

    def __init__(self) -> None:
        self.cards: set[str] = set()  # digits only
        self.card_texts: set[str] = set()  # as sent (with separators)
        self.accounts: set[str] = set()  # digits only
        self.account_texts: set[str] = set()
        self.ips: set[str] = set()
        self.dni_urls: set[str] = set()
        self.cvvs: set[str] = set()
        self.other: set[str] = set()  # odd values (bad records, hostile input): searched as they are

    def __len__(self) -> int:
        return sum(
            len(s) for s in (self.cards, self.accounts, self.ips, self.dni_urls, self.cvvs, self.other, self.card_texts)
        )

    def add_record(self, raw: object) -> None:
        if not isinstance(raw, Mapping):
            return
        for name in SENSITIVE_FIELDS:
            value = raw.get(name)
            if isinstance(value, bool) or value is None:
                continue
            if isinstance(value, int):
                value = str(value)
            if not isinstance(value, str) or not value.strip():
                continue
            self._add(name, value[:256])

    def _add(self, name: str, value: str) -> None:
        digits = "".join(c for c in value if "0" <= c <= "9")
        digits_only = digits and len(digits) == len(value.replace("-", "").replace(" ", ""))
        if name == "credit_card_num":
            if digits_only and len(digits) >= 12:
                self.cards.add(digits)
                self.card_texts.add(value)
            else:
                self.other.add(value)
        elif name == "cuenta_numero":
            if digits_only and len(digits) >= 5:
                self.accounts.add(digits)
                self.account_texts.add(value)
            else:
                self.other.add(value)
        elif name == "ip":
            self.ips.add(value)
        elif name == "foto_dni":
            self.dni_urls.add(value)
        elif name == "credit_card_ccv":
            if value.startswith(CVV_PREFIX):
                self.cvvs.add(value)
            elif len(value) >= 6:
                self.other.add(value)

    def counts(self) -> dict[str, int]:
        return {
            "card numbers": len(self.cards),
            "CVVs": len(self.cvvs),
            "account numbers": len(self.accounts),
            "IPs": len(self.ips),
            "DNI URLs": len(self.dni_urls),
            "other odd values": len(self.other),
        }


class RecordingSimulator(Simulator):
    """The provider simulator, unchanged but for two things, both for scenario 9's search:

    - every record it serves has its sensitive values noted in `needles`;
    - its CVV is a distinctive 8-character marker (`cvv~` + 4 base-36 characters) instead of
      3-4 digits, which no search can tell apart from any other number. The daemon drops the
      CVV unread (`Kind.CVV`), so nothing else about a sync changes.
    """

    def __init__(self, needles: Needles, **options: Any) -> None:
        super().__init__(**options)
        self.needles = needles
        self.served = 0
        self.faults: Counter[str] = Counter()  # requests by what they were answered: ok, 429, 5xx, slow, scripted
        self.churned: Counter[str] = Counter()  # records changed, removed, added between snapshots

    def next_fault(self, number: int | None) -> Fault | None:
        scripted = bool(self._script) or (number is not None and number in self._page_faults)
        fault = super().next_fault(number)
        if fault is None:
            self.faults["ok"] += 1
        elif scripted:
            self.faults["scripted"] += 1
        elif fault.serve:
            self.faults["slow"] += 1
        else:
            self.faults["429" if fault.status == 429 else "5xx"] += 1
        return fault

    def advance(self, rate: float | None = None) -> Churn:
        churn = super().advance(rate)
        self.churned.update(changed=len(churn.changed), removed=len(churn.removed), added=len(churn.added))
        return churn

    def record(self, record_id: int) -> dict[str, object]:
        raw = super().record(record_id)
        version = self._versions.get(record_id, 0)
        raw["credit_card_ccv"] = CVV_PREFIX + _base36((self.seed * 1_000_003 + record_id * 7919 + version) % 36**4, 4)
        self.needles.add_record(raw)
        self.served += 1
        return raw


def _base36(n: int, width: int) -> str:
    digits = "0123456789abcdefghijklmnopqrstuvwxyz"
    out = ""
    for _ in range(width):
        n, r = divmod(n, 36)
        out = digits[r] + out
    return out


# --- the session's artifacts ------------------------------------------------------------------


@dataclass
class Suite:
    """The session's folder of logs and dumps, its secrets and the provider values served."""

    root: Path
    secrets: Secrets = field(default_factory=Secrets)
    needles: Needles = field(default_factory=Needles)
    extra_needles: list[str] = field(default_factory=list)  # presented bad tokens etc., searched as they are

    @classmethod
    def create(cls, root: Path) -> Suite:
        if root.exists():
            shutil.rmtree(root)
        (root / "logs").mkdir(parents=True)
        (root / "dumps").mkdir()
        return cls(root=root)

    def logs(self, scenario: str) -> Path:
        path = self.root / "logs" / scenario
        path.mkdir(parents=True, exist_ok=True)
        return path

    def log_files(self) -> list[Path]:
        return sorted(p for p in (self.root / "logs").rglob("*") if p.is_file())

    def dump_files(self) -> list[Path]:
        return sorted(p for p in (self.root / "dumps").glob("*.dump"))

    def env(self, mysql: MysqlServer, database: str, *, db_port: int | None = None, **extra: str) -> dict[str, str]:
        """A daemon environment: development (the simulator may be used), the session's keys and tokens."""
        env = base_env(mysql, database, port=db_port)
        env.update(self.secrets.env())
        env.update(
            {
                "DEV_KEY_FILE": str(self.root / "unused-dev-keys.json"),
                "SUPERVISOR_BACKOFF_INITIAL_S": "0.2",
                "SUPERVISOR_BACKOFF_MAX_S": "2",
            }
        )
        env.update(extra)
        return env

    def daemon(
        self, scenario: str, name: str, args: Sequence[str], env: Mapping[str, str], *, port: str | None = None
    ) -> Daemon:
        """A daemon process whose HTTP port (API_PORT, else METRICS_PORT, or `port`) the caller fixed."""
        mode = args[args.index("--mode") + 1] if "--mode" in args else None
        chosen = port or {"syncer": env.get("METRICS_PORT"), None: None}.get(mode, env.get("API_PORT"))
        if mode is not None and (not chosen or chosen == "0"):
            raise ValueError("give the daemon a fixed port (ports())")
        return Daemon(self.logs(scenario) / f"{name}.log", args, env, port=int(chosen) if chosen else None)

    def dump(self, mysql: MysqlServer, database: str, scenario: str) -> Path:
        path = self.root / "dumps" / f"{scenario}-{database}.dump"
        dump_database(mysql, database, path)
        return path


# --- daemons --------------------------------------------------------------------------------


class Daemon:
    """`python -m daemon <args>` with its output in a log file; the API/metrics port from the env."""

    def __init__(self, log_path: Path, args: Sequence[str], env: Mapping[str, str], *, port: int | None) -> None:
        self.log_path = log_path
        self.env = dict(env)
        self.port = port or 0
        self.base = f"http://127.0.0.1:{self.port}"
        self.process = DaemonProcess(list(args), self.env, log_path=log_path)
        self.started = time.monotonic()

    @property
    def pid(self) -> int:
        return int(self.process.proc.pid)

    def alive(self) -> bool:
        return self.process.proc.poll() is None

    def wait_ready(self, timeout: float = 60.0, path: str = "/ready") -> float:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not self.alive():
                raise AssertionError(f"daemon exited with {self.process.proc.returncode}; see {self.log_path}")
            with contextlib.suppress(OSError):
                if http_get(self.base + path, timeout=2.0)[0] == 200:
                    return time.monotonic() - self.started
            time.sleep(0.1)
        raise AssertionError(f"{self.base}{path} not 200 within {timeout}s; see {self.log_path}")

    def get(self, path: str, *, headers: Mapping[str, str] | None = None, timeout: float = 10.0) -> tuple[int, bytes]:
        return http_get(self.base + path, headers=headers, timeout=timeout)

    def metrics(self) -> Scrape:
        status, body = self.get("/metrics")
        assert status == 200, status
        return Scrape.parse(body.decode())

    def stop(self, timeout: float = 30.0) -> tuple[int, float]:
        return self.process.stop(timeout)

    def kill9(self) -> None:
        self.process.proc.send_signal(signal.SIGKILL)
        self.process.wait(15)

    def close(self) -> None:
        self.process.ensure_dead()

    def __enter__(self) -> Daemon:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def events(self, name: str | None = None) -> list[dict[str, Any]]:
        out = []
        for line in self.log_text().splitlines():
            if not line.startswith("{"):
                continue
            with contextlib.suppress(ValueError):
                event = json.loads(line)
                if name is None or event.get("event") == name:
                    out.append(event)
        return out


def ports(*names: str) -> dict[str, str]:
    return {name: str(free_port()) for name in names}


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError("no VmRSS")


def vm_hwm_kib(pid: int) -> int:
    """The peak resident memory of a running process (0 once it has exited)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    return 0


def fd_count(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


def wait_until(predicate: Callable[[], bool], *, timeout: float, interval: float = 0.1, what: str = "") -> float:
    """Poll until `predicate()`; return the seconds it took (AssertionError past `timeout`)."""
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        with contextlib.suppress(Exception):
            if predicate():
                return time.monotonic() - started
        time.sleep(interval)
    raise AssertionError(f"not within {timeout}s: {what}")


# --- the database -----------------------------------------------------------------------------


def query(mysql: MysqlServer, database: str, sql: str) -> list[tuple[object, ...]]:
    return mysql.execute(sql, database=database)


def scalar(mysql: MysqlServer, database: str, sql: str) -> Any:
    rows = query(mysql, database, sql)
    return rows[0][0] if rows else None


def dump_database(mysql: MysqlServer, database: str, path: Path) -> None:
    """Every row of every table, values as their raw bytes (binary columns unescaped), one row a line."""
    tables = [str(row[0]) for row in query(mysql, database, "SHOW TABLES")]
    with path.open("wb") as out:
        for table in tables:
            out.write(f"-- table {table}\n".encode())
            for row in query(mysql, database, f"SELECT * FROM `{table}`"):
                out.write(b"\t".join(_raw(value) for value in row) + b"\n")


def _raw(value: object) -> bytes:
    if value is None:
        return b"NULL"
    if isinstance(value, bytes | bytearray):
        return bytes(value)
    return str(value).encode("utf-8", "surrogateescape")


_STORED = tuple(f.name for f in policy.FIELDS if f.stored)


@dataclass
class StoreCheck:
    """`customers` read back: every ciphertext decrypted, every derived column and content hash re-derived."""

    rows: int = 0
    live: int = 0
    deleted: int = 0
    values_decrypted: int = 0
    decrypt_failures: list[tuple[int, str]] = field(default_factory=list)
    inconsistent: list[tuple[int, str]] = field(default_factory=list)  # (id, what) of a row not whole
    state: dict[int, dict[str, object]] = field(default_factory=dict)  # live rows, provider field -> value

    @property
    def sound(self) -> bool:
        return not self.decrypt_failures and not self.inconsistent


def verify_store(mysql: MysqlServer, database: str, ring: Keyring) -> StoreCheck:
    columns = (*WRITE_COLUMNS, "deleted_at")
    names = ", ".join(f"`{c}`" for c in columns)
    check = StoreCheck()
    for row in query(mysql, database, f"SELECT {names} FROM customers ORDER BY id"):
        stored = dict(zip(columns, row, strict=True))
        record_id = int(stored["id"])  # type: ignore[call-overload]
        check.rows += 1
        values: dict[str, object] = {}
        for column in policy.columns():
            value = stored[column.name]
            if column.role == "clear":
                values[column.field] = value
            elif column.role == "ciphertext":
                if value is None:
                    values[column.field] = None
                    continue
                try:
                    values[column.field] = ring.decrypt(bytes(value), column=column.name, record_id=record_id)  # type: ignore[arg-type]
                    check.values_decrypted += 1
                except CryptoError:
                    check.decrypt_failures.append((record_id, column.name))
                    values[column.field] = None
        _check_derived(check, record_id, stored, values, ring)
        if stored["deleted_at"] is None:
            check.live += 1
            check.state[record_id] = values
        else:
            check.deleted += 1
    return check


def _check_derived(
    check: StoreCheck, record_id: int, stored: Mapping[str, object], values: dict[str, object], ring: Keyring
) -> None:
    for column in policy.columns():
        plain = values.get(column.field)
        value = stored[column.name]
        if column.role in ("clear", "ciphertext"):
            continue
        if plain is None:
            if value is not None:
                check.inconsistent.append((record_id, column.name))
            continue
        text = str(plain)
        wanted: object
        if column.role == "last4":
            wanted = last4(text)
        elif column.role == "mask":
            wanted = display_mask(text)
        elif column.role == "blind_index":
            wanted = ring.blind_index(text)
            value = bytes(value) if isinstance(value, bytes | bytearray) else value
        else:
            raise AssertionError(column.role)
        if value != wanted:
            check.inconsistent.append((record_id, column.name))
    if set(values) >= set(_STORED):
        canonical = ParsedRecord(id=record_id, values={k: values[k] for k in _STORED}).canonical()
        content_hash = stored["content_hash"]
        if not isinstance(content_hash, bytes | bytearray) or ring.content_hash(canonical) != bytes(content_hash):
            check.inconsistent.append((record_id, "content_hash"))


def normalized(record: ParsedRecord) -> dict[str, object]:
    """A parsed record as the DB gives it back (naive UTC datetimes)."""
    return {
        name: value.replace(tzinfo=None) if isinstance(value, datetime) else value
        for name, value in record.values.items()
    }


@dataclass
class Comparison:
    compared: int
    missing: list[int]
    extra: list[int]
    different: list[int]

    @property
    def equal(self) -> bool:
        return not (self.missing or self.extra or self.different)

    def describe(self) -> str:
        return f"missing {self.missing[:10]}, extra {self.extra[:10]}, different {self.different[:10]}"


def compare_with_truth(check: StoreCheck, expected: Mapping[int, ParsedRecord]) -> Comparison:
    """Live rows against the provider's valid state, row by row, field by field (decrypted)."""
    missing = sorted(set(expected) - set(check.state))
    extra = sorted(set(check.state) - set(expected))
    different = [i for i in sorted(set(expected) & set(check.state)) if check.state[i] != normalized(expected[i])]
    return Comparison(compared=len(set(expected) | set(check.state)), missing=missing, extra=extra, different=different)


@contextlib.contextmanager
def timed() -> Iterator[Callable[[], float]]:
    started = time.monotonic()
    yield lambda: time.monotonic() - started


# --- load from a separate process ----------------------------------------------------------------


def api_mix(secrets_: Secrets, *, admin: bool = True, ops: bool = True) -> list[dict[str, Any]]:
    """Mixed endpoints and roles: pages (walked by cursor, revalidated by ETag), items, runs, probes."""
    h = secrets_.header
    mix: list[dict[str, Any]] = [
        {
            "name": "viewer page walk",
            "path": "/clientes?limit=100",
            "headers": h("viewer"),
            "weight": 3,
            "ok": [200, 304],
            "etag": True,
            "walk": True,
        },
        {
            "name": "analyst page",
            "path": "/clientes?limit=50",
            "headers": h("analyst"),
            "weight": 3,
            "ok": [200, 304],
            "etag": True,
        },
        {
            "name": "viewer item",
            "path": "/clientes/{id}",
            "headers": h("viewer"),
            "weight": 3,
            "ok": [200, 304],
            "etag": True,
        },
        {"name": "analyst item", "path": "/clientes/{id}", "headers": h("analyst"), "weight": 2, "ok": [200, 304]},
    ]
    if admin:
        mix += [
            {"name": "admin page", "path": "/clientes?limit=20", "headers": h("admin"), "weight": 1, "ok": [200]},
            {"name": "admin item", "path": "/clientes/{id}", "headers": h("admin"), "weight": 2, "ok": [200]},
            {"name": "admin runs", "path": "/sync/runs?limit=5", "headers": h("admin"), "weight": 0.5, "ok": [200]},
        ]
    if ops:
        mix += [
            {"name": "health", "path": "/health", "weight": 0.5, "ok": [200]},
            {"name": "openapi", "path": "/openapi.json", "weight": 0.2, "ok": [200]},
        ]
    return mix


class LoadRun:
    """One run of `python -m tests.reliability.loadgen` in its own process (config outside the scanned logs)."""

    def __init__(
        self,
        suite: Suite,
        scenario: str,
        name: str,
        *,
        base: str,
        connections: int,
        duration_s: float,
        mix: list[dict[str, Any]],
        work_dir: Path,
        item_range: tuple[int, int] = (1, 1),
        timeout_s: float = 15.0,
        trace: bool = False,
        max_requests: int = 5_000_000,
    ) -> None:
        work_dir.mkdir(parents=True, exist_ok=True)
        self.result_path = suite.root / "load" / f"{scenario}-{name}.json"
        self.result_path.parent.mkdir(exist_ok=True)
        self.stop_file = work_dir / f"{name}.stop"
        config = {
            "base": base,
            "connections": connections,
            "duration_s": duration_s,
            "timeout_s": timeout_s,
            "mix": mix,
            "item_range": list(item_range),
            "trace": trace,
            "stop_file": str(self.stop_file),
            "max_requests": max_requests,
        }
        config_path = work_dir / f"{name}.config.json"
        config_path.write_text(json.dumps(config))
        self.log_path = suite.logs(scenario) / f"{name}-loadgen.log"
        self._log = self.log_path.open("wb")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "tests.reliability.loadgen", str(config_path), str(self.result_path)],
            cwd=ROOT,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            env={k: v for k, v in os.environ.items() if k in ("PATH", "HOME", "LANG", "TMPDIR", "PYTHONPATH")},
        )
        self.started_wall = time.time()
        self.timeout = duration_s + timeout_s + 60

    def stop(self) -> None:
        self.stop_file.touch()

    def result(self) -> dict[str, Any]:
        try:
            code = self.proc.wait(self.timeout)
        finally:
            if self.proc.poll() is None:
                self.proc.kill()
                self.proc.wait(10)
            self._log.close()
        assert code == 0, f"load client failed ({code}): {self.log_path.read_text()[-2000:]}"
        result: dict[str, Any] = json.loads(self.result_path.read_text())
        return result

    def __enter__(self) -> LoadRun:
        return self

    def __exit__(self, *exc: object) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)
        if not self._log.closed:
            self._log.close()


# --- a log of every committed write, kept by the server itself -----------------------------------

WRITE_LOG_TABLE = "rel_writes"
_WRITE_LOG_ROW = (
    "INSERT INTO rel_writes (tbl, row_id, conn, version_seen, epoch_seen, at) VALUES "
    "('{tbl}', {row}, CONNECTION_ID(), (SELECT version FROM data_version WHERE name = 'customers'), "
    "(SELECT MAX(epoch) FROM sync_leader WHERE name = 'customers'), NOW(6))"
)


def install_write_log(mysql: MysqlServer, database: str) -> None:
    """Triggers that log every write to customers, sync_quarantine, sync_leader and data_version.

    A trigger's row is part of the writing transaction: it exists only if that transaction
    committed. Each row notes the writer's connection id, the data version and the leader
    epoch the transaction saw, and an AUTO_INCREMENT `seq` allocated when it was written —
    so the log orders writes across connections. (A batch's rows see version v and the
    same transaction bumps it to v+1; a leader's epoch bump waits on the row lock of the
    fence taken by any batch in flight.) Test databases only, installed after migrations.
    """
    statements = [
        "CREATE TABLE rel_writes (seq BIGINT NOT NULL AUTO_INCREMENT PRIMARY KEY, tbl VARCHAR(16) NOT NULL, "
        "row_id BIGINT NULL, conn BIGINT NOT NULL, version_seen BIGINT NULL, epoch_seen BIGINT NULL, "
        "at DATETIME(6) NOT NULL) ENGINE=InnoDB",
    ]
    for table, event, tbl, row in (
        ("customers", "INSERT", "customers", "NEW.id"),
        ("customers", "UPDATE", "customers", "NEW.id"),
        ("sync_quarantine", "INSERT", "quarantine", "NEW.id"),
        ("sync_leader", "INSERT", "leader", "NEW.epoch"),
        ("sync_leader", "UPDATE", "leader", "NEW.epoch"),
        ("data_version", "UPDATE", "version", "NEW.version"),
    ):
        statements.append(
            f"CREATE TRIGGER rel_{table}_{event.lower()} AFTER {event} ON {table} FOR EACH ROW "
            + _WRITE_LOG_ROW.format(tbl=tbl, row=row)
        )
    mysql.execute(*statements, database=database)


def migrate_database(suite: Suite, scenario: str, env: Mapping[str, str]) -> None:
    """`customers-mngr migrate` as a process (creates the schema before triggers are added)."""
    proc = DaemonProcess(["migrate"], dict(env), log_path=suite.logs(scenario) / "migrate.log")
    assert proc.wait(120) == 0, proc.output.decode(errors="replace")[-2000:]


# --- `sync --once` with its peak memory ------------------------------------------------------------


@dataclass
class OnceResult:
    code: int
    summary: dict[str, Any] | None
    stderr: str
    peak_rss_kib: int
    seconds: float


def sync_once(suite: Suite, scenario: str, name: str, env: Mapping[str, str], *, timeout: float = 180) -> OnceResult:
    """`python -m daemon sync --once`: stdout (its JSON line) and stderr (its logs) to files, and its peak RSS."""
    out_path = suite.logs(scenario) / f"{name}.stdout"
    err_path = suite.logs(scenario) / f"{name}.log"
    base = {k: v for k, v in os.environ.items() if k in ("PATH", "HOME", "LANG", "TMPDIR", "PYTHONPATH")}
    started = time.monotonic()
    with out_path.open("wb") as out, err_path.open("wb") as err:
        proc = subprocess.Popen(
            [sys.executable, "-m", "daemon", "sync", "--once", "--no-progress"],
            cwd=ROOT,
            env={**base, "PYTHONUNBUFFERED": "1", **env},
            stdout=out,
            stderr=err,
        )
        # The high-water mark of the process's own memory, read until it exits (wait4's ru_maxrss would
        # count the test process it was forked from, before exec).
        peak = 0
        status = 0
        while time.monotonic() - started < timeout:
            with contextlib.suppress(OSError, ValueError):
                peak = max(peak, vm_hwm_kib(proc.pid))
            pid, status = os.waitpid(proc.pid, os.WNOHANG)
            if pid:
                break
            time.sleep(0.02)
        else:
            proc.kill()
            _, status = os.waitpid(proc.pid, 0)
        proc.returncode = os.waitstatus_to_exitcode(status)
    lines = [line for line in out_path.read_text(errors="replace").splitlines() if line.startswith("{")]
    summary = json.loads(lines[-1]) if lines else None
    return OnceResult(
        code=proc.returncode,
        summary=summary,
        stderr=err_path.read_text(errors="replace"),
        peak_rss_kib=peak,
        seconds=time.monotonic() - started,
    )
