-- Rule states and leases were keyed by (rule, fingerprint) and fingerprint. A fingerprint is
-- a hash, so every new alert put its two keys at random places in those keys' indexes. They
-- are now keyed by a row id the engine gives each new one in order (it keeps the id beside
-- the state and is the only writer of these tables). The same shape as on SQLite, where
-- this mattered most (see its 0004), so the store's SQL is one.

CREATE TABLE rule_states_by_row (
    id BIGINT PRIMARY KEY,
    rule TEXT NOT NULL,
    fingerprint TEXT NOT NULL,
    data TEXT NOT NULL
);
INSERT INTO rule_states_by_row (id, rule, fingerprint, data)
    SELECT row_number() OVER (ORDER BY rule, fingerprint), rule, fingerprint, data
    FROM rule_states;
DROP TABLE rule_states;
ALTER TABLE rule_states_by_row RENAME TO rule_states;
ALTER TABLE rule_states RENAME CONSTRAINT rule_states_by_row_pkey TO rule_states_pkey;

CREATE TABLE leases_by_row (
    id BIGINT PRIMARY KEY,
    fingerprint TEXT NOT NULL,
    expires_at BIGINT NOT NULL,
    data TEXT NOT NULL
);
INSERT INTO leases_by_row (id, fingerprint, expires_at, data)
    SELECT row_number() OVER (ORDER BY fingerprint), fingerprint, expires_at, data FROM leases;
DROP TABLE leases;
ALTER TABLE leases_by_row RENAME TO leases;
ALTER TABLE leases RENAME CONSTRAINT leases_by_row_pkey TO leases_pkey;

-- Only incidents in a triage queue (customer reports) need the queue index.
DROP INDEX incidents_queue;
CREATE INDEX incidents_queue ON incidents (queue, opened_at) WHERE queue IS NOT NULL;
