-- Web UI sessions (PRODUCT.md §8), kept in the database so every node shares them. Only the
-- SHA-256 of the cookie's 256-bit random token is stored: a copy of this table logs no one in.
-- `account_id` is the account an operator chose to look at (NULL: the first one); users and
-- admins always see their own. A session ends at `expires_at_ms`, pushed forward while used.
CREATE TABLE web_sessions (
    token_hash TEXT PRIMARY KEY,
    user_id TEXT NOT NULL REFERENCES users (id),
    account_id TEXT REFERENCES accounts (id),
    created_at_ms BIGINT NOT NULL,
    expires_at_ms BIGINT NOT NULL
);
CREATE INDEX web_sessions_by_expiry ON web_sessions (expires_at_ms);
