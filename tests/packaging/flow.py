"""The end-to-end flow every packaging test checks: simulator -> syncer -> DB -> API, per role.

Used by the binary tests (three processes of dist/customers-mngr) and by `make image-test`
(three containers, then compose): the ops surface of both daemons (/health, /ready,
/metrics), the simulator's records reaching the customers table through the syncer, and the
API serving them to each role with exactly that role's fields and values.
"""

from __future__ import annotations

import contextlib
import json
import re
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping
from typing import Any

from daemon.config.http import DEMO_TOKENS, ROLES
from daemon.policy import View, visible_fields

__all__ = (
    "FlowError",
    "check_flow",
    "check_ops",
    "check_stored_encrypted",
    "check_synced_rows",
    "get",
    "provider_records",
    "wait_for",
)

TOKENS = {role: token for token, role in DEMO_TOKENS.items()}
_LINK_NEXT = re.compile(r"<([^>]+)>\s*;\s*rel=\"?next\"?")


class FlowError(AssertionError):
    """A check of the flow failed; the message is one line naming what and where."""


def get(url: str, *, token: str | None = None, timeout: float = 10.0) -> tuple[int, Mapping[str, str], bytes]:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    request = urllib.request.Request(url, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return int(response.status), dict(response.headers), response.read()
    except urllib.error.HTTPError as exc:
        return int(exc.code), dict(exc.headers), exc.read()


def wait_for(what: str, check: Callable[[], bool], *, timeout: float, every: float = 0.25) -> float:
    """Poll `check` until it returns True; the seconds it took, or FlowError naming `what`."""
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        with contextlib.suppress(OSError, ValueError):
            if check():
                return time.monotonic() - started
        time.sleep(every)
    raise FlowError(f"{what}: not within {timeout:.0f}s")


def check_ops(base_url: str, *, metric: str = "customers_mngr_actor_up", where: str) -> None:
    """/health and /ready answer 200 and /metrics serves the daemon's metrics."""
    for path in ("/health", "/ready"):
        status, _, body = get(base_url + path)
        if status != 200:
            raise FlowError(f"{where}: GET {path} answered {status}: {body[:200]!r}")
    status, headers, body = get(base_url + "/metrics")
    if status != 200 or metric.encode() not in body:
        raise FlowError(f"{where}: GET /metrics answered {status} without {metric}")
    if not headers.get("Content-Type", "").startswith("text/plain"):
        raise FlowError(f"{where}: /metrics Content-Type is {headers.get('Content-Type')!r}")


def provider_records(provider_url: str, records: int) -> list[dict[str, Any]]:
    status, _, body = get(f"{provider_url}?page=1&limit={records}")
    if status != 200:
        raise FlowError(f"simulator: GET {provider_url} answered {status}")
    data = json.loads(body)
    if not isinstance(data, list) or len(data) != records:
        raise FlowError(f"simulator: expected {records} records, got {len(data) if isinstance(data, list) else data!r}")
    return data


def check_synced_rows(count_rows: Callable[[], int], records: int, *, timeout: float = 120.0) -> None:
    """Syncer -> DB: the customers table fills up with the simulator's records (no API needed)."""
    wait_for(f"db: {records} customers synced from the simulator", lambda: count_rows() >= records, timeout=timeout)
    if (found := count_rows()) != records:
        raise FlowError(f"db: {found} customers stored, the simulator serves {records}")


def check_stored_encrypted(
    provider_url: str, records: int, fetch_row: Callable[[int], tuple[object, ...]], *, sample: int = 25
) -> None:
    """DB: no stored row holds a customer's card or account number as the provider sent it.

    (A 3-4 digit CVV cannot be told apart from other digits in a row's text; that no table has a
    column for it and no stored byte holds one is tests/db/test_schema.py's and scenario 9's check.)
    """
    for record in provider_records(provider_url, records)[:sample]:
        stored = " ".join(repr(value) for value in fetch_row(int(record["id"])))
        for name in ("credit_card_num", "cuenta_numero"):
            value = str(record.get(name) or "")
            digits = _digits(value)
            if len(digits) >= 8 and (value in stored or digits in stored):
                raise FlowError(f"db: customer {record['id']}'s {name} is stored in clear")


def all_customers(api_url: str, token: str, *, limit: int = 1000) -> list[dict[str, Any]]:
    """Every customer the API gives `token`, following the Link rel=next pages."""
    url: str | None = f"{api_url}/clientes?limit={limit}"
    found: list[dict[str, Any]] = []
    pages = 0
    while url is not None and pages < 1000:
        status, headers, body = get(url, token=token)
        if status != 200:
            raise FlowError(
                f"api: GET /clientes as {token.split('-', maxsplit=1)[0]} answered {status}: {body[:200]!r}"
            )
        found.extend(json.loads(body))
        match = _LINK_NEXT.search(headers.get("Link", ""))
        url = None if match is None else urllib.request.urljoin(api_url + "/", match.group(1))
        pages += 1
    return found


def check_flow(*, api_url: str, provider_url: str, records: int, timeout: float = 120.0) -> dict[str, int]:
    """The simulator's records reach the API through the syncer and the DB, each role sees its fields.

    Returns how many customers each role received.
    """
    expected = {str(r["id"]): r for r in provider_records(provider_url, records)}
    wait_for(
        f"api: {records} customers synced from the simulator",
        lambda: len(all_customers(api_url, TOKENS["admin"])) >= records,
        timeout=timeout,
        every=1.0,
    )
    counts: dict[str, int] = {}
    for role in ROLES:
        rows = all_customers(api_url, TOKENS[role])
        counts[role] = len(rows)
        ids = [str(row.get("id")) for row in rows]
        if sorted(ids) != sorted(expected) or len(set(ids)) != len(ids):
            raise FlowError(f"api: {role} got {len(ids)} customers, not the simulator's {records} (or duplicates)")
        allowed = {policy.name: view for policy, view in visible_fields(role)}
        for row in rows:
            extra = set(row) - set(allowed)
            if extra:
                raise FlowError(f"api: {role} was sent fields it may not see: {sorted(extra)}")
            if "credit_card_ccv" in row:
                raise FlowError(f"api: {role} was sent the CVV")
            _check_values(role, row, expected[str(row["id"])], allowed)
    for bad in (None, "not-a-token"):
        status, headers, _ = get(f"{api_url}/clientes", token=bad)
        what = "no" if bad is None else "an unknown"
        if status != 401 or not headers.get("WWW-Authenticate", "").startswith("Bearer"):
            raise FlowError(f"api: GET /clientes with {what} token answered {status} (expected 401, WWW-Authenticate)")
    return counts


def _check_values(role: str, row: Mapping[str, Any], source: Mapping[str, Any], allowed: Mapping[str, View]) -> None:
    for name, view in allowed.items():
        if name not in row or row[name] is None or source.get(name) is None:
            continue
        if view is View.MASK:
            shown, real = _digits(row[name]), _digits(source[name])
            if str(row[name]) == str(source[name]) or not real or not shown.endswith(real[-4:]):
                raise FlowError(f"api: {role}'s {name} of customer {row['id']} is not a mask of the provider's value")
        elif (
            view is View.DECRYPT
            and name in ("credit_card_num", "cuenta_numero")
            and _digits(row[name]) != _digits(source[name])
        ):
            raise FlowError(f"api: {role}'s decrypted {name} of customer {row['id']} differs from the provider's")


def _digits(value: object) -> str:
    return "".join(ch for ch in str(value) if ch.isdigit())
