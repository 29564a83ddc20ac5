-- How the store finds an incident's impacts: a row per incident and batch that linked
-- impacts to it (new ones, and those a merge moved), their ids as a JSON array. It replaces
-- the index on impacts (incident_id), where each new impact put an entry at its incident's
-- place. The same shape as on SQLite (see its 0006), so the store's SQL is one.
CREATE TABLE incident_impacts (
    id BIGSERIAL PRIMARY KEY,
    incident_id BIGINT NOT NULL,
    impact_ids TEXT NOT NULL
);
INSERT INTO incident_impacts (incident_id, impact_ids)
    SELECT incident_id, '[' || string_agg(id::text, ',' ORDER BY id) || ']'
    FROM impacts GROUP BY incident_id;
CREATE INDEX incident_impacts_incident ON incident_impacts (incident_id);
DROP INDEX impacts_incident;
