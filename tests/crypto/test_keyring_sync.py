"""The keyring's helpers for the syncer: several fields encrypted in one call, the keyed raw hash."""

from __future__ import annotations

import hashlib
import hmac

import pytest

from daemon.crypto.keyring import NONCE_BYTES, Keyring
from daemon.errors import CryptoError
from tests.crypto.support import INDEX_KEY, KEY_A, KEY_B, ring

FIELDS = [("credit_card_num_enc", "6767-2293-4172-5169"), ("ip_enc", "10.0.0.1"), ("geo_latitud_enc", "-34.6")]


def test_encrypt_fields_is_encrypt_for_each_field() -> None:
    """Each ciphertext decrypts with its own column and record, under the active key, with its own nonce."""
    keyring = ring()
    blobs = keyring.encrypt_fields(FIELDS, record_id=42)
    assert len(blobs) == len(FIELDS)
    for (column, plain), blob in zip(FIELDS, blobs, strict=True):
        assert keyring.decrypt(blob, column=column, record_id=42) == plain
        with pytest.raises(CryptoError):
            keyring.decrypt(blob, column=column, record_id=43)
    other_column = FIELDS[1][0]
    with pytest.raises(CryptoError):
        keyring.decrypt(blobs[0], column=other_column, record_id=42)
    header = 2 + len(keyring.active_key_id or "")
    nonces = {blob[header : header + NONCE_BYTES] for blob in blobs + keyring.encrypt_fields(FIELDS, record_id=42)}
    assert len(nonces) == 2 * len(FIELDS)
    assert keyring.encrypt_fields([], record_id=1) == []


def test_encrypt_fields_needs_an_active_key() -> None:
    """Without an active key nothing is encrypted."""
    keyring = Keyring({"a": KEY_A}, active_key_id=None, index_key=INDEX_KEY)
    with pytest.raises(CryptoError, match="no active key"):
        keyring.encrypt_fields(FIELDS, record_id=1)


def test_raw_hash_is_keyed_with_its_own_subkey() -> None:
    """raw_hash is 32 bytes, stable, keyed by INDEX_KEY, distinct from the content hash and a plain hash."""
    raw = b'["1","x"]'
    keyring = ring()
    value = keyring.raw_hash(raw)
    assert len(value) == 32 and value == ring("b", b=KEY_B).raw_hash(raw)
    assert value != keyring.content_hash(raw)
    assert value != hashlib.sha256(raw).digest()
    assert value != hmac.new(INDEX_KEY, raw, hashlib.sha256).digest()
    assert value != keyring.raw_hash(raw + b" ")
    assert Keyring({"a": KEY_A}, active_key_id="a", index_key=KEY_B).raw_hash(raw) != value
