"""The syncer: provider pages → validated, encrypted, idempotent batches in MySQL."""
