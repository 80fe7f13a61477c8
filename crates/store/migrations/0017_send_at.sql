-- The send time the sender asked for (`send_at`), kept once the first attempt has replaced
-- next_attempt_at_ms: the queue-to-delivery latency counts from it when it is later than the
-- queueing. NULL: send at once. Emails queued before, never tried yet and due later than they
-- were queued, were scheduled (or briefly postponed): their due time is their send time.
ALTER TABLE emails ADD COLUMN send_at_ms BIGINT;
UPDATE emails SET send_at_ms = next_attempt_at_ms
 WHERE attempts = 0 AND next_attempt_at_ms > created_at_ms;
