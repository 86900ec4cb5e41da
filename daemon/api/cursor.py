"""The opaque keyset cursor of `/clientes`: authenticated encryption of where a page ended.

A cursor carries the last id served and the filters of the walk (include_deleted
and, for a card search, the card's blind index — never the card number), so
the `Link` of the next page needs no filter in its URL. It is sealed with
AES-SIV (deterministic authenticated encryption): the same position always
gives the same cursor, so cached pages keep stable `Link`s and ETags; any
edited, truncated or forged cursor fails authentication and is a 400; and
it reveals nothing — not even the id it points after.

The key is derived from the process's keys (see `daemon.api.keys`), so every
replica behind a load balancer accepts every other replica's cursors.
"""

from __future__ import annotations

import base64
import binascii
import struct
from dataclasses import dataclass
from typing import Final

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESSIV

__all__ = ("CURSOR_KEY_BYTES", "Cursor", "CursorCodec", "InvalidCursor")

CURSOR_KEY_BYTES: Final = 64  # AES-SIV with AES-256
_VERSION: Final = 1
_HEAD: Final = struct.Struct(">BBQ")  # version, flags, after id
_FLAG_DELETED: Final = 1
_FLAG_CARD: Final = 2
_BIDX_BYTES: Final = 32
_AAD: Final = [b"customers-mngr /clientes cursor"]
MAX_CURSOR_CHARS: Final = 256


class InvalidCursor(ValueError):
    """The cursor was not issued by this service (or was altered)."""


@dataclass(frozen=True, slots=True)
class Cursor:
    after_id: int
    include_deleted: bool = False
    card_bidx: bytes | None = None


class CursorCodec:
    __slots__ = ("_siv",)

    def __init__(self, key: bytes) -> None:
        if len(key) != CURSOR_KEY_BYTES:
            raise ValueError("the cursor key must be 64 bytes")
        self._siv = AESSIV(key)

    def encode(self, cursor: Cursor) -> str:
        flags = (_FLAG_DELETED if cursor.include_deleted else 0) | (_FLAG_CARD if cursor.card_bidx else 0)
        plain = _HEAD.pack(_VERSION, flags, cursor.after_id) + (cursor.card_bidx or b"")
        return _b64(self._siv.encrypt(plain, _AAD))

    def decode(self, text: str) -> Cursor:
        if not text or len(text) > MAX_CURSOR_CHARS:
            raise InvalidCursor
        try:
            sealed = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
        except (binascii.Error, ValueError):
            raise InvalidCursor from None
        # Only the canonical spelling is accepted: base64 decoders skip stray characters and
        # ignore trailing bits, and an edited cursor must never be taken for the original.
        if _b64(sealed) != text:
            raise InvalidCursor
        try:
            plain = self._siv.decrypt(sealed, _AAD)
        except InvalidTag:
            raise InvalidCursor from None
        if len(plain) < _HEAD.size:
            raise InvalidCursor
        version, flags, after_id = _HEAD.unpack_from(plain)
        rest = plain[_HEAD.size :]
        has_card = bool(flags & _FLAG_CARD)
        if version != _VERSION or len(rest) != (_BIDX_BYTES if has_card else 0):
            raise InvalidCursor
        return Cursor(after_id=after_id, include_deleted=bool(flags & _FLAG_DELETED), card_bidx=rest or None)


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")
