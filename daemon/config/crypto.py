"""Encryption key settings: the keyring, the active key and the blind-index key.

Production never generates a key: missing or malformed keys stop the start.
Development may leave all three unset; the runtime then loads (or creates
once) a local key file, so data written yesterday is readable today.
"""

from __future__ import annotations

import base64
import binascii
import re
from dataclasses import dataclass, field
from pathlib import Path

from daemon.config.env import EnvReader, Var
from daemon.errors import ConfigError

__all__ = ("CRYPTO_VARS", "KEY_ID_RE", "CryptoSettings", "decode_key", "read_crypto")

_S = "encryption"
ENCRYPTION_KEYS = Var(
    "ENCRYPTION_KEYS", None, 'JSON {"<key id>": "<base64 of 32 random bytes>", ...}', secret=True, section=_S
)
ENCRYPTION_ACTIVE_KEY = Var(
    "ENCRYPTION_ACTIVE_KEY", None, "key id used for new writes (must be in ENCRYPTION_KEYS)", section=_S
)
INDEX_KEY = Var(
    "INDEX_KEY", None, "base64 of 32 random bytes: HMAC key of the card blind index", secret=True, section=_S
)
DEV_KEY_FILE = Var(
    "DEV_KEY_FILE", ".dev-keys.json", "development only: where generated keys are kept (mode 0600)", section=_S
)
CRYPTO_VARS = (ENCRYPTION_KEYS, ENCRYPTION_ACTIVE_KEY, INDEX_KEY, DEV_KEY_FILE)

KEY_ID_RE = re.compile(r"^[A-Za-z0-9_.-]{1,16}$")
KEY_BYTES = 32


@dataclass(frozen=True, kw_only=True, slots=True)
class CryptoSettings:
    """Key material as configured. `keys` is None only in development with no keys set."""

    keys: dict[str, bytes] | None = field(repr=False)
    active_key_id: str | None
    index_key: bytes | None = field(repr=False)
    dev_key_file: Path

    @property
    def configured(self) -> bool:
        return self.keys is not None


def decode_key(variable: str, text: object, *, what: str = "key") -> bytes:
    """Base64 → 32 bytes, or a ConfigError that never echoes the value."""
    expected = "base64 of exactly 32 random bytes (customers-mngr keys generate)"
    if not isinstance(text, str):
        raise ConfigError(variable, f"{what} is not a string", expected)
    try:
        raw = base64.b64decode(text.strip(), validate=True)
    except (binascii.Error, ValueError):
        try:
            raw = base64.urlsafe_b64decode(text.strip())
        except (binascii.Error, ValueError):
            raise ConfigError(variable, f"{what} is not base64", expected) from None
    if len(raw) != KEY_BYTES:
        raise ConfigError(variable, f"{what} decodes to {len(raw)} bytes", expected)
    return raw


def read_crypto(env: EnvReader, *, production: bool, writes: bool) -> CryptoSettings:
    dev_file = Path(env.string(DEV_KEY_FILE))
    wanted = (ENCRYPTION_KEYS, INDEX_KEY) + ((ENCRYPTION_ACTIVE_KEY,) if writes else ())
    present = [var for var in wanted if env.is_set(var)]
    if not present and not production:
        return CryptoSettings(keys=None, active_key_id=None, index_key=None, dev_key_file=dev_file)
    for var in wanted:
        if not env.is_set(var):
            where = "in production" if production else "when other keys are set"
            raise ConfigError(var.name, f"is not set {where}", var.help)
    keys = _read_ring(env)
    active = env.optional(ENCRYPTION_ACTIVE_KEY)
    if active is not None and active not in keys:
        raise ConfigError(
            ENCRYPTION_ACTIVE_KEY.name,
            f"key id {active!r} is not in ENCRYPTION_KEYS",
            "one of the key ids of ENCRYPTION_KEYS",
        )
    return CryptoSettings(
        keys=keys,
        active_key_id=active,
        index_key=decode_key(INDEX_KEY.name, env.string(INDEX_KEY)),
        dev_key_file=dev_file,
    )


def _read_ring(env: EnvReader) -> dict[str, bytes]:
    expected = ENCRYPTION_KEYS.help
    ring = env.json(ENCRYPTION_KEYS, expected=expected)
    if not isinstance(ring, dict) or not ring:
        raise ConfigError(ENCRYPTION_KEYS.name, "is not a non-empty JSON object", expected)
    keys: dict[str, bytes] = {}
    for key_id, text in ring.items():
        if not KEY_ID_RE.match(key_id):
            raise ConfigError(
                ENCRYPTION_KEYS.name, f"key id {key_id[:20]!r} is not 1-16 of A-Z a-z 0-9 . _ -", expected
            )
        keys[key_id] = decode_key(ENCRYPTION_KEYS.name, text, what=f"key {key_id!r}")
    return keys
