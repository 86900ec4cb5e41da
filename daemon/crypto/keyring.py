"""The keyring: AES-256-GCM field encryption with key ids and bound context, the blind index.

Ciphertext layout (what a `<field>_enc` column holds):

    byte 0          format version (1)
    byte 1          L = length of the key id (1-16)
    bytes 2..2+L    key id, ASCII [A-Za-z0-9._-]
    next 12 bytes   a fresh random nonce (96 bits)
    the rest        AES-256-GCM ciphertext followed by its 16-byte tag

The associated data is the header (version and key id) plus the value's place —
table, column and record id — so a value copied to another row or column,
or one whose header was edited, fails to decrypt instead of yielding another
record's data. The key id in clear lets a reader pick the key without trial,
and lets SQL count values per key (`keys status`) without decrypting.

Every configured key decrypts; only the active one encrypts. The blind index
(HMAC-SHA256 of the PAN's digits under INDEX_KEY) allows exact lookup and
de-duplication without decrypting; `content_hash` is a keyed hash (own subkey
of INDEX_KEY) for change detection of records that contain card data
(PCI DSS 3.5.1.1: no unkeyed hash of a PAN is stored); `raw_hash` is another
(own subkey again) of the provider's record as sent, which the syncer compares
before validating it — its caller leaves the CVV out of what it hashes.
"""

from __future__ import annotations

import hmac
import os
import re
from collections.abc import Callable, Mapping, Sequence
from typing import Final, NoReturn

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from daemon.config.crypto import ENCRYPTION_KEYS, CryptoSettings
from daemon.crypto.devkeys import load_or_create_dev_keys
from daemon.errors import ConfigError, CryptoError
from daemon.observability.logs import get_logger

__all__ = (
    "FORMAT_VERSION",
    "KEY_BYTES",
    "MAX_KEY_ID_LEN",
    "NONCE_BYTES",
    "TAG_BYTES",
    "Keyring",
    "RowDecryptor",
    "ciphertext_len",
    "key_id_of",
    "load_keyring",
    "max_overhead",
)

log = get_logger("customers_mngr.crypto")

FORMAT_VERSION: Final = 1
KEY_BYTES: Final = 32
NONCE_BYTES: Final = 12
TAG_BYTES: Final = 16
MAX_KEY_ID_LEN: Final = 16
CONTENT_HASH_INFO: Final = b"customers-mngr content-hash v1"
RAW_HASH_INFO: Final = b"customers-mngr raw-hash v1"

_KEY_ID_RE: Final = re.compile(r"^[A-Za-z0-9_.-]{1,16}$")
_KEY_ID_BYTES_RE: Final = re.compile(rb"^[A-Za-z0-9_.-]{1,16}$")
_NOT_DIGIT: Final = re.compile(r"[^0-9]")


def ciphertext_len(plaintext_bytes: int, key_id: str) -> int:
    """The stored size of a value of `plaintext_bytes` UTF-8 bytes under `key_id`."""
    return 2 + len(key_id) + NONCE_BYTES + plaintext_bytes + TAG_BYTES


def max_overhead() -> int:
    """Bytes a ciphertext adds to its plaintext at most (longest key id): 46."""
    return 2 + MAX_KEY_ID_LEN + NONCE_BYTES + TAG_BYTES


def _header(key_id: str) -> bytes:
    raw = key_id.encode("ascii")
    return bytes((FORMAT_VERSION, len(raw))) + raw


def _split(value: object) -> tuple[int, str]:
    """(offset of the nonce, key id) of a ciphertext, or CryptoError if it is not one."""
    if not isinstance(value, bytes | bytearray | memoryview):
        raise CryptoError("stored value is not binary ciphertext")
    blob = bytes(value)
    if len(blob) < 2 or blob[0] != FORMAT_VERSION:
        version = blob[0] if blob else None
        raise CryptoError(f"stored value has an unknown ciphertext format (version byte {version})")
    end = 2 + blob[1]
    raw_id = blob[2:end]
    if len(blob) < end + NONCE_BYTES + TAG_BYTES or not _KEY_ID_BYTES_RE.match(raw_id):
        raise CryptoError("stored value is not a valid ciphertext (truncated or bad header)")
    return end, raw_id.decode("ascii")


def _as_bytes(value: object) -> bytes:
    if isinstance(value, bytearray | memoryview):
        return bytes(value)
    raise CryptoError("stored value is not binary ciphertext")


def key_id_of(blob: bytes) -> str:
    """The key id a ciphertext was written with (read from its header, nothing decrypted)."""
    return _split(blob)[1]


class Keyring:
    """Every configured key (all decrypt), the active one (encrypts), and the index key.

    Cipher objects are built once per key. The raw keys are not kept as
    attributes and never appear in `repr`, errors or logs.
    """

    __slots__ = (
        "_active",
        "_by_header",
        "_ciphers",
        "_content_key",
        "_headers",
        "_index_key",
        "_on_failure",
        "_raw_key",
        "key_ids",
    )

    def __init__(
        self,
        keys: Mapping[str, bytes],
        *,
        active_key_id: str | None,
        index_key: bytes,
        on_decrypt_failure: Callable[[], None] | None = None,
    ) -> None:
        if not keys:
            raise CryptoError("the keyring has no keys")
        for key_id, key in keys.items():
            if not _KEY_ID_RE.match(key_id):
                raise CryptoError("a key id is not 1-16 of A-Z a-z 0-9 . _ -")
            if len(key) != KEY_BYTES:
                raise CryptoError(f"key {key_id!r} is not {KEY_BYTES} bytes")
        if len(index_key) != KEY_BYTES:
            raise CryptoError(f"the index key is not {KEY_BYTES} bytes")
        if active_key_id is not None and active_key_id not in keys:
            raise CryptoError(f"active key id {active_key_id!r} is not in the keyring")
        self.key_ids: tuple[str, ...] = tuple(keys)
        self._ciphers: dict[str, AESGCM] = {key_id: AESGCM(bytes(key)) for key_id, key in keys.items()}
        self._headers: dict[str, bytes] = {key_id: _header(key_id) for key_id in keys}
        self._by_header: dict[bytes, AESGCM] = {self._headers[key_id]: self._ciphers[key_id] for key_id in keys}
        self._active: tuple[str, bytes, AESGCM] | None = (
            None
            if active_key_id is None
            else (active_key_id, self._headers[active_key_id], self._ciphers[active_key_id])
        )
        self._index_key = bytes(index_key)
        self._content_key = HKDF(algorithm=hashes.SHA256(), length=KEY_BYTES, salt=None, info=CONTENT_HASH_INFO).derive(
            self._index_key
        )
        self._raw_key = HKDF(algorithm=hashes.SHA256(), length=KEY_BYTES, salt=None, info=RAW_HASH_INFO).derive(
            self._index_key
        )
        self._on_failure = on_decrypt_failure

    @property
    def active_key_id(self) -> str | None:
        return None if self._active is None else self._active[0]

    def __repr__(self) -> str:
        return f"Keyring(key_ids={self.key_ids!r}, active_key_id={self.active_key_id!r})"

    def __reduce__(self) -> NoReturn:  # keys must not travel by pickle (crash dumps, caches)
        raise TypeError("a Keyring cannot be pickled")

    def has_key(self, key_id: str) -> bool:
        return key_id in self._ciphers

    def encrypt(self, plaintext: str, *, column: str, record_id: int, table: str = "customers") -> bytes:
        """Encrypt with the active key, bound to (table, column, record id)."""
        active = self._active
        if active is None:
            raise CryptoError("no active key: set ENCRYPTION_ACTIVE_KEY to write encrypted values")
        _, header, cipher = active
        nonce = os.urandom(NONCE_BYTES)
        aad = header + f"\x00{table}\x1f{column}\x1f{record_id}".encode()
        return header + nonce + cipher.encrypt(nonce, plaintext.encode(), aad)

    def encrypt_fields(
        self, plaintexts: Sequence[tuple[str, str]], *, record_id: int, table: str = "customers"
    ) -> list[bytes]:
        """`encrypt` of several (column, plaintext) of one record; the nonces come from one urandom call."""
        active = self._active
        if active is None:
            raise CryptoError("no active key: set ENCRYPTION_ACTIVE_KEY to write encrypted values")
        _, header, cipher = active
        nonces = os.urandom(NONCE_BYTES * len(plaintexts))
        place = f"\x1f{record_id}".encode()
        context = header + f"\x00{table}\x1f".encode()
        out: list[bytes] = []
        start = 0
        for column, plaintext in plaintexts:
            nonce = nonces[start : start + NONCE_BYTES]
            start += NONCE_BYTES
            out.append(header + nonce + cipher.encrypt(nonce, plaintext.encode(), context + column.encode() + place))
        return out

    def decrypt(self, blob: bytes, *, column: str, record_id: int, table: str = "customers") -> str:
        """The plaintext, or CryptoError (wrong or missing key, tampered, or moved from elsewhere)."""
        try:
            if type(blob) is not bytes:  # asyncmy returns bytes; accept bytearray/memoryview too
                blob = _as_bytes(blob)
            # Fast path: the header (version, key id) is looked up whole; anything else is diagnosed below.
            end = 2 + blob[1]
            cipher = self._by_header.get(blob[:end])
            if cipher is not None and len(blob) >= end + NONCE_BYTES + TAG_BYTES:
                aad = blob[:end] + f"\x00{table}\x1f{column}\x1f{record_id}".encode()
                return cipher.decrypt(blob[end : end + NONCE_BYTES], blob[end + NONCE_BYTES :], aad).decode()
            self._diagnose(blob, column=column, record_id=record_id, table=table)
        except InvalidTag:
            self._failed()
            raise CryptoError(
                f"{table}.{column} of record {record_id} failed authentication with key {key_id_of(blob)!r} "
                "(wrong key, altered bytes, or a value moved from another row or column)"
            ) from None
        except UnicodeDecodeError:  # authenticated, so only a writer bug can get here
            self._failed()
            raise CryptoError(f"{table}.{column} of record {record_id} is not UTF-8 text") from None
        except CryptoError:
            self._failed()
            raise
        except (IndexError, TypeError):  # empty or one byte long
            self._failed()
            raise CryptoError(f"{table}.{column} of record {record_id} is not a valid ciphertext") from None

    def row_decryptor(self, columns: Sequence[str], *, table: str = "customers") -> RowDecryptor:
        """Decrypts these columns of `table`'s rows with one call per row (see `RowDecryptor`)."""
        return RowDecryptor(self, tuple(columns), table=table)

    def _diagnose(self, blob: bytes, *, column: str, record_id: int, table: str) -> NoReturn:
        """Raise the CryptoError that says why `blob` has no usable header."""
        try:
            _, key_id = _split(blob)
        except CryptoError as exc:
            raise CryptoError(f"{table}.{column} of record {record_id}: {exc}") from None
        raise CryptoError(f"{table}.{column} of record {record_id}: key id {key_id!r} is not in the keyring")

    def _failed(self) -> None:
        if self._on_failure is not None:
            self._on_failure()

    def reencrypt(self, blob: bytes, *, column: str, record_id: int, table: str = "customers") -> bytes:
        """The same value under the active key (rotation); CryptoError if it cannot be read."""
        plain = self.decrypt(blob, column=column, record_id=record_id, table=table)
        return self.encrypt(plain, column=column, record_id=record_id, table=table)

    def blind_index(self, card_number: str) -> bytes:
        """HMAC-SHA256(INDEX_KEY, the PAN's digits): 32 bytes, the same with or without separators."""
        digits = _NOT_DIGIT.sub("", card_number)
        if not digits:
            raise ValueError("card number has no digits")
        return hmac.digest(self._index_key, digits.encode("ascii"), "sha256")

    def content_hash(self, canonical: bytes) -> bytes:
        """A keyed hash (HMAC-SHA256 under a subkey of INDEX_KEY) of a normalized record: 32 bytes."""
        return hmac.digest(self._content_key, canonical, "sha256")

    def raw_hash(self, raw: bytes) -> bytes:
        """A keyed hash (HMAC-SHA256 under its own subkey of INDEX_KEY) of a provider record as sent.

        The caller must leave the CVV out of `raw` (daemon.provider.records.raw_digest_input does).
        """
        return hmac.digest(self._raw_key, raw, "sha256")


class RowDecryptor:
    """The encrypted columns of one row decrypted in one call: what `Keyring.decrypt` does per value.

    A page of 100 admin rows holds 600 ciphertexts; per value, `decrypt` parses
    keyword arguments, formats the AAD and checks the header, which costs more
    than AES-GCM itself. Here the constant part of every column's AAD is built
    once, the record id once per row, and the loop does only the header look-up,
    the slicing and the AESGCM call. Results are the same values in the same
    order; a NULL column (None) stays None.

    Failure semantics are exactly `decrypt`'s: if anything in the fast loop goes
    wrong, the row is decrypted again value by value through `Keyring.decrypt`,
    which raises the same CryptoError (same message, first failing column
    first) and calls the decrypt-failure hook once. Nothing is kept between calls
    but the keyring's cipher objects: no plaintext is cached.
    """

    __slots__ = ("_by_header", "_columns", "_keyring", "_suffixes", "_table")

    def __init__(self, keyring: Keyring, columns: tuple[str, ...], *, table: str) -> None:
        self._keyring = keyring
        self._by_header = keyring._by_header  # built once by the keyring, never changed after
        self._columns = columns
        self._table = table
        # The AAD of a value is header + b"\x00table\x1fcolumn\x1f" + record id (see Keyring.encrypt).
        self._suffixes = tuple(f"\x00{table}\x1f{column}\x1f".encode() for column in columns)

    @property
    def columns(self) -> tuple[str, ...]:
        return self._columns

    def decrypt_row(self, record_id: int, blobs: Sequence[object]) -> list[str | None]:
        """The plaintexts of `blobs` (one per column, in order), or the CryptoError `decrypt` raises."""
        rid = f"{record_id}".encode()
        by_header = self._by_header
        out: list[str | None] = []
        append = out.append
        try:
            for blob, suffix in zip(blobs, self._suffixes, strict=True):
                if blob is None:
                    append(None)
                    continue
                end = 2 + blob[1]  # type: ignore[index]  # anything not bytes fails and is diagnosed below
                header = blob[:end]  # type: ignore[index]
                # A blob shorter than header + nonce + tag cannot authenticate: AESGCM raises.
                nonce, sealed = blob[end : end + NONCE_BYTES], blob[end + NONCE_BYTES :]  # type: ignore[index]
                append(by_header[header].decrypt(nonce, sealed, header + suffix + rid).decode())
        except Exception:  # re-run value by value: the exact error, the hook called once
            return self._one_by_one(record_id, blobs)
        return out

    def _one_by_one(self, record_id: int, blobs: Sequence[object]) -> list[str | None]:
        decrypt, table = self._keyring.decrypt, self._table
        return [
            None if blob is None else decrypt(blob, column=column, record_id=record_id, table=table)  # type: ignore[arg-type]
            for blob, column in zip(blobs, self._columns, strict=True)
        ]


def load_keyring(
    settings: CryptoSettings, *, production: bool, on_decrypt_failure: Callable[[], None] | None = None
) -> Keyring:
    """The process's keyring: the configured keys, or (development only) the local key file.

    Production never generates a key: without configured keys this raises
    ConfigError (exit 2). Called once at start; the Keyring is then shared.
    """
    if settings.keys is not None and settings.index_key is not None:
        ring = Keyring(
            settings.keys,
            active_key_id=settings.active_key_id,
            index_key=settings.index_key,
            on_decrypt_failure=on_decrypt_failure,
        )
        log.info("keyring_loaded", key_ids=list(ring.key_ids), active_key_id=ring.active_key_id, source="environment")
        return ring
    if production:
        raise ConfigError(ENCRYPTION_KEYS.name, "is not set in production", "keys from customers-mngr keys generate")
    dev = load_or_create_dev_keys(settings.dev_key_file)
    return Keyring(
        dev.keys, active_key_id=dev.active_key_id, index_key=dev.index_key, on_decrypt_failure=on_decrypt_failure
    )
