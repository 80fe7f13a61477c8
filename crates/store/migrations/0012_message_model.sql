-- The message model real senders use (PRODUCT.md §7–§8): a From display name, Cc, the
-- sender's own Reply-To (replies are forwarded there; the outgoing Reply-To stays the
-- tokenised one), custom headers, tags and metadata, attachments, and for mail submitted over
-- SMTP the sender's whole MIME message, which is delivered with its structure intact.
-- JSON columns are TEXT: `cc` a list of mailboxes, `headers` a list of [name, value] pairs,
-- `tags` a list of strings, `metadata` a string map. NULL means none.
ALTER TABLE contents ADD COLUMN from_name TEXT;
ALTER TABLE contents ADD COLUMN cc TEXT;
ALTER TABLE contents ADD COLUMN reply_to TEXT;
ALTER TABLE contents ADD COLUMN headers TEXT;
ALTER TABLE contents ADD COLUMN tags TEXT;
ALTER TABLE contents ADD COLUMN metadata TEXT;
ALTER TABLE contents ADD COLUMN raw_message BYTEA;
ALTER TABLE contents ADD COLUMN attachment_count BIGINT NOT NULL DEFAULT 0;

-- Attachments (and inline images, with a Content-ID) of a content, in the order given.
CREATE TABLE content_attachments (
    content_id TEXT NOT NULL REFERENCES contents (id),
    position BIGINT NOT NULL,
    filename TEXT NOT NULL,
    content_type TEXT NOT NULL,
    content_id_header TEXT,
    data BYTEA NOT NULL,
    PRIMARY KEY (content_id, position)
);

-- A content's tags, one row each, for the email report's `tag=` filter.
CREATE TABLE content_tags (
    content_id TEXT NOT NULL REFERENCES contents (id),
    account_id TEXT NOT NULL REFERENCES accounts (id),
    tag TEXT NOT NULL,
    PRIMARY KEY (content_id, tag)
);
CREATE INDEX content_tags_by_tag ON content_tags (account_id, tag);

-- SMTP submission credentials (RFC 4954 AUTH): one account each; the password is shown once
-- and kept only as an argon2 hash. A revoked credential stays for the record.
CREATE TABLE smtp_credentials (
    id TEXT PRIMARY KEY,
    account_id TEXT NOT NULL REFERENCES accounts (id),
    username TEXT NOT NULL UNIQUE,
    password_hash TEXT NOT NULL,
    created_at_ms BIGINT NOT NULL,
    last_used_at_ms BIGINT,
    revoked_at_ms BIGINT
);
CREATE INDEX smtp_credentials_by_account ON smtp_credentials (account_id);

-- The To header of an email sent to a Cc address: the message shows the primary recipient in
-- To and the Cc list, as every copy of one message does; NULL when To is the email's own
-- address.
ALTER TABLE emails ADD COLUMN header_to TEXT;
