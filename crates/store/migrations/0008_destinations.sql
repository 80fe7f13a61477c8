-- Per-destination limits that hold across nodes (issue #9): the sessions open to each
-- destination (a slot per session, leased, so a crashed node's slots come back), when the
-- destination may take its next message under its rate limit, and until when it is paused
-- after asking to slow down (a 421 or "too many").
CREATE TABLE destinations (
    destination TEXT PRIMARY KEY,
    paused_until_ms BIGINT NOT NULL DEFAULT 0,
    next_turn_at_us BIGINT NOT NULL DEFAULT 0
);
CREATE TABLE destination_slots (
    destination TEXT NOT NULL,
    slot BIGINT NOT NULL,
    holder TEXT,
    until_ms BIGINT NOT NULL DEFAULT 0,
    PRIMARY KEY (destination, slot)
);
