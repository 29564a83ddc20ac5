-- The last record of the redo log (`<database>-redo`, see src/store/redo_log.rs) that
-- SQLite has committed: each record's transaction sets it, so on start the records after it
-- are committed again, in order, and none twice. `epoch`: this store's own number, set on
-- its first start and written in each record, so that a log left beside another database
-- file (one deleted or swapped, its log not) is never replayed into this one.
CREATE TABLE redo_applied (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    seq BIGINT NOT NULL,
    epoch BIGINT NOT NULL
);
INSERT INTO redo_applied (id, seq, epoch) VALUES (1, 0, 0);
