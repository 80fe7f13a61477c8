-- Refused sends (PRODUCT.md §6: never invisible). A recipient the API refused — Permission
-- to Email No, an unknown lead, a bad address — is no email, so it has no row in `emails`;
-- it is kept here, written in the same transaction as the accepted part of its request, so
-- a lead's activity and a batch's "Not sent" count show it. `recipient` is what the request
-- named (the address, or the lead id asked for); `lead_id` is set when it was one of the
-- account's leads. `subject` is the request's subject as written (a template).
CREATE TABLE refusals (
    id TEXT PRIMARY KEY,
    account_id TEXT NOT NULL REFERENCES accounts (id),
    lead_id TEXT,
    recipient TEXT NOT NULL,
    batch TEXT,
    subject TEXT NOT NULL,
    reason TEXT NOT NULL,
    message TEXT NOT NULL,
    at_ms BIGINT NOT NULL
);
CREATE INDEX refusals_by_lead ON refusals (account_id, lead_id, at_ms);
CREATE INDEX refusals_by_batch ON refusals (account_id, batch);

-- Why and when a lead's Permission to Email last changed: `unsubscribe`, `complaint`,
-- `hardbounce`, `import`, `manual` (API, CLI or UI), or `suppression` (blocked for another
-- reason). NULL for a lead whose permission was never changed since it was created with Yes.
ALTER TABLE leads ADD COLUMN permission_cause TEXT;
ALTER TABLE leads ADD COLUMN permission_changed_at_ms BIGINT;

-- Leads already at No: the block on their address says why, when there is one.
UPDATE leads SET
    permission_cause = (
        SELECT CASE
            WHEN s.reason = 'unsubscribed' THEN 'unsubscribe'
            WHEN s.reason = 'complaint' THEN 'complaint'
            WHEN s.reason IN ('userunknown', 'hostunknown', 'hasmoved', 'notaccept')
                THEN 'hardbounce'
            ELSE 'suppression'
        END
        FROM suppressions s
        WHERE s.account_id = leads.account_id AND s.address_key = leads.address_key
    ),
    permission_changed_at_ms = (
        SELECT s.created_at_ms FROM suppressions s
        WHERE s.account_id = leads.account_id AND s.address_key = leads.address_key
    )
WHERE permission = 'no';
