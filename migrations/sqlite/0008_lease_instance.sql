-- The process that holds the lease, beside the engine id it holds it under: two processes
-- given the same engine_id never both lead, and one restarted in place can tell whether the
-- lease under its id is still renewed by a live process.
ALTER TABLE leader_lease ADD COLUMN instance TEXT NOT NULL DEFAULT '';
