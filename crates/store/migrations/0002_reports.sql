-- Reports (PRODUCT.md §6) that answer in milliseconds with a million emails.

-- Every stage the email ever reached, as `mailtrail_domain::Milestones` bits; grows with each
-- event, in the event's transaction.
ALTER TABLE emails ADD COLUMN milestones BIGINT NOT NULL DEFAULT 0;

-- The email report's filters: newest first within an account, a batch, a stage.
CREATE INDEX emails_by_batch ON emails (account_id, batch, created_at_ms);
CREATE INDEX emails_by_stage ON emails (account_id, stage, created_at_ms);
CREATE INDEX emails_by_batch_stage ON emails (account_id, batch, stage, created_at_ms);

-- The batch report's counts, kept up to date in the same transaction as the events that
-- change them, so the report reads one row per batch instead of scanning its emails.
-- `batch` is '' for emails sent without one. The tracking flags say whether open or click
-- tracking was on when any of the batch's emails was queued (rates are `n/a` otherwise).
CREATE TABLE batch_stats (
    account_id TEXT NOT NULL REFERENCES accounts (id),
    batch TEXT NOT NULL,
    emails BIGINT NOT NULL DEFAULT 0,
    delivered BIGINT NOT NULL DEFAULT 0,
    failed BIGINT NOT NULL DEFAULT 0,
    dropped BIGINT NOT NULL DEFAULT 0,
    deferred BIGINT NOT NULL DEFAULT 0,
    opened BIGINT NOT NULL DEFAULT 0,
    clicked BIGINT NOT NULL DEFAULT 0,
    replied BIGINT NOT NULL DEFAULT 0,
    auto_replied BIGINT NOT NULL DEFAULT 0,
    unsubscribed BIGINT NOT NULL DEFAULT 0,
    complained BIGINT NOT NULL DEFAULT 0,
    machine_opened BIGINT NOT NULL DEFAULT 0,
    machine_clicked BIGINT NOT NULL DEFAULT 0,
    open_tracking BIGINT NOT NULL DEFAULT 0,
    click_tracking BIGINT NOT NULL DEFAULT 0,
    first_queued_at_ms BIGINT NOT NULL,
    last_queued_at_ms BIGINT NOT NULL,
    PRIMARY KEY (account_id, batch)
);
