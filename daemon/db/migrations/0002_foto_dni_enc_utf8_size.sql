-- foto_dni is a URL of up to 2048 characters (daemon/policy.py). Validation counts characters and
-- accepts non-ASCII ones (IRIs), so its UTF-8 form can take up to 4 bytes per character; the
-- ciphertext adds at most 46 bytes (format byte, key id length and up to 16 bytes of key id,
-- 12-byte nonce, 16-byte tag). 0001 sized the column for ASCII only: 4 * 2048 + 46 = 8238.
-- MODIFY is idempotent, so re-running this file is harmless.

ALTER TABLE customers MODIFY foto_dni_enc VARBINARY(8238) NULL;
