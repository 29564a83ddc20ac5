-- Fewer B-trees per write (each one a WAL page per commit that touches it).
--
-- 1. A key declared `BIGINT PRIMARY KEY` is not SQLite's rowid: the table kept a second
--    B-tree just to map the key to the rowid. `INTEGER PRIMARY KEY` is the rowid itself.
-- 2. Rule states and leases were keyed by (rule, fingerprint) and fingerprint. A fingerprint
--    is a hash, so every new alert put its two keys at random places in those keys' indexes,
--    and a commit of a batch of new alerts rewrote most of their pages. They are now keyed by
--    a row id the engine gives each new one in order (it keeps the id beside the state and is
--    the only writer of these tables), so new rows go at the end.
-- 3. Only incidents in a triage queue (customer reports) are in the queue index: the others,
--    most of them, have none, and the index was one more page written for each.
-- 4. Timeline ids need not be kept in sqlite_sequence: timeline rows are never deleted, so
--    the next rowid is always past every id given before.

CREATE TABLE incidents_by_rowid (
    id INTEGER PRIMARY KEY,
    status TEXT NOT NULL,
    severity INTEGER NOT NULL,
    queue TEXT,
    opened_at BIGINT NOT NULL,
    data TEXT NOT NULL
);
INSERT INTO incidents_by_rowid (id, status, severity, queue, opened_at, data)
    SELECT id, status, severity, queue, opened_at, data FROM incidents;
DROP TABLE incidents;
ALTER TABLE incidents_by_rowid RENAME TO incidents;
CREATE INDEX incidents_status ON incidents (status, severity);
CREATE INDEX incidents_queue ON incidents (queue, opened_at) WHERE queue IS NOT NULL;

CREATE TABLE impacts_by_rowid (
    id INTEGER PRIMARY KEY,
    incident_id BIGINT NOT NULL,
    data TEXT NOT NULL
);
INSERT INTO impacts_by_rowid (id, incident_id, data) SELECT id, incident_id, data FROM impacts;
DROP TABLE impacts;
ALTER TABLE impacts_by_rowid RENAME TO impacts;
CREATE INDEX impacts_incident ON impacts (incident_id);

CREATE TABLE timeline_by_rowid (
    id INTEGER PRIMARY KEY,
    incident_id BIGINT NOT NULL,
    at BIGINT NOT NULL,
    kind TEXT NOT NULL,
    actor TEXT NOT NULL,
    message TEXT NOT NULL,
    data TEXT NOT NULL
);
INSERT INTO timeline_by_rowid (id, incident_id, at, kind, actor, message, data)
    SELECT id, incident_id, at, kind, actor, message, data FROM timeline;
DROP TABLE timeline;
ALTER TABLE timeline_by_rowid RENAME TO timeline;
CREATE INDEX timeline_incident ON timeline (incident_id, id);

CREATE TABLE paging_by_rowid (
    incident_id INTEGER PRIMARY KEY,
    data TEXT NOT NULL
);
INSERT INTO paging_by_rowid (incident_id, data) SELECT incident_id, data FROM paging;
DROP TABLE paging;
ALTER TABLE paging_by_rowid RENAME TO paging;

CREATE TABLE rule_states_by_row (
    id INTEGER PRIMARY KEY,
    rule TEXT NOT NULL,
    fingerprint TEXT NOT NULL,
    data TEXT NOT NULL
);
INSERT INTO rule_states_by_row (rule, fingerprint, data)
    SELECT rule, fingerprint, data FROM rule_states ORDER BY rowid;
DROP TABLE rule_states;
ALTER TABLE rule_states_by_row RENAME TO rule_states;

CREATE TABLE leases_by_row (
    id INTEGER PRIMARY KEY,
    fingerprint TEXT NOT NULL,
    expires_at BIGINT NOT NULL,
    data TEXT NOT NULL
);
INSERT INTO leases_by_row (fingerprint, expires_at, data)
    SELECT fingerprint, expires_at, data FROM leases ORDER BY rowid;
DROP TABLE leases;
ALTER TABLE leases_by_row RENAME TO leases;

CREATE TABLE outbox_by_rowid (
    id INTEGER PRIMARY KEY,
    delivery_id TEXT NOT NULL,
    incident_id BIGINT NOT NULL,
    channel TEXT NOT NULL,
    status TEXT NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    next_attempt_at BIGINT NOT NULL,
    created_at BIGINT NOT NULL,
    delivered_at BIGINT,
    last_error TEXT,
    data TEXT NOT NULL,
    claimed_by TEXT,
    claimed_until BIGINT
);
INSERT INTO outbox_by_rowid (id, delivery_id, incident_id, channel, status, attempts,
        next_attempt_at, created_at, delivered_at, last_error, data, claimed_by, claimed_until)
    SELECT id, delivery_id, incident_id, channel, status, attempts, next_attempt_at,
        created_at, delivered_at, last_error, data, claimed_by, claimed_until FROM outbox;
DROP TABLE outbox;
ALTER TABLE outbox_by_rowid RENAME TO outbox;
CREATE INDEX outbox_due ON outbox (status, next_attempt_at);
CREATE INDEX outbox_incident ON outbox (incident_id);
DELETE FROM sqlite_sequence WHERE name = 'timeline';
