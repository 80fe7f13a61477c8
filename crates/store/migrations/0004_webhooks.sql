-- Webhooks (PRODUCT.md §7): per account, URLs that every event of its emails is POSTed to.
CREATE TABLE webhooks (
    id TEXT PRIMARY KEY,
    account_id TEXT NOT NULL REFERENCES accounts (id),
    url TEXT NOT NULL,
    -- The HMAC-SHA256 key the receiver verifies signatures with.
    secret TEXT NOT NULL,
    -- Event types this hook wants, comma-separated; '*' for all.
    events TEXT NOT NULL,
    created_at_ms BIGINT NOT NULL,
    -- Deleted hooks are kept (their delivery history stays readable) but get no new events.
    deleted_at_ms BIGINT
);
CREATE INDEX webhooks_by_account ON webhooks (account_id);

-- The durable outbox: one row per event and hook, written in the event's own transaction so
-- no event is lost between the database and the receiver. `event_id` is the same for every
-- hook an event goes to and is what receivers de-duplicate on. `state`: pending → delivered
-- | failed (gave up after the retry window) | cancelled (the hook was deleted).
CREATE TABLE webhook_deliveries (
    id TEXT PRIMARY KEY,
    webhook_id TEXT NOT NULL REFERENCES webhooks (id),
    account_id TEXT NOT NULL,
    event_id TEXT NOT NULL,
    event_type TEXT NOT NULL,
    payload TEXT NOT NULL,
    state TEXT NOT NULL,
    attempts BIGINT NOT NULL DEFAULT 0,
    next_attempt_at_ms BIGINT,
    lease_until_ms BIGINT,
    last_status BIGINT,
    last_error TEXT,
    created_at_ms BIGINT NOT NULL,
    delivered_at_ms BIGINT
);
CREATE INDEX webhook_deliveries_due ON webhook_deliveries (next_attempt_at_ms)
    WHERE state = 'pending';
CREATE INDEX webhook_deliveries_by_hook ON webhook_deliveries (webhook_id, created_at_ms);
