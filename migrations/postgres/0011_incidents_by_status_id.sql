-- The incident list pages newest first by id, within a status or not: with the status index
-- in id order, a page of resolved incidents reads its rows from the index in order, where
-- (status, severity) made it read every resolved incident and sort them, the whole history.
-- A list that also filters by severity takes the rows of its status in id order and skips
-- the others. The same on SQLite (its 0012).
DROP INDEX incidents_status;
CREATE INDEX incidents_status ON incidents (status, id);
