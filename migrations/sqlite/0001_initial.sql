-- Times are milliseconds since the Unix epoch; whole records are JSON in `data`.
CREATE TABLE incidents (
    id BIGINT PRIMARY KEY,
    status TEXT NOT NULL,
    severity INTEGER NOT NULL,
    queue TEXT,
    opened_at BIGINT NOT NULL,
    data TEXT NOT NULL
);
CREATE INDEX incidents_status ON incidents (status, severity);
CREATE INDEX incidents_queue ON incidents (queue, opened_at);

CREATE TABLE impacts (
    id BIGINT PRIMARY KEY,
    incident_id BIGINT NOT NULL,
    data TEXT NOT NULL
);
CREATE INDEX impacts_incident ON impacts (incident_id);

CREATE TABLE timeline (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    incident_id BIGINT NOT NULL,
    at BIGINT NOT NULL,
    kind TEXT NOT NULL,
    actor TEXT NOT NULL,
    message TEXT NOT NULL,
    data TEXT NOT NULL
);
CREATE INDEX timeline_incident ON timeline (incident_id, id);

CREATE TABLE paging (
    incident_id BIGINT PRIMARY KEY,
    data TEXT NOT NULL
);

CREATE TABLE rule_states (
    rule TEXT NOT NULL,
    fingerprint TEXT NOT NULL,
    data TEXT NOT NULL,
    PRIMARY KEY (rule, fingerprint)
);

CREATE TABLE leases (
    fingerprint TEXT PRIMARY KEY,
    expires_at BIGINT NOT NULL,
    data TEXT NOT NULL
);

CREATE TABLE heartbeats (
    name TEXT PRIMARY KEY,
    data TEXT NOT NULL
);

CREATE TABLE outbox (
    id BIGINT PRIMARY KEY,
    delivery_id TEXT NOT NULL,
    incident_id BIGINT NOT NULL,
    channel TEXT NOT NULL,
    status TEXT NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    next_attempt_at BIGINT NOT NULL,
    created_at BIGINT NOT NULL,
    delivered_at BIGINT,
    last_error TEXT,
    data TEXT NOT NULL
);
CREATE INDEX outbox_due ON outbox (status, next_attempt_at);
CREATE INDEX outbox_incident ON outbox (incident_id);
