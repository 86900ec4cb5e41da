-- The initial schema. Columns of `customers` follow daemon/policy.py (a test checks it):
-- public fields in clear; pii, financial and pci fields as AES-256-GCM ciphertext
-- (`<field>_enc`), plus the clear last 4 / display mask / blind index the policy names.
-- There is deliberately no column for the CVV (credit_card_ccv): PCI DSS 3.3.1.
-- SQL here must run on MySQL 8 / Aurora MySQL and MariaDB alike.

CREATE TABLE IF NOT EXISTS customers (
    id BIGINT UNSIGNED NOT NULL,
    fec_alta DATETIME(3) NULL,
    user_name VARCHAR(255) NULL,
    codigo_zip VARCHAR(16) NULL,
    credit_card_num_enc VARBINARY(96) NULL,
    credit_card_num_last4 CHAR(4) NULL,
    credit_card_num_mask VARCHAR(32) NULL,
    credit_card_num_bidx BINARY(32) NULL,
    cuenta_numero_enc VARBINARY(96) NULL,
    cuenta_numero_last4 CHAR(4) NULL,
    direccion VARCHAR(255) NULL,
    geo_latitud_enc VARBINARY(96) NULL,
    geo_longitud_enc VARBINARY(96) NULL,
    color_favorito VARCHAR(64) NULL,
    foto_dni_enc VARBINARY(2112) NULL,
    ip_enc VARBINARY(80) NULL,
    auto VARCHAR(128) NULL,
    auto_modelo VARCHAR(128) NULL,
    auto_tipo VARCHAR(128) NULL,
    auto_color VARCHAR(64) NULL,
    cantidad_compras_realizadas INT UNSIGNED NULL,
    avatar VARCHAR(2048) NULL,
    fec_birthday DATETIME(3) NULL,
    content_hash BINARY(32) NOT NULL,
    created_at DATETIME(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6),
    updated_at DATETIME(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6),
    deleted_at DATETIME(6) NULL,
    PRIMARY KEY (id),
    KEY customers_card_bidx (credit_card_num_bidx),
    KEY customers_deleted_at (deleted_at)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

CREATE TABLE IF NOT EXISTS sync_runs (
    id BIGINT UNSIGNED NOT NULL AUTO_INCREMENT,
    started_at DATETIME(6) NOT NULL,
    finished_at DATETIME(6) NULL,
    status VARCHAR(16) NOT NULL,
    leader_epoch BIGINT UNSIGNED NULL,
    complete TINYINT(1) NOT NULL DEFAULT 0,
    pages INT UNSIGNED NOT NULL DEFAULT 0,
    fetched INT UNSIGNED NOT NULL DEFAULT 0,
    inserted INT UNSIGNED NOT NULL DEFAULT 0,
    updated INT UNSIGNED NOT NULL DEFAULT 0,
    unchanged INT UNSIGNED NOT NULL DEFAULT 0,
    rejected INT UNSIGNED NOT NULL DEFAULT 0,
    deleted INT UNSIGNED NOT NULL DEFAULT 0,
    restored INT UNSIGNED NOT NULL DEFAULT 0,
    duplicates INT UNSIGNED NOT NULL DEFAULT 0,
    unknown_fields INT UNSIGNED NOT NULL DEFAULT 0,
    error VARCHAR(1024) NULL,
    PRIMARY KEY (id),
    KEY sync_runs_started_at (started_at)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

-- Invalid provider records, with every reason, and the record with its pci,
-- financial and sad fields removed (never the card, the account or the CVV).
CREATE TABLE IF NOT EXISTS sync_quarantine (
    id BIGINT UNSIGNED NOT NULL AUTO_INCREMENT,
    run_id BIGINT UNSIGNED NOT NULL,
    provider_id VARCHAR(64) NULL,
    reasons TEXT NOT NULL,
    record MEDIUMTEXT NOT NULL,
    created_at DATETIME(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6),
    PRIMARY KEY (id),
    KEY sync_quarantine_run (run_id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

-- The fencing epoch of the single writer: bumped when leadership is taken,
-- checked inside every batch transaction.
CREATE TABLE IF NOT EXISTS sync_leader (
    name VARCHAR(64) NOT NULL,
    epoch BIGINT UNSIGNED NOT NULL,
    holder VARCHAR(255) NOT NULL,
    acquired_at DATETIME(6) NOT NULL,
    heartbeat_at DATETIME(6) NOT NULL,
    PRIMARY KEY (name)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

-- Bumped in the same transaction as any write to customers, so API replicas can
-- tell cheaply whether what they serve from memory is still current.
CREATE TABLE IF NOT EXISTS data_version (
    name VARCHAR(32) NOT NULL,
    version BIGINT UNSIGNED NOT NULL,
    changed_at DATETIME(6) NOT NULL,
    PRIMARY KEY (name)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

INSERT IGNORE INTO data_version (name, version, changed_at) VALUES ('customers', 0, CURRENT_TIMESTAMP(6));
