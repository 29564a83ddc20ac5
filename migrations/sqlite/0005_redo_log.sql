-- The last record of the redo log (`<database>-redo`, see src/store/redo_log.rs) that
-- SQLite has committed: each record's transaction sets it, so on start the records after it
-- are committed again, in order, and none twice.
CREATE TABLE redo_applied (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    seq BIGINT NOT NULL
);
INSERT INTO redo_applied (id, seq) VALUES (1, 0);
