-- The keyed hash of each record as the provider last sent it (its CVV left out before hashing:
-- daemon.provider.records.raw_digest_input), so a re-sync can skip an unchanged record before
-- validating it. NULL for rows written before this column existed: they are parsed once more.
-- At the end of the table, so both MySQL 8 and MariaDB add it instantly, whatever the row count.
-- Re-runnable: the column is added only when missing (portable: no ADD COLUMN IF NOT EXISTS).

SET @customers_raw_hash_ddl = IF(
    (SELECT COUNT(*) FROM information_schema.COLUMNS
     WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = 'customers' AND COLUMN_NAME = 'raw_hash') = 0,
    'ALTER TABLE customers ADD COLUMN raw_hash BINARY(32) NULL',
    'DO 0'
);
PREPARE customers_raw_hash_stmt FROM @customers_raw_hash_ddl;
EXECUTE customers_raw_hash_stmt;
DEALLOCATE PREPARE customers_raw_hash_stmt;
