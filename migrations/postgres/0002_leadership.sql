-- Several engines on one database: one holds the lease and pages; all serve.
CREATE TABLE leader_lease (
    name TEXT PRIMARY KEY,
    holder TEXT NOT NULL,
    term BIGINT NOT NULL,
    expires_at BIGINT NOT NULL
);

-- Inputs taken by engines that do not lead (pushes, CRIs, heartbeats, acks), for the
-- leader to apply; the reply is written in the same transaction as the input's effects.
CREATE TABLE inbox (
    id BIGSERIAL PRIMARY KEY,
    input TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    processed_at BIGINT,
    reply TEXT
);
CREATE INDEX inbox_unprocessed ON inbox (id) WHERE processed_at IS NULL;

-- Delivery claims: a page is sent by the engine that claimed it, until the claim runs out.
ALTER TABLE outbox ADD COLUMN claimed_by TEXT;
ALTER TABLE outbox ADD COLUMN claimed_until BIGINT;
