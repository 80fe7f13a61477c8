-- Sign-in throttling (issue 16), in the database so every node counts the same failures.
-- `key` names what is counted: an `account:` key (the SHA-256 of a login email as typed,
-- trimmed and lower-cased, known or not) or an `address:` key (a client address).
-- `failures` counts failed sign-ins since the key was last forgotten; `locks` how many locks
-- it had since (each twice as long as the one before); a key quiet for the configured window
-- after its last failure and lock is forgotten.
CREATE TABLE login_failures (
    key TEXT PRIMARY KEY,
    failures BIGINT NOT NULL,
    locks BIGINT NOT NULL,
    locked_until_ms BIGINT NOT NULL,
    last_failure_ms BIGINT NOT NULL
);
CREATE INDEX login_failures_by_last ON login_failures (last_failure_ms);

-- Spent sign-in forms. A form's token is signed by the server (nonce, expiry, HMAC), so
-- showing the form stores nothing; the POST that spends it records its nonce here until it
-- expires, so a token cannot be replayed (and one made up by the client fails its signature).
CREATE TABLE spent_login_forms (
    nonce TEXT PRIMARY KEY,
    expires_at_ms BIGINT NOT NULL
);
CREATE INDEX spent_login_forms_by_expiry ON spent_login_forms (expires_at_ms);
