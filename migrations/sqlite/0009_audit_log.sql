-- Who changed what, when and from where: one row per action (API, CLI, dashboard, reload),
-- ids 1, 2, 3, … with no gap. `mac` is an HMAC-SHA256 over the row and the previous row's
-- mac, keyed by a secret the store does not hold (server.audit_key_file): a row edited,
-- removed or inserted breaks the chain from there on. `INTEGER PRIMARY KEY` is the rowid:
-- no second B-tree for the key (see 0004).
CREATE TABLE audit_log (
    id INTEGER PRIMARY KEY,
    at BIGINT NOT NULL,
    actor TEXT NOT NULL,
    action TEXT NOT NULL,
    target TEXT NOT NULL,
    detail TEXT NOT NULL,
    address TEXT NOT NULL,
    mac TEXT NOT NULL
);
