-- One schema for SQLite and PostgreSQL: TEXT ids (UUIDv7), BIGINT milliseconds since the
-- Unix epoch, JSON kept as TEXT. Every row carries its account (PRODUCT.md §3, §7).

CREATE TABLE accounts (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    created_at_ms BIGINT NOT NULL
);

-- Keys are stored as SHA-256 of the key: they are 192-bit random, so a fast hash is enough
-- and lookup stays one index probe per request.
CREATE TABLE api_keys (
    id TEXT PRIMARY KEY,
    account_id TEXT REFERENCES accounts (id),
    role TEXT NOT NULL,
    key_hash TEXT NOT NULL UNIQUE,
    created_at_ms BIGINT NOT NULL
);

CREATE TABLE users (
    id TEXT PRIMARY KEY,
    account_id TEXT REFERENCES accounts (id),
    email TEXT NOT NULL UNIQUE,
    role TEXT NOT NULL,
    password_hash TEXT NOT NULL,
    created_at_ms BIGINT NOT NULL
);

CREATE TABLE leads (
    id TEXT PRIMARY KEY,
    account_id TEXT NOT NULL REFERENCES accounts (id),
    address TEXT NOT NULL,
    address_key TEXT NOT NULL,
    first_name TEXT,
    last_name TEXT,
    fields TEXT NOT NULL DEFAULT '{}',
    permission TEXT NOT NULL,
    created_at_ms BIGINT NOT NULL,
    updated_at_ms BIGINT NOT NULL,
    UNIQUE (account_id, address_key)
);

CREATE TABLE emails (
    id TEXT PRIMARY KEY,
    account_id TEXT NOT NULL REFERENCES accounts (id),
    lead_id TEXT REFERENCES leads (id),
    to_address TEXT NOT NULL,
    to_key TEXT NOT NULL,
    from_address TEXT NOT NULL,
    subject TEXT NOT NULL,
    text_body TEXT,
    html_body TEXT,
    batch TEXT,
    stage TEXT NOT NULL,
    status TEXT,
    reason TEXT,
    created_at_ms BIGINT NOT NULL,
    updated_at_ms BIGINT NOT NULL
);
CREATE INDEX emails_by_account ON emails (account_id, created_at_ms);
CREATE INDEX emails_by_lead ON emails (lead_id, created_at_ms);

-- Append-only. `seq` orders one email's events as they were written.
CREATE TABLE events (
    email_id TEXT NOT NULL REFERENCES emails (id),
    seq BIGINT NOT NULL,
    account_id TEXT NOT NULL,
    kind TEXT NOT NULL,
    at_ms BIGINT NOT NULL,
    detail TEXT NOT NULL,
    PRIMARY KEY (email_id, seq)
);
