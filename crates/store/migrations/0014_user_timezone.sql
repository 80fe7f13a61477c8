-- Each web UI login's timezone (an IANA name, checked by the UI): every time on its pages is
-- shown in it. Existing logins read times in UTC, as before.
ALTER TABLE users ADD COLUMN timezone TEXT NOT NULL DEFAULT 'UTC';
