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

-- What was sent, once per submission: a batch of 100,000 shares one row; each email keeps
-- only its own merge fields.
CREATE TABLE contents (
    id TEXT PRIMARY KEY,
    account_id TEXT NOT NULL REFERENCES accounts (id),
    from_address TEXT NOT NULL,
    subject TEXT NOT NULL,
    text_body TEXT,
    html_body TEXT,
    created_at_ms BIGINT NOT NULL
);

-- One email, one recipient. The queue lives here too: `next_attempt_at_ms` is set while the
-- email waits to be (re)tried and NULL once it has left the queue; a worker that claims it
-- sets `lease_until_ms`, and a crashed worker's claims are taken over after that time.
CREATE TABLE emails (
    id TEXT PRIMARY KEY,
    account_id TEXT NOT NULL REFERENCES accounts (id),
    lead_id TEXT REFERENCES leads (id),
    content_id TEXT NOT NULL REFERENCES contents (id),
    to_address TEXT NOT NULL,
    to_key TEXT NOT NULL,
    to_domain TEXT NOT NULL,
    fields TEXT NOT NULL DEFAULT '{}',
    batch TEXT,
    stage TEXT NOT NULL,
    status TEXT,
    reason TEXT,
    attempts BIGINT NOT NULL DEFAULT 0,
    next_attempt_at_ms BIGINT,
    lease_until_ms BIGINT,
    soft_5xx_attempts BIGINT NOT NULL DEFAULT 0,
    first_soft_5xx_at_ms BIGINT,
    -- The first delivery evidence: tracking hits this soon after it count as a machine's.
    delivered_at_ms BIGINT,
    created_at_ms BIGINT NOT NULL,
    updated_at_ms BIGINT NOT NULL
);
CREATE INDEX emails_by_account ON emails (account_id, created_at_ms);
CREATE INDEX emails_by_lead ON emails (lead_id, created_at_ms);
CREATE INDEX emails_due ON emails (next_attempt_at_ms) WHERE next_attempt_at_ms IS NOT NULL;

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

-- An account's blocked addresses (PRODUCT.md §3). Only an operator removes one.
CREATE TABLE suppressions (
    account_id TEXT NOT NULL REFERENCES accounts (id),
    address_key TEXT NOT NULL,
    reason TEXT NOT NULL,
    status TEXT,
    email_id TEXT,
    created_at_ms BIGINT NOT NULL,
    PRIMARY KEY (account_id, address_key)
);

-- Who added or removed a block, when and why. Never updated.
CREATE TABLE suppression_log (
    id TEXT PRIMARY KEY,
    account_id TEXT NOT NULL,
    address_key TEXT NOT NULL,
    action TEXT NOT NULL,
    actor TEXT NOT NULL,
    note TEXT NOT NULL,
    at_ms BIGINT NOT NULL
);
CREATE INDEX suppression_log_by_address ON suppression_log (account_id, address_key, at_ms);

-- The answer given to a request with an Idempotency-Key, replayed to a retry of it.
CREATE TABLE idempotency_keys (
    account_id TEXT NOT NULL REFERENCES accounts (id),
    key TEXT NOT NULL,
    request_hash TEXT NOT NULL,
    response TEXT NOT NULL,
    created_at_ms BIGINT NOT NULL,
    PRIMARY KEY (account_id, key)
);

-- Installation-wide secrets (the token signing key), shared by every node.
CREATE TABLE secrets (
    name TEXT PRIMARY KEY,
    value TEXT NOT NULL,
    created_at_ms BIGINT NOT NULL
);

-- Mail received by the inbound SMTP server, kept raw. Written (and on disk) before the server
-- answers 250; processed afterwards, retried until done, so a crash between the two loses
-- nothing. `state`: new → matched | unmatched | ignored; `email_id` once matched.
CREATE TABLE inbound_messages (
    id TEXT PRIMARY KEY,
    received_at_ms BIGINT NOT NULL,
    mail_from TEXT NOT NULL,
    rcpt_to TEXT NOT NULL,
    raw BYTEA NOT NULL,
    state TEXT NOT NULL,
    kind TEXT,
    account_id TEXT,
    email_id TEXT,
    note TEXT,
    attempts BIGINT NOT NULL DEFAULT 0,
    lease_until_ms BIGINT,
    processed_at_ms BIGINT
);
CREATE INDEX inbound_pending ON inbound_messages (received_at_ms) WHERE state = 'new';
CREATE INDEX inbound_by_email ON inbound_messages (email_id);

-- Per-account settings (PRODUCT.md §4, §6); an account without a row has the defaults.
CREATE TABLE account_settings (
    account_id TEXT PRIMARY KEY REFERENCES accounts (id),
    open_tracking BIGINT NOT NULL DEFAULT 0,
    click_tracking BIGINT NOT NULL DEFAULT 0,
    tracking_base_url TEXT,
    machine_threshold_secs BIGINT NOT NULL DEFAULT 2,
    updated_at_ms BIGINT NOT NULL
);

-- The links of each sent email, in order: a click token carries the index, and the redirect
-- goes only to the URL stored here (never an open redirect).
CREATE TABLE links (
    email_id TEXT NOT NULL REFERENCES emails (id),
    idx BIGINT NOT NULL,
    url TEXT NOT NULL,
    PRIMARY KEY (email_id, idx)
);
