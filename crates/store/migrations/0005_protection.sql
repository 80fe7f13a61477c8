-- Automatic pause of an account's sending when its bounce or complaint rate crosses a
-- threshold (the protection hosted providers apply); an admin resumes it.
ALTER TABLE account_settings ADD COLUMN paused_at_ms BIGINT;
ALTER TABLE account_settings ADD COLUMN paused_reason TEXT;
