"""Who is calling: API tokens looked up by their SHA-256, compared in constant time.

Only hashes are configured (API_TOKENS). A presented token is hashed and
compared with every configured hash using `hmac.compare_digest`, without
stopping at the first match, so the time taken does not depend on which
entry (if any) matched or how many leading bytes agreed. The predecessor's
three demo tokens are added as entries in development only; in production
they are refused like any unknown token (and counted as `demo_refused`).

Both header styles work: `Authorization: Bearer <token>` and the
predecessor's bare `Authorization: <token>`.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final, Literal

from daemon.config.http import DEMO_TOKENS, Role, TokenEntry

__all__ = ("MAX_TOKEN_CHARS", "AuthFailure", "Principal", "TokenStore", "token_from_header")

MAX_TOKEN_CHARS: Final = 512
_DEMO_HASHES: Final = {hashlib.sha256(token.encode()).digest(): role for token, role in DEMO_TOKENS.items()}

FailureReason = Literal["missing", "unknown", "demo_refused"]


@dataclass(frozen=True, slots=True)
class Principal:
    """An authenticated caller: the token's configured name and its role."""

    name: str
    role: Role


@dataclass(frozen=True, slots=True)
class AuthFailure:
    reason: FailureReason


def token_from_header(value: str) -> str | None:
    """The token in an Authorization header value, or None when it holds no usable token."""
    value = value.strip()
    scheme, _, rest = value.partition(" ")
    if scheme.lower() == "bearer":
        value = rest.strip()
    if not value or " " in value or len(value) > MAX_TOKEN_CHARS:
        return None
    return value


class TokenStore:
    """The configured tokens (plus the demo ones in development)."""

    __slots__ = ("_entries", "_refuse_demo")

    def __init__(self, tokens: Sequence[TokenEntry], *, demo_tokens: bool) -> None:
        entries = [(t.sha256, Principal(t.name, t.role)) for t in tokens]
        if demo_tokens:
            entries += [(digest, Principal(f"demo-{role}", role)) for digest, role in _DEMO_HASHES.items()]
        self._entries: tuple[tuple[bytes, Principal], ...] = tuple(entries)
        self._refuse_demo = not demo_tokens

    @property
    def demo_enabled(self) -> bool:
        return not self._refuse_demo

    def __len__(self) -> int:
        return len(self._entries)

    def authenticate(self, header: str | None) -> Principal | AuthFailure:
        if header is None or not header.strip():
            return AuthFailure("missing")
        token = token_from_header(header)
        if token is None:
            return AuthFailure("unknown")
        digest = hashlib.sha256(token.encode("utf-8", "surrogateescape")).digest()
        found: Principal | None = None
        for expected, principal in self._entries:  # no early exit: constant time over the entries
            if hmac.compare_digest(digest, expected) and found is None:
                found = principal
        if found is not None:
            return found
        if self._refuse_demo and digest in _DEMO_HASHES:
            return AuthFailure("demo_refused")
        return AuthFailure("unknown")
