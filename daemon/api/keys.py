"""The API's own keys (cursor sealing, ETags), derived from the process's key material.

They must be the same on every replica (a cursor issued by one is followed on
another) and survive restarts, yet add no secret to configure. So they are
derived, with HKDF and distinct labels, from a seed the keyring computes with
its keyed hash under INDEX_KEY; neither the seed nor INDEX_KEY can be
recovered from a cursor or an ETag.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Final, Protocol

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from daemon.api.cursor import CURSOR_KEY_BYTES

__all__ = ("SEED_LABEL", "ApiKeys", "SeedSource")

# Starts with NUL so it can never equal the canonical form of a record the keyring also hashes.
SEED_LABEL: Final = b"\x00customers-mngr api keys v1"
ETAG_KEY_BYTES: Final = 32


class SeedSource(Protocol):
    def content_hash(self, canonical: bytes) -> bytes: ...


@dataclass(frozen=True, slots=True)
class ApiKeys:
    cursor: bytes = field(repr=False)
    etag: bytes = field(repr=False)

    @classmethod
    def from_seed(cls, seed: bytes) -> ApiKeys:
        if len(seed) < 32:
            raise ValueError("the API key seed must be at least 32 bytes")
        return cls(cursor=_derive(seed, b"cursor", CURSOR_KEY_BYTES), etag=_derive(seed, b"etag", ETAG_KEY_BYTES))

    @classmethod
    def from_keyring(cls, keyring: SeedSource) -> ApiKeys:
        return cls.from_seed(keyring.content_hash(SEED_LABEL))


def _derive(seed: bytes, purpose: bytes, length: int) -> bytes:
    info = b"customers-mngr api " + purpose
    return HKDF(algorithm=hashes.SHA256(), length=length, salt=None, info=info).derive(seed)
