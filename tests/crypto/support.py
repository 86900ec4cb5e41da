"""Keys and sample values shared by the crypto tests (fixed bytes: tests are reproducible)."""

from __future__ import annotations

import base64
import json

from daemon.crypto.keyring import Keyring
from daemon.policy import Classification, FieldPolicy, Kind, encrypted_fields

__all__ = ("INDEX_KEY", "KEY_A", "KEY_B", "env_keys", "ring", "sample_value")

KEY_A = bytes(range(32))
KEY_B = bytes(range(100, 132))
INDEX_KEY = bytes(range(200, 232))

_SAMPLES = {
    Kind.CARD_NUMBER: "6767-2293-4172-5169",
    Kind.ACCOUNT_NUMBER: "0012345678901234",
    Kind.LATITUDE: "-34.603722",
    Kind.LONGITUDE: "-58.381592",
    Kind.URL: "https://loremflickr.com/640/480/people?lock=42",
    Kind.IPV4: "192.168.100.200",
}


def ring(active: str | None = "a", **keys: bytes) -> Keyring:
    """A keyring with the given keys (default: a=KEY_A) and the fixed index key."""
    return Keyring(keys or {"a": KEY_A}, active_key_id=active, index_key=INDEX_KEY)


def sample_value(field: FieldPolicy, *, longest: bool = False) -> str:
    """A realistic value of an encrypted field, or one of its maximum length."""
    if not longest:
        return _SAMPLES[field.kind]
    if field.kind in (Kind.CARD_NUMBER, Kind.ACCOUNT_NUMBER):
        return "9" * field.max_len
    if field.kind is Kind.URL:
        prefix = "https://example.com/"
        return prefix + "a" * (field.max_len - len(prefix))
    if field.kind is Kind.IPV4:
        return "255.255.255.255"
    return ("-" + "1" * (field.max_len - 1))[: field.max_len]


def env_keys(keys: dict[str, bytes], *, active: str | None, index: bytes = INDEX_KEY) -> dict[str, str]:
    """ENCRYPTION_KEYS / ENCRYPTION_ACTIVE_KEY / INDEX_KEY as the environment carries them."""
    env = {
        "ENCRYPTION_KEYS": json.dumps({k: base64.b64encode(v).decode() for k, v in keys.items()}),
        "INDEX_KEY": base64.b64encode(index).decode(),
    }
    if active is not None:
        env["ENCRYPTION_ACTIVE_KEY"] = active
    return env


assert {f.classification for f in encrypted_fields()} == {
    Classification.PII,
    Classification.FINANCIAL,
    Classification.PCI,
}
