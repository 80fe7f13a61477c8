-- The overview (PRODUCT.md §6) and the email report's totals, in milliseconds at a million
-- emails.

-- Per account and UTC day the emails were queued on (days since 1970-01-01): how many ever
-- reached each stage, kept like batch_stats in the same transaction as the events that change
-- them. The tracking flags say whether open or click tracking was on when any of the day's
-- emails was queued (rates are `n/a` otherwise).
CREATE TABLE account_days (
    account_id TEXT NOT NULL REFERENCES accounts (id),
    day BIGINT NOT NULL,
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
    PRIMARY KEY (account_id, day)
);

-- The emails already stored, counted from their milestones (the bits of
-- mailtrail_domain::Milestone). Their tracking flags come from today's settings: what they
-- were queued under was not kept per email.
INSERT INTO account_days (account_id, day, emails, delivered, failed, dropped, deferred, opened,
                          clicked, replied, auto_replied, unsubscribed, complained,
                          machine_opened, machine_clicked, open_tracking, click_tracking)
SELECT e.account_id, e.created_at_ms / 86400000, COUNT(*),
       SUM(CASE WHEN (e.milestones & 1) <> 0 THEN 1 ELSE 0 END),
       SUM(CASE WHEN (e.milestones & 2) <> 0 THEN 1 ELSE 0 END),
       SUM(CASE WHEN (e.milestones & 4) <> 0 THEN 1 ELSE 0 END),
       SUM(CASE WHEN (e.milestones & 8) <> 0 THEN 1 ELSE 0 END),
       SUM(CASE WHEN (e.milestones & 16) <> 0 THEN 1 ELSE 0 END),
       SUM(CASE WHEN (e.milestones & 32) <> 0 THEN 1 ELSE 0 END),
       SUM(CASE WHEN (e.milestones & 64) <> 0 THEN 1 ELSE 0 END),
       SUM(CASE WHEN (e.milestones & 128) <> 0 THEN 1 ELSE 0 END),
       SUM(CASE WHEN (e.milestones & 256) <> 0 THEN 1 ELSE 0 END),
       SUM(CASE WHEN (e.milestones & 512) <> 0 THEN 1 ELSE 0 END),
       SUM(CASE WHEN (e.milestones & 1024) <> 0 THEN 1 ELSE 0 END),
       SUM(CASE WHEN (e.milestones & 2048) <> 0 THEN 1 ELSE 0 END),
       MAX(COALESCE(s.open_tracking, 0)), MAX(COALESCE(s.click_tracking, 0))
FROM emails e LEFT JOIN account_settings s ON s.account_id = e.account_id
GROUP BY e.account_id, e.created_at_ms / 86400000;

-- The report's "reached" filters and the overview's recent failures: a date range whose
-- milestones are read from the index alone. It serves everything emails_by_account did.
CREATE INDEX emails_by_account_milestones ON emails (account_id, created_at_ms, milestones);
DROP INDEX emails_by_account;

-- Search by recipient: a range of normalised addresses.
CREATE INDEX emails_by_recipient ON emails (account_id, to_key, created_at_ms);
