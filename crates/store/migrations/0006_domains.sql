-- Sending domains: per account, the domains its mail comes From, each with its own DKIM key
-- pair and the outcome of the last DNS check of the records the account must publish. A
-- domain is verified once its DKIM and SPF records check out; mail from it is then signed
-- with its key.
CREATE TABLE sending_domains (
    id TEXT PRIMARY KEY,
    account_id TEXT NOT NULL REFERENCES accounts (id),
    -- Lower-case ASCII, IDNs as punycode: the form a From address's domain is compared in.
    domain TEXT NOT NULL,
    -- The key is published at SELECTOR._domainkey.DOMAIN.
    selector TEXT NOT NULL,
    -- 'ed25519' or 'rsa'.
    algorithm TEXT NOT NULL,
    -- PKCS#8 PEM.
    private_key TEXT NOT NULL,
    -- The base64 `p=` value of the DKIM record.
    public_key_b64 TEXT NOT NULL,
    created_at_ms BIGINT NOT NULL,
    -- Set by a check that passed, cleared by one that failed.
    verified_at_ms BIGINT,
    last_check_at_ms BIGINT,
    -- JSON: the per-record results of the last check.
    last_check TEXT
);
CREATE UNIQUE INDEX sending_domains_by_account ON sending_domains (account_id, domain);
