-- Replies are forwarded to the email's sender (PRODUCT.md §5): where to (an account may name
-- one address for all of them), and each received reply's forwarding state, retried until
-- sent. `forward_state`: NULL (nothing to forward) → pending → sent | failed.
ALTER TABLE account_settings ADD COLUMN reply_forward_to TEXT;
ALTER TABLE inbound_messages ADD COLUMN forward_state TEXT;
ALTER TABLE inbound_messages ADD COLUMN forward_attempts BIGINT NOT NULL DEFAULT 0;
ALTER TABLE inbound_messages ADD COLUMN forward_next_at_ms BIGINT;
ALTER TABLE inbound_messages ADD COLUMN forward_note TEXT;
CREATE INDEX inbound_forwards_due ON inbound_messages (forward_next_at_ms)
    WHERE forward_state = 'pending';
