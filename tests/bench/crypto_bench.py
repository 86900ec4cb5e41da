"""`crypto_encrypt_us_per_record`: the sensitive fields of one record via the Keyring, vs AESGCM directly.

    python -m tests.bench.crypto_bench --records N --runs R

The values are those of the simulator's records after validation (the fields
the policy encrypts: card, account, latitude, longitude, DNI photo URL, IP).
The direct path does the least a correct AES-GCM use must: a fresh 96-bit
nonce (os.urandom) and `AESGCM.encrypt` of the UTF-8 bytes, no associated
data. The Keyring path adds its header, nonce and the bound context
(table, column, record id) as associated data. The two alternate, run by run,
in the same process, timed in CPU time (process_time: the preemptions of a busy
machine are not counted, where a wall clock would charge them to whichever path
was running). Prints {"keyring_us": [...], "direct_us": [...], "direct_aad_us":
[...]}, the last being AESGCM directly with the same bound context as associated
data, for context.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from daemon import policy
from daemon.crypto.keyring import Keyring
from daemon.provider.records import ParsedRecord, parse_record
from daemon.provider.simulator import Simulator

__all__ = ("main", "sensitive_values")


def sensitive_values(records: int, seed: int = 1) -> list[tuple[int, list[tuple[str, str]]]]:
    """(record id, [(ciphertext column, plaintext)]) for each valid record."""
    fields = [(f.name, f.enc_column) for f in policy.encrypted_fields()]
    out: list[tuple[int, list[tuple[str, str]]]] = []
    for raw in Simulator(records=records, seed=seed).records():
        parsed = parse_record(raw)
        if isinstance(parsed, ParsedRecord):
            values = [(col, str(parsed.values[name])) for name, col in fields if parsed.values.get(name) is not None]
            out.append((parsed.id, values))
    return out


def via_keyring(keyring: Keyring, data: list[tuple[int, list[tuple[str, str]]]]) -> float:
    started = time.process_time()
    for record_id, values in data:
        for column, text in values:
            keyring.encrypt(text, column=column, record_id=record_id)
    return (time.process_time() - started) / len(data) * 1e6


def direct(cipher: AESGCM, data: list[tuple[int, list[tuple[str, str]]]]) -> float:
    started = time.process_time()
    for _record_id, values in data:
        for _column, text in values:
            cipher.encrypt(os.urandom(12), text.encode(), None)
    return (time.process_time() - started) / len(data) * 1e6


def direct_with_context(cipher: AESGCM, data: list[tuple[int, list[tuple[str, str]]]]) -> float:
    """AESGCM directly, binding the same context the Keyring binds (table, column, id) as associated data."""
    started = time.process_time()
    for record_id, values in data:
        for column, text in values:
            cipher.encrypt(os.urandom(12), text.encode(), f"customers\x1f{column}\x1f{record_id}".encode())
    return (time.process_time() - started) / len(data) * 1e6


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.bench.crypto_bench", description=__doc__)
    parser.add_argument("--records", type=int, default=5000)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args(argv)
    data = sensitive_values(args.records)
    key = os.urandom(32)
    keyring = Keyring({"k1": key}, active_key_id="k1", index_key=os.urandom(32))
    cipher = AESGCM(key)
    via_keyring(keyring, data[:200])  # warm both paths
    direct(cipher, data[:200])
    keyring_us: list[float] = []
    direct_us: list[float] = []
    context_us: list[float] = []
    for _ in range(args.runs):
        keyring_us.append(via_keyring(keyring, data))
        direct_us.append(direct(cipher, data))
        context_us.append(direct_with_context(cipher, data))
    fields = sum(len(values) for _, values in data) / len(data)
    result = {
        "keyring_us": keyring_us,
        "direct_us": direct_us,
        "direct_aad_us": context_us,
        "fields_per_record": fields,
    }
    print(json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
