"""Keyring vs AESGCM called directly, same values, one run: `python -m tests.crypto.bench_keyring`.

Cost per record of the six encrypted fields of the policy (encrypt at ingestion,
decrypt for an admin page). The direct baseline does what any caller must do per
value: a fresh nonce, encode the text, build the AAD (table, column, id). The goal
(issue 3) is the keyring within 1.5x of it. Not collected by pytest (not test_*).
"""

from __future__ import annotations

import os
import statistics
import time
from collections.abc import Callable

from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from daemon.crypto.keyring import Keyring
from daemon.policy import encrypted_fields
from tests.crypto.support import sample_value

RECORDS = 20_000
ROUNDS = 7


def main() -> None:
    key = os.urandom(32)
    keyring = Keyring({"k20250101-ab12": key}, active_key_id="k20250101-ab12", index_key=os.urandom(32))
    direct = AESGCM(key)
    values = {f.enc_column: sample_value(f) for f in encrypted_fields()}
    ids = range(1, RECORDS + 1)

    def keyring_encrypt() -> None:
        encrypt = keyring.encrypt
        for rid in ids:
            for column, value in values.items():
                encrypt(value, column=column, record_id=rid)

    def direct_encrypt() -> None:
        urandom = os.urandom
        for rid in ids:
            for column, value in values.items():
                nonce = urandom(12)
                direct.encrypt(nonce, value.encode(), f"customers\x1f{column}\x1f{rid}".encode())

    sealed = [(rid, {c: keyring.encrypt(v, column=c, record_id=rid) for c, v in values.items()}) for rid in ids]
    raw = []
    for rid in ids:
        row = {}
        for c, v in values.items():
            nonce = os.urandom(12)
            row[c] = nonce + direct.encrypt(nonce, v.encode(), f"customers\x1f{c}\x1f{rid}".encode())
        raw.append((rid, row))

    def keyring_decrypt() -> None:
        decrypt = keyring.decrypt
        for rid, row in sealed:
            for column, blob in row.items():
                decrypt(blob, column=column, record_id=rid)

    def direct_decrypt() -> None:
        for rid, row in raw:
            for column, blob in row.items():
                direct.decrypt(blob[:12], blob[12:], f"customers\x1f{column}\x1f{rid}".encode()).decode()

    pairs = (("encrypt", keyring_encrypt, direct_encrypt), ("decrypt", keyring_decrypt, direct_decrypt))
    for name, ours, theirs in pairs:
        (k_best, k_med), (d_best, d_med) = _time(ours), _time(theirs)
        print(
            f"{name}: keyring {k_best / RECORDS * 1e6:.2f} us/record (median {k_med / RECORDS * 1e6:.2f}), "
            f"AESGCM direct {d_best / RECORDS * 1e6:.2f} us/record (median {d_med / RECORDS * 1e6:.2f}); "
            f"ratio {k_best / d_best:.2f}x best, {k_med / d_med:.2f}x median"
        )


def _time(fn: Callable[[], None]) -> tuple[float, float]:
    """Best and median of ROUNDS runs, interleaving nothing else."""
    times = []
    for _ in range(ROUNDS):
        started = time.perf_counter()
        fn()
        times.append(time.perf_counter() - started)
    return min(times), statistics.median(times)


if __name__ == "__main__":
    main()
